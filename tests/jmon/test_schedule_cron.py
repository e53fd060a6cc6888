"""Cron jobs in the schedule: local time, daylight saving time, missed counts, restarts and clock jumps."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from redpss.core.errors import StartupError
from redpss.jmon.schedule import Definition, Key, Schedule
from redpss.jmon.timing import COUNT_EXACT_LIMIT, CronCalendar, local_zone

BERLIN = ZoneInfo("Europe/Berlin")
T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, on the hour
HOUR = 3600.0
DAY = 86400.0
KEY: Key = ("JOB", "APP1", 7)


def cron_job(expr: str, id_: int = 7, **kw: Any) -> Definition:
    return Definition("JOB", "APP1", id_, f"CRON_{id_}", True, None, expr, **kw)


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BERLIN).timestamp()


def walk(schedule: Schedule, steps: int) -> list[str]:
    """Fire the next ``steps`` due times on time; their local wall-clock times with UTC offsets."""
    seen = []
    for _ in range(steps):
        due = schedule.next_due()
        assert due is not None
        (tick,) = schedule.pop_due(due)
        assert (tick.action, tick.scheduled_at) == ("RUN", due)
        seen.append(dt.datetime.fromtimestamp(due, BERLIN).strftime("%d %H:%M%z"))
    return seen


def test_cron_due_times_and_pops() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("*/15 * * * *")], T0 + 1)
    assert schedule.next_due() == T0 + 900
    assert schedule.pop_due(T0 + 899) == []
    (tick,) = schedule.pop_due(T0 + 903)
    assert (tick.action, tick.scheduled_at, tick.missed) == ("RUN", T0 + 900, 0)
    assert schedule.next_due() == T0 + 1800


def test_cron_is_evaluated_in_the_servers_local_time() -> None:
    schedule = Schedule(tz=BERLIN)
    schedule.sync([cron_job("0 9 * * *")], T0)  # 08:00 UTC is 09:00 in Berlin (winter): the next 09:00 is tomorrow
    assert schedule.next_due() == berlin(2027, 1, 16, 9, 0)


def test_local_zone_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    zone = local_zone()
    assert dt.datetime(2027, 1, 15, tzinfo=zone).utcoffset() == dt.timedelta(hours=1)
    assert dt.datetime(2027, 7, 15, tzinfo=zone).utcoffset() == dt.timedelta(hours=2)
    monkeypatch.setenv("TZ", ":America/New_York")
    assert dt.datetime(2027, 1, 15, tzinfo=local_zone()).utcoffset() == dt.timedelta(hours=-5)
    monkeypatch.delenv("TZ")
    local_zone()  # /etc/localtime, or the current offset where there is none


@pytest.mark.parametrize(
    "tz", ["No/Such_Zone", "JST-9", "CET-1CEST,M3.5.0,M10.5.0/3", "/no/such/file", "../etc/passwd"]
)
def test_a_tz_that_names_no_zone_is_refused(monkeypatch: pytest.MonkeyPatch, tz: str) -> None:
    """It fell back to /etc/localtime without a word, while the C library followed TZ for every timestamp written:
    with TZ=JST-9 on a UTC host a `0 2 * * *` job ran at 11:00 local time, logged as scheduled then."""
    monkeypatch.setenv("TZ", tz)
    with pytest.raises(StartupError, match=f"TZ={re.escape(tz)} is not a time zone this system knows"):
        local_zone()


def test_dst_spring_forward() -> None:
    """The skipped hour: a 02:30 job runs at 03:00 that day; an hourly job has no 02:00 run."""
    daily = Schedule(tz=BERLIN)
    daily.sync([cron_job("30 2 * * *")], berlin(2026, 3, 28, 12, 0))
    assert walk(daily, 3) == ["29 03:00+0200", "30 02:30+0200", "31 02:30+0200"]
    hourly = Schedule(tz=BERLIN)
    hourly.sync([cron_job("0 * * * *")], berlin(2026, 3, 29, 0, 30))
    assert walk(hourly, 3) == ["29 01:00+0100", "29 03:00+0200", "29 04:00+0200"]


def test_dst_fall_back() -> None:
    """The repeated hour: fixed-hour expressions run in its first pass only, wildcard-hour ones in both passes."""
    daily = Schedule(tz=BERLIN)
    daily.sync([cron_job("30 2 * * *")], berlin(2026, 10, 24, 12, 0))
    assert walk(daily, 2) == ["25 02:30+0200", "26 02:30+0100"]
    hourly = Schedule(tz=BERLIN)
    hourly.sync([cron_job("0 * * * *")], berlin(2026, 10, 25, 0, 30))
    assert walk(hourly, 4) == ["25 01:00+0200", "25 02:00+0200", "25 02:00+0100", "25 03:00+0100"]
    ranged = Schedule(tz=BERLIN)
    ranged.sync([cron_job("*/30 1-3 * * *")], berlin(2026, 10, 25, 0, 30))
    assert walk(ranged, 6) == [
        "25 01:00+0200",
        "25 01:30+0200",
        "25 02:00+0200",
        "25 02:30+0200",
        "25 03:00+0100",
        "25 03:30+0100",
    ]


def test_interval_jobs_ignore_dst() -> None:
    schedule = Schedule(tz=BERLIN)
    start = berlin(2026, 10, 25, 0, 0)
    schedule.sync([Definition("JOB", "APP1", 7, "I", True, HOUR, None)], start, last_scheduled={KEY: start})
    assert walk(schedule, 4) == ["25 01:00+0200", "25 02:00+0200", "25 02:00+0100", "25 03:00+0100"]


@pytest.mark.parametrize(
    ("policy", "action", "reason"), [("SKIP", "SKIP", "MISSED"), ("RUN_ONCE", "RUN", "MISSED_RUN_ONCE")]
)
def test_cron_day_long_jump_gives_one_tick_with_the_missed_count(policy: str, action: str, reason: str) -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("0 * * * *", missed_policy=policy)], T0 - 1)
    assert schedule.next_due() == T0
    (tick,) = schedule.pop_due(T0 + DAY + 1800)
    assert (tick.action, tick.reason, tick.missed, tick.scheduled_at) == (action, reason, 25, T0 + DAY)
    assert schedule.next_due() == T0 + DAY + HOUR


def test_missed_count_of_a_dense_cron_is_cheap_and_right() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("* * * * *")], T0 - 1)
    before = schedule.calendar.computations
    (tick,) = schedule.pop_due(T0 + 3 * DAY + 30)  # 4321 minutes passed: more than are counted one by one
    assert (tick.action, tick.reason, tick.missed, tick.scheduled_at) == ("SKIP", "MISSED", 3 * 1440 + 1, T0 + 3 * DAY)
    assert schedule.calendar.computations - before < COUNT_EXACT_LIMIT + 10
    assert schedule.next_due() == T0 + 3 * DAY + 60


def test_extrapolated_count_of_an_irregular_cron_is_close() -> None:
    calendar = CronCalendar(dt.UTC)
    first = calendar.next_after("*/7 * * * *", T0 - 1)  # 0, 7, ..., 56 in every hour: 9 a hour
    count, newest, following = calendar.due_times("*/7 * * * *", first, T0 + 10 * DAY)
    assert abs(count - 9 * 24 * 10) <= 24 * 10 * 0.2
    assert newest <= T0 + 10 * DAY < following


def test_restart_continues_a_cron_job_from_last_scheduled() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("0 * * * *")], T0 + 100, last_scheduled={KEY: T0 - 3 * HOUR})
    assert schedule.next_due() == T0 - 2 * HOUR
    (tick,) = schedule.pop_due(T0 + 100)
    assert (tick.reason, tick.missed, tick.scheduled_at) == ("MISSED", 3, T0)
    fresh = Schedule(tz=dt.UTC)
    fresh.sync([cron_job("0 * * * *")], T0 + 100, last_scheduled={KEY: T0})
    assert fresh.pop_due(T0 + 100) == []
    assert fresh.next_due() == T0 + HOUR


def test_cron_clock_jump_backwards() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("*/10 * * * *")], T0 + 1)
    back = T0 - 2 * DAY + 30
    assert schedule.pop_due(back) == []
    assert schedule.next_due() == T0 - 2 * DAY + 600
    (tick,) = schedule.pop_due(T0 - 2 * DAY + 600)
    assert (tick.action, tick.missed) == ("RUN", 0)


def test_cron_next_times_are_shared_between_jobs_with_the_same_expression() -> None:
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("*/5 * * * *", id_=i) for i in range(1, 1001)], T0 + 1)
    assert schedule.calendar.computations <= 2
    before = schedule.calendar.computations
    assert len(schedule.pop_due(T0 + 300)) == 1000
    assert schedule.calendar.computations - before <= 2


def test_a_cron_that_stops_firing_is_unscheduled_and_reported_not_raised() -> None:
    once = dt.datetime(2028, 1, 1, tzinfo=dt.UTC).timestamp()
    schedule = Schedule(tz=dt.UTC)
    schedule.sync([cron_job("0 0 1 1 * 0 2028"), cron_job("0 * * * *", id_=8)], T0)
    assert schedule.next_due() == T0 + HOUR
    ticks = schedule.pop_due(once)  # the 2028 job fires its only time; it has no next one
    assert {t.key[2] for t in ticks} == {7, 8}
    assert [e.scheduled for e in schedule.entries()] == [False, True]
    report = schedule.sync([cron_job("0 0 1 1 * 0 2028"), cron_job("0 * * * *", id_=8)], once + 1)
    assert "cron expression '0 0 1 1 * 0 2028' is not valid: it never fires" in report.invalid[KEY]
