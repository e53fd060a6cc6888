"""Exact behaviours of the scheduling core that the broader tests leave open: the boundaries of the grace period,
the float rounding of interval grids, what a fired tick carries, the time zone lookup, and the guards that keep the
daemon's loop from spinning. Each assertion pins one value, so a changed comparison or an off-by-one is noticed
(mutation testing, see pyproject's [tool.mutmut]).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from redpss.jmon.schedule import Definition, Key, Schedule, Tick
from redpss.jmon.timing import CronCalendar, CronInvalid, grid_after, interval_due_times, local_zone, spread_phase

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, on the hour
HOUR = 3600.0


def job(id_: int = 7, interval: float | None = 60.0, cron: str | None = None, **kw: Any) -> Definition:
    fields: dict[str, Any] = {"kind": "JOB", "name": f"JOB_{id_}", "active": True, "schema": "APP1"}
    fields.update(kw)
    return Definition(id=id_, interval_seconds=interval, cron_expr=cron, **fields)


def key(id_: int = 7) -> Key:
    return ("JOB", "APP1", id_)


def on_grid(*definitions: Definition, now: float = T0) -> Schedule:
    """Interval jobs on the grid T0 + k * interval (as if last run at T0)."""
    schedule = Schedule(tz=dt.UTC)
    schedule.sync(definitions, now, last_scheduled={d.key: T0 for d in definitions})
    return schedule


KEY = key()


def entry(schedule: Schedule, k: Key = KEY) -> Any:
    return next(e for e in schedule.entries() if e.key == k)


# -- interval_due_times and grid_after ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "interval", "now", "expected"),
    [
        (100.0, 10.0, 100.0, (1, 100.0, 110.0)),  # due right now: one due time, the next one interval later
        (100.0, 10.0, 109.999, (1, 100.0, 110.0)),
        (100.0, 10.0, 110.0, (2, 110.0, 120.0)),  # a grid point equal to now counts
        (100.0, 10.0, 135.0, (4, 130.0, 140.0)),
        (0.0, 3.0, 9.0, (4, 9.0, 12.0)),
        # float rounding: floor((2.0 - 0.1) / 0.1) is 18, but the grid point 0.1 + 19 * 0.1 == 2.0 is due too
        (0.1, 0.1, 2.0, (20, 2.0, 2.1)),
        # and the other way: 0.1 + 17 * 0.1 lies above 1.8, so the newest due time is the one before
        (0.1, 0.1, 1.8, (17, 1.7000000000000002, 1.8000000000000003)),
        # rounding up at the second grid point: back to the first, recomputed from the second
        (0.7000000000000001, 1.1, 1.8, (1, 0.7000000000000002, 1.8000000000000003)),
    ],
)
def test_interval_due_times_exactly(
    due: float, interval: float, now: float, expected: tuple[int, float, float]
) -> None:
    assert interval_due_times(due, interval, now) == expected


@pytest.mark.parametrize(
    ("anchor", "interval", "after", "expected"),
    [
        (0.0, 10.0, 25.0, 30.0),
        (0.0, 10.0, 30.0, 40.0),  # strictly after
        (5.0, 10.0, 4.0, 5.0),
        (100.0, 10.0, 0.0, 10.0),  # an anchor in the future: the grid reaches back
        (0.1, 0.1, 2.0, 2.1),
        (0.1, 0.1, 1.7, 1.7000000000000002),  # 0.1 + 16 * 0.1 lies a hair above 1.7
        (0.0, 0.1, 0.2, 0.20000000000000004),  # 3 * 0.1 rounds above 0.3: one step back, still after 0.2
    ],
)
def test_grid_after_is_the_first_grid_point_strictly_after(
    anchor: float, interval: float, after: float, expected: float
) -> None:
    assert grid_after(anchor, interval, after) == expected


def test_spread_phase_is_stable_and_inside_the_interval() -> None:
    assert spread_phase("JOB:APP1:7", 60.0) == spread_phase("JOB:APP1:7", 60.0)
    assert 0.0 <= spread_phase("JOB:APP1:7", 60.0) < 60.0
    assert spread_phase("JOB:APP1:7", 120.0) == 2 * spread_phase("JOB:APP1:7", 60.0)
    assert spread_phase("JOB:APP1:7", 60.0) != spread_phase("JOB:APP1:8", 60.0)


# -- what a fired tick carries --------------------------------------------------------------------------------------


def test_the_oldest_due_time_exactly_at_the_grace_limit_is_still_an_ordinary_run() -> None:
    schedule = on_grid(job(interval=600.0, grace_seconds=60.0))
    (tick,) = schedule.pop_due(T0 + 600.0 + 60.0)  # late by exactly the grace
    assert (tick.action, tick.reason, tick.missed, tick.scheduled_at) == ("RUN", "", 0, T0 + 600.0)


def test_a_hair_beyond_the_grace_the_whole_backlog_is_missed() -> None:
    schedule = on_grid(job(interval=600.0, grace_seconds=60.0))
    (tick,) = schedule.pop_due(T0 + 600.0 + 60.5)
    assert (tick.action, tick.reason, tick.missed, tick.scheduled_at) == ("SKIP", "MISSED", 1, T0 + 600.0)


def test_zero_grace_means_any_lateness_is_missed() -> None:
    schedule = on_grid(job(interval=600.0, grace_seconds=0.0, missed_policy="RUN_ONCE"))
    (tick,) = schedule.pop_due(T0 + 600.0)
    assert (tick.action, tick.reason, tick.missed) == ("RUN", "", 0)
    (tick,) = schedule.pop_due(T0 + 1200.5)
    assert (tick.action, tick.reason, tick.missed) == ("RUN", "MISSED_RUN_ONCE", 1)


def test_a_fired_entry_records_its_newest_due_time_and_lateness() -> None:
    schedule = on_grid(job(interval=10.0, grace_seconds=60.0))
    assert entry(schedule).last_scheduled == T0 and entry(schedule).last_lateness is None
    (tick,) = schedule.pop_due(T0 + 32.5)  # T0+10, +20, +30 passed
    assert (tick.scheduled_at, tick.missed) == (T0 + 30.0, 2)
    shown = entry(schedule)
    assert shown.last_scheduled == T0 + 30.0
    assert shown.last_lateness == 2.5
    assert shown.next_due == T0 + 40.0


def test_a_tick_carries_the_definition_and_key_it_fired_for() -> None:
    definition = job(interval=10.0)
    schedule = on_grid(definition)
    (tick,) = schedule.pop_due(T0 + 10.0)
    assert tick == Tick(key(), definition, T0 + 10.0, "RUN", "", 0)


def test_a_queued_overlap_tick_keeps_the_due_time_and_missed_count_it_fired_with() -> None:
    schedule = on_grid(job(interval=10.0, overlap_policy="QUEUE", grace_seconds=60.0))
    schedule.run_started(key(), "r1")
    assert schedule.pop_due(T0 + 25.0) == []  # T0+10 and T0+20 passed while r1 runs: queued
    assert entry(schedule).queued is True
    (skipped,) = schedule.pop_due(T0 + 30.0)  # only one is remembered; the next overlapping one is skipped
    assert (skipped.action, skipped.reason, skipped.scheduled_at) == ("SKIP", "OVERLAP", T0 + 30.0)
    queued = schedule.run_finished(key(), "r1", T0 + 31.0)
    assert queued == Tick(
        key(), job(interval=10.0, overlap_policy="QUEUE", grace_seconds=60.0), T0 + 20.0, "RUN", "QUEUED_OVERLAP", 1
    )
    assert entry(schedule).queued is False


def test_a_queued_backlog_beyond_the_grace_carries_the_whole_count() -> None:
    schedule = on_grid(job(interval=10.0, overlap_policy="QUEUE", missed_policy="RUN_ONCE", grace_seconds=5.0))
    schedule.run_started(key(), "r1")
    assert schedule.pop_due(T0 + 35.0) == []
    queued = schedule.run_finished(key(), "r1", T0 + 36.0)
    assert queued is not None and (queued.scheduled_at, queued.missed) == (T0 + 30.0, 3)


def test_a_cron_that_ends_still_gives_its_last_tick_and_keeps_a_queued_one() -> None:
    last = dt.datetime(2028, 1, 1, tzinfo=dt.UTC).timestamp()
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([job(interval=None, cron="0 0 1 1 * 0 2028", overlap_policy="QUEUE")], T0)
    schedule.run_started(key(), "r1")
    assert schedule.pop_due(last) == []  # queued behind r1, and the expression fires no more
    shown = entry(schedule)
    assert shown.scheduled is False and shown.queued is True
    queued = schedule.run_finished(key(), "r1", last + 1)
    assert queued is not None and (queued.action, queued.reason, queued.scheduled_at) == ("RUN", "QUEUED_OVERLAP", last)
    report = schedule.sync([job(interval=None, cron="0 0 1 1 * 0 2028", overlap_policy="QUEUE")], last + 2)
    assert "never fires" in report.invalid[key()]


def test_a_cron_ending_while_a_tick_waits_keeps_the_waiting_tick() -> None:
    first = dt.datetime(2028, 1, 1, 0, 0, tzinfo=dt.UTC).timestamp()
    last = dt.datetime(2028, 1, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    definition = job(interval=None, cron="0 0,12 1 1 * 0 2028", overlap_policy="QUEUE")
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([definition], T0)
    schedule.run_started(key(), "r1")
    assert schedule.pop_due(first) == []  # queued behind r1
    (skipped,) = schedule.pop_due(last)  # its last fire time: an overlap skip, and the expression ends
    assert (skipped.action, skipped.reason, skipped.scheduled_at) == ("SKIP", "OVERLAP", last)
    reason = schedule._entries[key()].invalid
    assert reason == "APP1 job 7 (JOB_7): cron expression '0 0,12 1 1 * 0 2028' fires no more after this run"
    assert entry(schedule).scheduled is False and entry(schedule).queued is True
    queued = schedule.run_finished(key(), "r1", last + 1)
    assert queued == Tick(key(), definition, first, "RUN", "QUEUED_OVERLAP", 0)


def test_a_queued_tick_carries_the_definition_as_it_is_when_it_runs() -> None:
    schedule = on_grid(job(interval=10.0, overlap_policy="QUEUE"))
    schedule.run_started(key(), "r1")
    assert schedule.pop_due(T0 + 10.0) == []
    renamed = job(interval=10.0, overlap_policy="QUEUE", name="RENAMED")
    schedule.sync([renamed], T0 + 11.0)
    queued = schedule.run_finished(key(), "r1", T0 + 12.0)
    assert queued == Tick(key(), renamed, T0 + 10.0, "RUN", "QUEUED_OVERLAP", 0)


def test_a_cron_whose_next_time_croniter_cannot_compute_is_unscheduled_with_the_reason() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([job(interval=None, cron="0 * * * *")], T0)
    entries = schedule._entries  # the expression breaks after it was accepted (as a croniter error would)
    entries[key()].timing = (None, "not a cron")
    assert schedule.pop_due(T0 + HOUR) == []
    shown = entry(schedule)
    assert shown.scheduled is False and schedule.next_due() is None
    reason = entries[key()].invalid
    assert reason is not None
    assert reason.startswith("APP1 job 7 (JOB_7): cron expression 'not a cron' has no further fire time")


class StuckCalendar(CronCalendar):
    """A calendar whose next fire time is not after now: what the guard in the schedule must survive."""

    def due_times(self, expr: str, due: float, now: float) -> tuple[int, float, float]:
        return (1, due, now)


def test_a_next_time_not_after_now_is_moved_just_past_now_so_the_loop_cannot_spin() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.calendar = StuckCalendar(dt.UTC)
    schedule.sync([job(interval=None, cron="0 * * * *")], T0)
    (tick,) = schedule.pop_due(T0 + HOUR)
    assert tick.scheduled_at == T0 + HOUR
    assert schedule.next_due() == math.nextafter(T0 + HOUR, math.inf)
    assert schedule.pop_due(T0 + HOUR) == []


def test_due_times_after_a_fire_are_strictly_after_now() -> None:
    schedule = on_grid(job(interval=0.1, grace_seconds=60.0))
    now = T0 + 0.30000000000000004
    schedule.pop_due(now)
    due = schedule.next_due()
    assert due is not None and due > now


# -- the time zone --------------------------------------------------------------------------------------------------


def test_local_zone_reads_tz_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    zone = local_zone()
    assert isinstance(zone, ZoneInfo) and zone.key == "Asia/Tokyo"


def test_local_zone_strips_the_leading_colon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", ":Asia/Tokyo")
    zone = local_zone()
    assert isinstance(zone, ZoneInfo) and zone.key == "Asia/Tokyo"


def test_local_zone_reads_tz_as_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path("/usr/share/zoneinfo/Asia/Tokyo")
    if not path.exists():
        pytest.skip("no zoneinfo database on this machine")
    monkeypatch.setenv("TZ", str(path))
    zone = local_zone()
    assert isinstance(zone, ZoneInfo) and zone.key == str(path)
    assert dt.datetime(2027, 1, 15, tzinfo=zone).utcoffset() == dt.timedelta(hours=9)


@pytest.mark.parametrize("tz", ["", ":"])  # a TZ that names nothing is no TZ (one that names no zone is refused)
def test_local_zone_falls_back_to_etc_localtime(monkeypatch: pytest.MonkeyPatch, tz: str) -> None:
    if not Path("/etc/localtime").exists():
        pytest.skip("no /etc/localtime on this machine")
    monkeypatch.setenv("TZ", tz)
    zone = local_zone()
    assert isinstance(zone, ZoneInfo) and zone.key == "/etc/localtime"


def test_local_zone_without_tz_is_etc_localtime(monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/etc/localtime").exists():
        pytest.skip("no /etc/localtime on this machine")
    monkeypatch.delenv("TZ", raising=False)
    zone = local_zone()
    assert isinstance(zone, ZoneInfo) and zone.key == "/etc/localtime"


def test_a_schedule_without_a_zone_uses_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    schedule = Schedule()
    assert isinstance(schedule.calendar.tz, ZoneInfo) and schedule.calendar.tz.key == "Asia/Tokyo"
    schedule.sync([job(interval=None, cron="0 9 * * *")], T0)  # 08:00 UTC is 17:00 in Tokyo: next 09:00 is tomorrow
    assert schedule.next_due() == dt.datetime(2027, 1, 16, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp()


# -- cron calendar details ------------------------------------------------------------------------------------------


def test_cron_next_after_is_strictly_after_and_memoised() -> None:
    calendar = CronCalendar(dt.UTC)
    assert calendar.next_after("0 * * * *", T0) == T0 + HOUR
    assert calendar.next_after("0 * * * *", T0 - 1) == T0
    used = calendar.computations
    assert calendar.next_after("0 * * * *", T0) == T0 + HOUR
    assert calendar.computations == used
    assert calendar.prev_before("0 * * * *", T0) == T0 - HOUR
    assert calendar.prev_before("0 * * * *", T0 + 1) == T0


def test_cron_due_times_exactly() -> None:
    calendar = CronCalendar(dt.UTC)
    assert calendar.due_times("0 * * * *", T0, T0) == (1, T0, T0 + HOUR)
    assert calendar.due_times("0 * * * *", T0, T0 + HOUR) == (2, T0 + HOUR, T0 + 2 * HOUR)
    assert calendar.due_times("0 * * * *", T0, T0 + 2.5 * HOUR) == (3, T0 + 2 * HOUR, T0 + 3 * HOUR)
    assert calendar.next_or_inf("0 0 1 1 * 0 2027", T0) == math.inf


# -- runs -----------------------------------------------------------------------------------------------------------


def test_the_last_run_is_the_newest_run_that_began_never_a_skipped_tick() -> None:
    schedule = on_grid(job(interval=10.0), job(8, interval=10.0))
    assert entry(schedule).last_started is None
    schedule.run_began(key(), T0 + 5.0)
    assert entry(schedule).last_started == T0 + 5.0
    schedule.run_began(key(), T0 + 3.0)  # reported late: an older start never replaces a newer one
    assert entry(schedule).last_started == T0 + 5.0
    schedule.runs_began({key(): T0 + 7.0, key(8): T0 + 1.0, key(99): T0})  # at start, from the run logs
    assert (entry(schedule).last_started, entry(schedule, key(8)).last_started) == (T0 + 7.0, T0 + 1.0)
    assert [e.key for e in schedule.entries()] == [key(), key(8)]  # a start of an unknown key adds nothing
    (skip, _) = schedule.pop_due(T0 + 10.0, suspended=True)
    assert skip.action == "SKIP" and entry(schedule).last_scheduled == T0 + 10.0
    assert entry(schedule).last_started == T0 + 7.0


@pytest.mark.parametrize(
    ("suspended", "blocked", "action", "reason"),
    [(False, (), "RUN", "QUEUED_OVERLAP"), (True, (), "SKIP", "SUSPENDED"), (False, (KEY,), "SKIP", "BLOCKED")],
)
def test_a_lost_run_hands_back_the_queued_tick_as_a_finished_one_does(
    suspended: bool, blocked: tuple[Key, ...], action: str, reason: str
) -> None:
    schedule = on_grid(job(interval=10.0, overlap_policy="QUEUE"))
    schedule.run_started(key(), "r1")
    schedule.run_started(key(), "r2")
    assert schedule.pop_due(T0 + 10.0) == []
    assert schedule.run_lost(key(), "r1", T0 + 11.0, suspended=suspended, blocked=blocked) is None  # r2 still runs
    tick = schedule.run_lost(key(), "r2", T0 + 12.0, suspended=suspended, blocked=blocked)
    assert tick is not None and (tick.action, tick.reason, tick.scheduled_at) == (action, reason, T0 + 10.0)
    assert schedule.in_flight() == {}
    assert schedule.run_lost(key(), "r2", T0 + 13.0) is None  # told twice: nothing more


def test_deactivating_drops_a_queued_tick_and_a_reload_with_new_timing_keeps_it() -> None:
    definition = job(interval=10.0, overlap_policy="QUEUE")
    schedule = on_grid(definition)
    schedule.run_started(key(), "r1")
    assert schedule.pop_due(T0 + 10.0) == []
    faster = job(interval=5.0, overlap_policy="QUEUE")
    report = schedule.sync([faster], T0 + 11.0, apply_timing=True)
    assert report.timing_applied == [key()] and entry(schedule).queued is True
    schedule.sync([job(interval=5.0, overlap_policy="QUEUE", active=False)], T0 + 12.0)
    assert entry(schedule).queued is False
    assert schedule.run_finished(key(), "r1", T0 + 13.0) is None


def test_a_deactivated_invalid_definition_is_no_longer_reported() -> None:
    schedule = Schedule(tz=dt.UTC)
    report = schedule.sync([job(interval=-1.0)], T0)
    assert key() in report.invalid
    report = schedule.sync([job(interval=-1.0, active=False)], T0 + 1.0)
    assert report.invalid == {} and report.deactivated == [key()]


def test_trigger_now_names_the_key_it_does_not_know() -> None:
    schedule = Schedule(tz=dt.UTC)
    with pytest.raises(KeyError) as caught:
        schedule.trigger_now(key(), T0)
    assert caught.value.args == (key(),)


def test_cron_calendar_counts_each_croniter_call_and_reuses_one_iterator_per_expression() -> None:
    calendar = CronCalendar(dt.UTC)
    assert calendar.computations == 0
    calendar.next_after("0 * * * *", T0)
    assert calendar.computations == 1
    calendar.prev_before("0 * * * *", T0)
    assert calendar.computations == 2
    calendar.next_after("0 * * * *", T0 + 1.0)
    assert calendar.computations == 3
    assert calendar._iter("0 * * * *") is calendar._iter("0 * * * *")
    assert list(calendar._iters) == ["0 * * * *"]


def test_an_invalid_cron_expression_is_explained_in_croniters_words() -> None:
    with pytest.raises(CronInvalid) as caught:
        CronCalendar(dt.UTC).check("61 * * * *", T0)
    assert "61" in str(caught.value) and "None" not in str(caught.value)
    assert str(caught.value) != type(caught.value.__cause__).__name__
