"""The stability rule: a file is taken only once nothing writes it any more and it is not under a temporary name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core import filestable
from redpss.core.filestable import (
    StabilityTracker,
    finished,
    is_stable_file,
    is_temporary_name,
    open_for_writing,
    regular_file_state,
)
from tests.support.file_access import held_open_for_writing


@pytest.fixture(autouse=True)
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test with a probe of its own, which must still ask at its end: a probe turned off (by a test before, or
    by this one) would answer "not writing" for every file, and the tests of "not writing" would prove nothing."""
    probe = filestable._LeaseProbe()
    monkeypatch.setattr(filestable, "_PROBE", probe)
    yield
    assert not probe.others_files and not probe.devices


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


def test_an_mtime_ahead_of_the_clock_waits_the_interval_from_the_last_change(tmp_path: Path) -> None:
    """An upload whose client kept the sender's time (WinSCP by default, `sftp -p`, `rsync -t`) from a clock three
    hours ahead was taken by nobody for three hours (a year-2099 time: never), with no word in any log."""
    path = tmp_path / "orders.csv"
    path.write_text("1\n")
    ahead = time.time() + 3 * 3600
    os.utime(path, (ahead, ahead))
    changed = path.stat().st_ctime_ns / 1e9  # the kernel's time of the upload's last change: now
    assert not is_stable_file(path, 5.0, changed + 1)
    assert is_stable_file(path, 5.0, changed + 5.1)  # (a float's last digit must not decide)
    tracker = StabilityTracker(2.0)
    assert tracker.ready([path], changed) == []
    assert tracker.ready([path], changed + 2.1) == [path]


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


def test_a_file_open_for_writing_elsewhere_is_not_finished_however_old(tmp_path: Path) -> None:
    """A stalled upload: nothing written for far longer than the interval, but its writer still has it open."""
    path = tmp_path / "orders.json"
    path.write_text('{"a": 1}\n')
    tracker = StabilityTracker(2.0)
    with held_open_for_writing(path):
        _aged(path, 100)
        now = time.time()
        assert open_for_writing(path)
        assert not is_stable_file(path, 5.0, now)
        state = regular_file_state(path)
        assert state is not None and not finished(path, state, 5.0, now)
        assert tracker.ready([path], now) == []
        assert tracker.ready([path], now + 3) == []  # steady long enough, but still open
        assert tracker.still_ready(path, now + 3) is None
    now = time.time()
    assert not open_for_writing(path)
    assert is_stable_file(path, 5.0, now)
    assert tracker.ready([path], now + 3) == [path]  # the wait counted while it was open: taken at once
    assert tracker.still_ready(path, now + 3) is not None


def test_readers_and_our_own_closed_writes_do_not_count_as_writing(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text("{}\n")
    with path.open("rb"):
        assert not open_for_writing(path)
    assert not open_for_writing(tmp_path / "gone.json")


@pytest.mark.root
def test_cap_lease_lets_a_daemon_ask_about_files_it_does_not_own() -> None:
    """A process that neither owns the file nor has CAP_LEASE cannot ask: for other users' files it falls back to
    the time rule, with one warning that names the missing capability (`redctl start_trace` as redsys), and still
    asks about its own files. With CAP_LEASE, which the units of JSON2CSV, PARQ2CSV and SCHED grant, it can."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a process as nobody")
    with tempfile.TemporaryDirectory(prefix="redpss-lease-") as folder:  # pytest's tmp_path is root's alone
        Path(folder).chmod(0o755)
        _ask_as_nobody(Path(folder) / "orders.json", Path(folder) / "own.json")


def _ask_as_nobody(path: Path, own: Path) -> None:
    for each in (path, own):
        each.write_text("{}\n")
        each.chmod(0o644)
    shutil.chown(own, "nobody")
    code = (
        "import logging, sys; from pathlib import Path; logging.basicConfig(level=logging.WARNING);"
        "from redpss.core.filestable import open_for_writing as w; p, o = Path(sys.argv[1]), Path(sys.argv[2]);"
        "print(w(p), w(p), w(o))"
    )
    root = Path(__file__).resolve().parents[2]
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    with_lease = [*nobody, "--inh-caps=+lease", "--ambient-caps=+lease"]  # what the units' AmbientCapabilities give
    asked = {}
    with held_open_for_writing(path), held_open_for_writing(own):
        for name, prefix in (("plain", nobody), ("lease", with_lease)):
            asked[name] = subprocess.run(
                [*prefix, sys.executable, "-c", code, str(path), str(own)],
                check=False,
                capture_output=True,
                text=True,
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(root)},
                timeout=60,
            )
    assert asked["plain"].stdout == "False False True\n", asked["plain"].stderr
    warning = "cannot tell whether files of other users (sFTP uploads) are still open for writing"
    assert asked["plain"].stderr.count(warning) == 1
    assert "EACCES" in asked["plain"].stderr and "CAP_LEASE" in asked["plain"].stderr
    assert asked["lease"].stdout == "True True True\n", asked["lease"].stderr
    assert not asked["lease"].stderr


def test_a_name_swapped_for_a_folder_or_a_fifo_is_no_answer_and_the_probe_stays_on(tmp_path: Path) -> None:
    """A lease on a folder is refused with EINVAL, which also means "a file system without leases": a user who
    swapped an upload's name for a folder between the caller's look and the probe's open turned the probe off for
    every file of the process."""
    held = tmp_path / "held.json"
    held.write_text("{}\n")
    folder = tmp_path / "swapped.json"
    folder.mkdir()
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with held_open_for_writing(held):
        assert not open_for_writing(folder) and not open_for_writing(fifo)
        assert open_for_writing(held)
