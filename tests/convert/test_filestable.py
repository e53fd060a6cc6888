"""The stability rule: a file is taken only once nothing writes it any more and it is not under a temporary name."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from redpss.core.filestable import StabilityTracker, is_stable_file, is_temporary_name


@pytest.mark.parametrize(
    ("name", "temporary"),
    [
        ("orders.json", False),
        ("orders.csv", False),
        (".orders.json.json2csv.part", True),
        (".hidden", True),
        ("orders.json.part", True),
        ("orders.json.filepart", True),
        ("orders.json.TMP", True),
        ("orders.json~", True),
        ("partial.json", False),
    ],
)
def test_temporary_names(name: str, temporary: bool) -> None:
    assert is_temporary_name(name) is temporary


def _aged(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_one_look_needs_an_mtime_older_than_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("1\n")
    now = time.time()
    assert not is_stable_file(path, 5.0, now)
    _aged(path, 10)
    assert is_stable_file(path, 5.0, now)
    assert not is_stable_file(tmp_path / "missing.csv", 5.0, now)
    (tmp_path / "dir.csv").mkdir()
    _aged(tmp_path / "dir.csv", 10)
    assert not is_stable_file(tmp_path / "dir.csv", 5.0, now)
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    assert not is_stable_file(link, 5.0, now)  # links are never followed


def test_tracker_waits_for_the_same_state_over_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("{}\n")
    _aged(path, 100)
    tracker = StabilityTracker(2.0)
    now = time.time()
    assert tracker.ready([path], now) == []  # first seen now, even though its mtime is old
    assert tracker.ready([path], now + 1) == []
    assert tracker.ready([path], now + 2) == [path]
    with path.open("a") as grow:
        grow.write("{}\n")  # a writer resumes: the state changed, the wait starts again
    _aged(path, 100)
    assert tracker.ready([path], now + 3) == []
    assert tracker.ready([path], now + 5) == [path]


def test_tracker_ignores_temporary_names_and_forgets_vanished_files(tmp_path: Path) -> None:
    part = tmp_path / "a.json.part"
    part.write_text("{}")
    _aged(part, 100)
    tracker = StabilityTracker(0.0)
    now = time.time()
    assert tracker.ready([part], now) == []
    final = tmp_path / "a.json"
    part.rename(final)
    assert tracker.ready([final], now) == [final]
    final.unlink()
    assert tracker.ready([final], now + 1) == []
