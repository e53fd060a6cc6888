"""A restart in the repeated hour of the autumn clock change continues each schedule after the tick that ran.

SCHEDULED_AT is local time without an offset: the run logs cannot tell the first 02:00 of that night from the
second. These tests run in Europe/Berlin (TZ, as the daemons read it), where 2026-10-25 02:00-03:00 comes twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from redpss.core.config import load_config
from redpss.core.db.sqltext import parse_timestamp, timestamp
from redpss.core.paths import InstancePaths
from redpss.jmon.repeated_hour import KEEP_SECONDS, RepeatedHourTicks, ambiguous, newest
from redpss.jmon.schedule import Definition, Key, Schedule, Tick
from redpss.jmon.service import JmonService

BERLIN = ZoneInfo("Europe/Berlin")
KEY: Key = ("JOB", "APP1", 7)
FIRST_TWO = dt.datetime(2026, 10, 25, 2, 0, tzinfo=BERLIN).timestamp()  # 02:00 +02:00
SECOND_TWO = FIRST_TWO + 3600  # 02:00 +01:00, the same wall-clock time


@pytest.fixture(autouse=True)
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def text_of(epoch: float) -> str:
    """SCHEDULED_AT as the run logs hold it."""
    text = timestamp(epoch)
    assert text is not None
    return text


def save(kept: RepeatedHourTicks, now: float) -> None:
    """What JMON's dispatcher does after each round of ticks."""
    data = kept.pending(now)
    if data is not None:
        kept.write(data)


def hourly() -> Definition:
    return Definition("JOB", "APP1", 7, "HOURLY", True, None, "0 * * * *")


def first_due_after_restart(last: float, now: float) -> list[tuple[str, float]]:
    schedule = Schedule(tz=BERLIN)
    schedule.sync([hourly()], now, last_scheduled={KEY: last})
    return [(tick.action, tick.scheduled_at) for tick in schedule.pop_due(now)]


def test_the_run_logs_alone_read_the_second_pass_as_the_first_and_hand_it_out_again() -> None:
    """What the fix is for: the logged text of the second 02:00 parses to the first, so a restart in the second pass
    found the second 02:00 due again: run a second time within the grace (or with MISSED_POLICY RUN_ONCE), else a
    SKIPPED (MISSED) row beside its run."""
    text = text_of(SECOND_TWO)
    assert text == text_of(FIRST_TWO) and parse_timestamp(text) == FIRST_TWO
    assert ambiguous(SECOND_TWO) and ambiguous(FIRST_TWO) and not ambiguous(FIRST_TWO - 3600)
    assert first_due_after_restart(parse_timestamp(text), SECOND_TWO + 1) == [("RUN", SECOND_TWO)]
    assert first_due_after_restart(parse_timestamp(text), SECOND_TWO + 600) == [("SKIP", SECOND_TWO)]


def test_a_kept_tick_of_the_repeated_hour_wins_over_the_logs_reading(tmp_path: Path) -> None:
    kept = RepeatedHourTicks(tmp_path / "jmon-repeated-hour.json")
    kept.note(("JOB", "APP1", 8), FIRST_TWO - 3600)  # 01:00 is not ambiguous: nothing to keep
    kept.note(KEY, FIRST_TWO)
    kept.note(KEY, SECOND_TWO)
    save(kept, SECOND_TWO + 600)
    restarted = RepeatedHourTicks(tmp_path / "jmon-repeated-hour.json").load(SECOND_TWO + 600)
    assert restarted == {KEY: SECOND_TWO}
    last = newest({KEY: parse_timestamp(text_of(SECOND_TWO)), ("JOB", "APP1", 8): 5.0}, restarted)
    assert last == {KEY: SECOND_TWO, ("JOB", "APP1", 8): 5.0}
    assert first_due_after_restart(last[KEY], SECOND_TWO + 1) == []  # the next run is 03:00, not the 02:00 again


def test_a_later_tick_in_the_logs_wins_and_old_kept_ticks_go(tmp_path: Path) -> None:
    path = tmp_path / "jmon-repeated-hour.json"
    kept = RepeatedHourTicks(path)
    kept.note(KEY, SECOND_TWO)
    save(kept, SECOND_TWO)
    later = SECOND_TWO + 3600
    assert newest({KEY: later}, RepeatedHourTicks(path).load(later)) == {KEY: later}
    assert RepeatedHourTicks(path).load(SECOND_TWO + KEEP_SECONDS + 1) == {}
    stale = RepeatedHourTicks(path)
    stale.load(SECOND_TWO)
    stale.note(KEY, SECOND_TWO + 1800)  # 02:30 +01:00
    save(stale, SECOND_TWO + 1800 + KEEP_SECONDS + 1)  # everything kept is old by then: the file goes
    assert not path.exists()


def test_an_unreadable_file_reads_the_logs_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "jmon-repeated-hour.json"
    path.write_text("{not json")
    assert RepeatedHourTicks(path).load(SECOND_TWO) == {}
    assert "cannot be read" in caplog.text


def test_jmon_keeps_the_ticks_it_hands_out_in_the_repeated_hour(instance: InstancePaths) -> None:
    """Every scheduled tick JMON handles (run or skipped: here SCHED is not reachable) is noted, a manual start not;
    the dispatcher writes the file JMON's next start reads."""
    service = JmonService(load_config(instance.config_file), instance, clock=lambda: SECOND_TWO + 1)
    for at in (FIRST_TWO - 3600, FIRST_TWO, SECOND_TWO):
        asyncio.run(service._handle_tick(Tick(KEY, hourly(), at, "RUN")))
    # a manual start moves no schedule (an interval job's grid follows its last scheduled tick)
    asyncio.run(service._handle_tick(Tick(KEY, hourly(), SECOND_TWO + 600, "RUN", "MANUAL")))
    assert service.repeated_hour.ticks == {KEY: SECOND_TWO} and service.repeated_hour.changed
    save(service.repeated_hour, SECOND_TWO + 1)
    assert RepeatedHourTicks(instance.tmp / "jmon-repeated-hour.json").load(SECOND_TWO + 1) == {KEY: SECOND_TWO}


def test_a_kept_tick_stays_until_a_later_one_that_is_not_ambiguous(tmp_path: Path) -> None:
    """A job of a 4 h interval that ticked at the second 02:30 ticks next at 06:30: a restart in between (3.5 h on)
    still needs the kept tick, or its grid moved an hour early and a MISSED row came first. Its next tick, not
    ambiguous, is in the logs as it is: the entry goes then."""
    path = tmp_path / "jmon-repeated-hour.json"
    interval = Definition("JOB", "APP1", 7, "EVERY_4H", True, 4 * 3600.0, None)
    kept = RepeatedHourTicks(path)
    tick = SECOND_TWO + 1800
    kept.note(KEY, tick)
    save(kept, tick)
    restart = tick + 3.5 * 3600
    last = newest({KEY: parse_timestamp(text_of(tick))}, RepeatedHourTicks(path).load(restart))
    schedule = Schedule(tz=BERLIN)
    schedule.sync([interval], restart, last_scheduled=last)
    assert schedule.pop_due(restart) == [] and schedule.next_due() == tick + 4 * 3600
    kept.note(KEY, tick + 4 * 3600)
    save(kept, tick + 4 * 3600)
    assert not path.exists()
