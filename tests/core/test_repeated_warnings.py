"""RepeatedWarnings: the first warning of a kind whole, the rest of its minute counted and summed up once."""

from __future__ import annotations

import logging

import pytest

from redpss.core.logging import repeated
from redpss.core.logging.repeated import WINDOW, RepeatedWarnings


class Clock:
    """The monotonic clock RepeatedWarnings reads, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> tuple[RepeatedWarnings, Clock, pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="test.repeated")
    clock = Clock()
    return RepeatedWarnings(logging.getLogger("test.repeated"), clock), clock, caplog


def test_the_first_of_a_kind_is_logged_whole_and_the_rest_of_its_window_summed_up_at_the_tick(
    warnings: tuple[RepeatedWarnings, Clock, pytest.LogCaptureFixture],
) -> None:
    repeats, clock, caplog = warnings
    for row in range(1000):
        repeats.warn("missing.sh", f"refused: cmd/missing.sh does not exist (row {row})")
        clock.now += 0.01
    assert caplog.messages == ["refused: cmd/missing.sh does not exist (row 0)"]
    repeats.flush()  # the window has not ended
    assert len(caplog.messages) == 1
    clock.now += WINDOW
    repeats.flush()
    assert len(caplog.messages) == 2
    assert caplog.messages[1].startswith("999 more like the warning of ")
    assert caplog.messages[1].endswith("; the last: refused: cmd/missing.sh does not exist (row 999)")
    repeats.flush()  # summed up once
    assert len(caplog.messages) == 2


def test_one_after_the_window_sums_up_the_last_and_is_logged_whole(
    warnings: tuple[RepeatedWarnings, Clock, pytest.LogCaptureFixture],
) -> None:
    repeats, clock, caplog = warnings
    repeats.warn("k", "first")
    repeats.warn("k", "second")
    clock.now += WINDOW
    repeats.warn("k", "third")
    assert caplog.messages[0] == "first"
    assert caplog.messages[1].startswith("1 more like the warning of ") and caplog.messages[1].endswith("second")
    assert caplog.messages[2] == "third"


def test_kinds_are_counted_apart(warnings: tuple[RepeatedWarnings, Clock, pytest.LogCaptureFixture]) -> None:
    repeats, _, caplog = warnings
    for kind in ("a", "b", "a", "b", "c"):
        repeats.warn(kind, f"about {kind}")
    assert caplog.messages == ["about a", "about b", "about c"]


def test_beyond_the_kinds_counted_a_warning_is_logged_whole(
    warnings: tuple[RepeatedWarnings, Clock, pytest.LogCaptureFixture], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests that each bring a reason of their own (a run id) cannot fill memory for a minute."""
    repeats, _, caplog = warnings
    monkeypatch.setattr(repeated, "MAX_KINDS", 3)
    for n in range(5):
        repeats.warn(f"run {n} is running already", f"run {n}")
        repeats.warn(f"run {n} is running already", f"run {n} again")
    assert caplog.messages == ["run 0", "run 1", "run 2", "run 3", "run 3 again", "run 4", "run 4 again"]
