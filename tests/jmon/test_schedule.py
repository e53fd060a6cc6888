"""The scheduling core with interval jobs: due times, toggles, timing changes, overlap, missed runs, clock jumps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from redpss.jmon.schedule import Definition, Key, Schedule, Tick

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC, on the hour
HOUR = 3600.0
DAY = 86400.0


def job(id_: int = 7, interval: float | None = 60.0, cron: str | None = None, **kw: Any) -> Definition:
    fields: dict[str, Any] = {"kind": "JOB", "name": f"JOB_{id_}", "active": True, "schema": "APP1"}
    fields.update(kw)
    return Definition(id=id_, interval_seconds=interval, cron_expr=cron, **fields)


def key(id_: int = 7, kind: str = "JOB") -> Key:
    return (kind, "APP1", id_)


def scheduled(*definitions: Definition, now: float = T0, aligned: bool = True, **kw: Any) -> Schedule:
    """A schedule synced at ``now``; ``aligned`` puts interval jobs on the grid T0 + k * interval (as if last run at T0)
    instead of their spread phase, so tests can name due times."""
    schedule = Schedule(tz=dt.UTC)
    if aligned and "last_scheduled" not in kw:
        kw["last_scheduled"] = {d.key: T0 for d in definitions}
    schedule.sync(definitions, now, **kw)
    return schedule


def due_of(schedule: Schedule, k: Key) -> float | None:
    return {e.key: e.next_due for e in schedule.entries()}[k]


def fire_next(schedule: Schedule, late: float = 0.0, **kw: Any) -> list[Tick]:
    """Pop at the next due time (plus ``late``)."""
    due = schedule.next_due()
    assert due is not None
    return schedule.pop_due(due + late, **kw)


# -- due times ------------------------------------------------------------------------------------------------------
def test_first_due_of_a_never_run_interval_job_is_within_one_interval_and_stable() -> None:
    first = due_of(scheduled(job(interval=600), aligned=False), key())
    assert first is not None
    assert T0 < first <= T0 + 600
    assert first != T0 + 600
    assert due_of(scheduled(job(interval=600), aligned=False), key()) == first  # same phase after a bare restart
    later = due_of(scheduled(job(interval=600), now=T0 + 1234.5, aligned=False), key())
    assert later is not None
    assert (later - first) % 600 == pytest.approx(0) or (later - first) % 600 == pytest.approx(600)


def test_new_interval_jobs_are_spread_over_their_interval_not_bunched() -> None:
    schedule = scheduled(*(job(i, interval=60) for i in range(1, 10_001)), aligned=False)
    dues = [e.next_due for e in schedule.entries()]
    assert all(d is not None and T0 < d <= T0 + 60 for d in dues)
    per_second: dict[int, int] = {}
    for d in dues:
        assert d is not None
        per_second[int(d)] = per_second.get(int(d), 0) + 1
    assert max(per_second.values()) < 400  # uniform would be ~167 per second
    assert schedule.pop_due(T0) == []  # nothing at start: no storm


def test_interval_jobs_are_fixed_rate_lateness_does_not_accumulate() -> None:
    schedule = scheduled(job(interval=60))
    first = schedule.next_due()
    assert first is not None
    assert schedule.pop_due(first - 0.001) == []
    ticks = schedule.pop_due(first + 7.5)  # handled 7.5 s late
    assert [(t.action, t.reason, t.scheduled_at, t.missed) for t in ticks] == [("RUN", "", first, 0)]
    assert schedule.next_due() == first + 60  # anchored on the due time, not on the late pop
    assert [t.scheduled_at for t in fire_next(schedule, late=0.2)] == [first + 60]
    assert [t.scheduled_at for t in fire_next(schedule)] == [first + 120]
    entry = schedule.entries()[0]
    assert entry.last_scheduled == first + 120
    assert entry.last_lateness == 0.0


def test_next_due_is_the_earliest_of_all_and_none_when_empty() -> None:
    assert Schedule(tz=dt.UTC).next_due() is None
    schedule = scheduled(job(1, interval=600), job(2, interval=30), job(3, interval=90))
    dues = [e.next_due for e in schedule.entries()]
    assert schedule.next_due() == min(d for d in dues if d is not None)


def test_pop_due_yields_every_due_entry_once_and_moves_it_on() -> None:
    schedule = scheduled(*(job(i, interval=60) for i in range(1, 51)))
    ticks = schedule.pop_due(T0 + 60)
    assert sorted(t.key for t in ticks) == [key(i) for i in range(1, 51)]
    assert all(t.action == "RUN" and t.scheduled_at <= T0 + 60 for t in ticks)
    assert schedule.pop_due(T0 + 60) == []
    nd = schedule.next_due()
    assert nd is not None
    assert nd > T0 + 60


# -- activation, removal, timing changes ------------------------------------------------------------------------------
def test_activation_toggles_take_effect_at_once_without_a_storm() -> None:
    schedule = scheduled(job(interval=60, active=False), aligned=False)
    assert schedule.next_due() is None
    report = schedule.sync([job(interval=60)], T0 + DAY)
    assert report.activated == [key()]
    due = schedule.next_due()
    assert due is not None
    assert T0 + DAY < due <= T0 + DAY + 60
    assert schedule.pop_due(T0 + DAY) == []  # a day of inactivity is not "missed"
    schedule.run_started(key(), "r1")
    report = schedule.sync([job(interval=60, active=False)], T0 + DAY + 1)
    assert report.deactivated == [key()]
    assert schedule.next_due() is None
    assert schedule.pop_due(T0 + 2 * DAY) == []
    assert schedule.in_flight() == {key(): ["r1"]}  # the running run keeps running
    assert schedule.run_finished(key(), "r1", T0 + 2 * DAY) is None
    assert schedule.in_flight() == {}


def test_reactivation_keeps_the_grid_of_the_last_run() -> None:
    schedule = scheduled(job(interval=HOUR))
    schedule.pop_due(T0 + HOUR)
    schedule.sync([job(interval=HOUR, active=False)], T0 + HOUR + 10)
    schedule.sync([job(interval=HOUR)], T0 + 3 * DAY + 10)
    assert schedule.next_due() == T0 + 3 * DAY + HOUR
    assert schedule.pop_due(T0 + 3 * DAY + 10) == []


def test_many_activations_at_once_do_not_storm() -> None:
    schedule = scheduled(*(job(i, interval=300, active=False) for i in range(1, 2001)))
    report = schedule.sync([job(i, interval=300) for i in range(1, 2001)], T0 + 5 * DAY)
    assert len(report.activated) == 2000
    assert schedule.pop_due(T0 + 5 * DAY) == []
    assert len(schedule.pop_due(T0 + 5 * DAY + 300)) == 2000


def test_added_and_removed_definitions() -> None:
    schedule = scheduled(job(1), job(2))
    report = schedule.sync([job(2), job(3)], T0 + 1)
    assert report.added == [key(3)]
    assert report.removed == [key(1)]
    assert [e.key for e in schedule.entries()] == [key(2), key(3)]
    assert {t.key for t in schedule.pop_due(T0 + 200)} == {key(2), key(3)}


def test_timing_change_waits_for_reload_other_fields_apply_at_once() -> None:
    schedule = scheduled(job(interval=60))
    due = schedule.next_due()
    report = schedule.sync([job(interval=3600, name="RENAMED")], T0 + 1)
    assert report.timing_changed_pending == [key()]
    assert report.timing_applied == []
    assert schedule.next_due() == due
    (entry,) = schedule.entries()
    assert (entry.name, entry.interval_seconds, entry.timing_pending) == ("RENAMED", 60.0, True)
    (tick,) = fire_next(schedule)
    assert tick.definition.name == "RENAMED"
    assert schedule.next_due() == tick.scheduled_at + 60  # still the old interval
    # still pending on the next poll
    assert schedule.sync([job(interval=3600, name="RENAMED")], tick.scheduled_at + 1).timing_changed_pending == [key()]
    reload_at = tick.scheduled_at + 2
    report = schedule.sync([job(interval=3600, name="RENAMED")], reload_at, apply_timing=True)
    assert report.timing_applied == [key()]
    assert report.timing_changed_pending == []
    new_due = schedule.next_due()
    assert new_due == tick.scheduled_at + 3600  # an hour after the last run, on its grid
    (entry,) = schedule.entries()
    assert (entry.interval_seconds, entry.timing_pending) == (3600.0, False)
    # a reload without changes changes nothing
    report = schedule.sync([job(interval=3600, name="RENAMED")], reload_at + 5, apply_timing=True)
    assert report.timing_applied == []
    assert schedule.next_due() == new_due


def test_interval_to_cron_switch_applies_on_reload() -> None:
    schedule = scheduled(job(interval=60))
    report = schedule.sync([job(interval=None, cron="0 * * * *")], T0 + 10, apply_timing=True)
    assert report.timing_applied == [key()]
    assert schedule.next_due() == T0 + HOUR


def test_timing_of_an_unscheduled_definition_is_taken_at_once() -> None:
    schedule = scheduled(job(interval=60, active=False))
    report = schedule.sync([job(interval=None, cron="30 * * * *")], T0 + 10)
    assert report.activated == [key()]
    assert report.timing_changed_pending == []
    assert schedule.next_due() == T0 + 1800


# -- overlap -----------------------------------------------------------------------------------------------------------
def test_overlap_skip() -> None:
    schedule = scheduled(job(interval=60, overlap_policy="SKIP"))
    (tick,) = fire_next(schedule)
    schedule.run_started(key(), "r1")
    assert [(t.action, t.reason) for t in fire_next(schedule)] == [("SKIP", "OVERLAP")]
    assert [(t.action, t.reason) for t in fire_next(schedule)] == [("SKIP", "OVERLAP")]
    assert schedule.run_finished(key(), "r1", tick.scheduled_at + 150) is None
    assert [(t.action, t.reason) for t in fire_next(schedule)] == [("RUN", "")]


def test_overlap_queue_keeps_exactly_one_tick() -> None:
    schedule = scheduled(job(interval=60, overlap_policy="QUEUE"))
    (first,) = fire_next(schedule)
    schedule.run_started(key(), "r1")
    second_due = schedule.next_due()
    assert fire_next(schedule) == []  # queued, not returned
    (entry,) = schedule.entries()
    assert entry.queued
    assert [(t.action, t.reason) for t in fire_next(schedule)] == [("SKIP", "OVERLAP")]
    assert [(t.action, t.reason) for t in fire_next(schedule)] == [("SKIP", "OVERLAP")]
    schedule.run_started(key(), "manual")
    assert schedule.run_finished(key(), "r1", first.scheduled_at + 200) is None  # another run still in flight
    queued = schedule.run_finished(key(), "manual", first.scheduled_at + 201)
    assert queued is not None
    assert (queued.action, queued.reason, queued.scheduled_at) == ("RUN", "QUEUED_OVERLAP", second_due)
    assert schedule.run_finished(key(), "manual", first.scheduled_at + 202) is None  # only one was queued
    assert not schedule.entries()[0].queued


def test_queued_tick_is_skipped_when_suspended_or_blocked_meanwhile() -> None:
    schedule = scheduled(job(1, interval=60, overlap_policy="QUEUE"), job(2, interval=60, overlap_policy="QUEUE"))
    now = T0 + 60
    schedule.pop_due(now)
    schedule.run_started(key(1), "a")
    schedule.run_started(key(2), "b")
    assert schedule.pop_due(now + 60) == []  # both queued
    ticks = schedule.pop_due(now + 61, suspended=True)
    assert sorted((t.key, t.action, t.reason) for t in ticks) == [
        (key(1), "SKIP", "SUSPENDED"),
        (key(2), "SKIP", "SUSPENDED"),
    ]
    assert schedule.run_finished(key(1), "a", now + 62) is None
    schedule.pop_due(now + 120)  # queued again
    blocked = schedule.run_finished(key(2), "b", now + 121, blocked={key(2)})
    assert blocked is not None
    assert (blocked.action, blocked.reason) == ("SKIP", "BLOCKED")


def test_run_lost_frees_the_key() -> None:
    schedule = scheduled(job(1, interval=60), job(2, interval=60, overlap_policy="QUEUE"))
    schedule.pop_due(T0 + 60)
    schedule.run_started(key(1), "r1")
    schedule.run_started(key(2), "r2")
    assert schedule.pop_due(T0 + 120) == [Tick(key(1), job(1), T0 + 120, "SKIP", "OVERLAP")]
    assert schedule.run_lost(key(1), "r1", T0 + 130) is None
    lost = schedule.run_lost(key(2), "r2", T0 + 130)
    assert lost is not None
    assert (lost.action, lost.reason, lost.scheduled_at) == ("RUN", "QUEUED_OVERLAP", T0 + 120)
    assert schedule.in_flight() == {}
    assert sorted((t.key, t.action) for t in schedule.pop_due(T0 + 180)) == [(key(1), "RUN"), (key(2), "RUN")]


def test_runs_started_elsewhere_count_for_overlap() -> None:
    schedule = scheduled(job(interval=60))
    schedule.run_started(key(), "from-redctl")
    schedule.run_started(key(), "from-redctl")  # reported twice: counted once
    assert schedule.in_flight() == {key(): ["from-redctl"]}
    assert [t.reason for t in schedule.pop_due(T0 + 60)] == ["OVERLAP"]


# -- order of checks -----------------------------------------------------------------------------------------------
def test_order_of_checks_suspended_blocked_missed_overlap() -> None:
    def first_reason(**kw: Any) -> tuple[str, str]:
        schedule = scheduled(job(interval=HOUR, kind="WATCHER"))
        schedule.run_started(key(kind="WATCHER"), "r")
        (tick,) = schedule.pop_due(T0 + HOUR + kw.pop("late", 0.0), **kw)
        return tick.action, tick.reason

    watcher = key(kind="WATCHER")
    late = DAY + 1800  # every due time passed is older than the grace
    assert first_reason(suspended=True, blocked={watcher}, late=late) == ("SKIP", "SUSPENDED")
    assert first_reason(blocked={watcher}, late=late) == ("SKIP", "BLOCKED")
    assert first_reason(late=late) == ("SKIP", "MISSED")
    assert first_reason() == ("SKIP", "OVERLAP")


def test_suspended_ticks_are_skipped_one_per_due_time_and_resume_continues() -> None:
    schedule = scheduled(job(interval=60))
    assert [t.reason for t in schedule.pop_due(T0 + 60, suspended=True)] == ["SUSPENDED"]
    assert [t.reason for t in schedule.pop_due(T0 + 120, suspended=True)] == ["SUSPENDED"]
    assert [(t.action, t.scheduled_at) for t in schedule.pop_due(T0 + 180)] == [("RUN", T0 + 180)]


# -- missed runs -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "action", "reason"), [("SKIP", "SKIP", "MISSED"), ("RUN_ONCE", "RUN", "MISSED_RUN_ONCE")]
)
def test_a_day_long_clock_jump_gives_exactly_one_tick(policy: str, action: str, reason: str) -> None:
    schedule = scheduled(job(interval=HOUR, missed_policy=policy, grace_seconds=60))
    due = schedule.next_due()
    assert due is not None
    now = due + DAY + 1800  # due times due, due+1h, ..., due+24h are all older than now - grace
    (tick,) = schedule.pop_due(now)
    assert (tick.action, tick.reason, tick.missed) == (action, reason, 25)
    assert tick.scheduled_at == due + DAY  # stands for the newest missed due time
    assert schedule.next_due() == due + DAY + HOUR  # on the grid, after now: nothing replayed
    assert schedule.pop_due(now + 1) == []
    (tick,) = fire_next(schedule)
    assert (tick.action, tick.reason, tick.missed) == ("RUN", "", 0)


def test_late_within_grace_is_an_ordinary_run() -> None:
    schedule = scheduled(job(interval=HOUR, grace_seconds=60))
    due = schedule.next_due()
    assert due is not None
    (tick,) = schedule.pop_due(due + 59)
    assert (tick.action, tick.reason, tick.missed) == ("RUN", "", 0)
    (tick,) = schedule.pop_due(due + HOUR + 61)
    assert (tick.action, tick.reason, tick.missed) == ("SKIP", "MISSED", 1)


@pytest.mark.parametrize(
    ("policy", "action", "reason"), [("SKIP", "SKIP", "MISSED"), ("RUN_ONCE", "RUN", "MISSED_RUN_ONCE")]
)
def test_a_backlog_counts_as_missed_even_when_its_newest_due_time_just_passed(
    policy: str, action: str, reason: str
) -> None:
    last = T0 - 3 * HOUR  # the instance was down for 3 hours; a 10-minute job missed 18 due times, the last just now
    schedule = scheduled(job(interval=600, missed_policy=policy), now=T0 + 5, last_scheduled={key(): last})
    (tick,) = schedule.pop_due(T0 + 5)
    assert (tick.action, tick.reason, tick.missed, tick.scheduled_at) == (action, reason, 18, T0)
    assert schedule.next_due() == T0 + 600


def test_a_stall_over_several_short_intervals_runs_once_for_the_newest() -> None:
    schedule = scheduled(job(interval=10, grace_seconds=60))
    due = schedule.next_due()
    assert due is not None
    (tick,) = schedule.pop_due(due + 35)  # due, +10, +20, +30 passed; +30 is within grace
    assert (tick.action, tick.reason, tick.scheduled_at, tick.missed) == ("RUN", "", due + 30, 3)
    assert schedule.next_due() == due + 40


@pytest.mark.parametrize(
    ("policy", "action", "reason"), [("SKIP", "SKIP", "MISSED"), ("RUN_ONCE", "RUN", "MISSED_RUN_ONCE")]
)
def test_restart_continues_from_last_scheduled(policy: str, action: str, reason: str) -> None:
    last = T0 - 5 * HOUR - 100  # the newest SCHEDULED_AT in the log; JMON was down since
    definition = job(interval=HOUR, missed_policy=policy)
    schedule = scheduled(definition, now=T0, last_scheduled={key(): last})
    assert schedule.next_due() == last + HOUR  # continues where it stopped
    (tick,) = schedule.pop_due(T0)
    assert (tick.action, tick.reason, tick.missed, tick.scheduled_at) == (action, reason, 5, last + 5 * HOUR)
    assert schedule.next_due() == last + 6 * HOUR


def test_restart_within_the_interval_keeps_the_grid() -> None:
    last = T0 - 100
    schedule = scheduled(job(interval=HOUR), now=T0, last_scheduled={key(): last})
    assert schedule.pop_due(T0) == []
    assert schedule.next_due() == last + HOUR
    assert schedule.entries()[0].last_scheduled == last


def test_last_scheduled_in_the_future_does_not_hang() -> None:
    last = T0 + 3 * DAY  # the log was written by a clock that was ahead
    schedule = scheduled(job(interval=HOUR), now=T0, last_scheduled={key(): last})
    due = schedule.next_due()
    assert due is not None
    assert T0 < due <= T0 + HOUR
    assert (last - due) % HOUR == 0


def test_last_scheduled_is_ignored_for_keys_already_known() -> None:
    schedule = scheduled(job(interval=HOUR))
    due = schedule.next_due()
    schedule.sync([job(interval=HOUR)], T0 + 1, last_scheduled={key(): T0 - DAY})
    assert schedule.next_due() == due


def test_clock_jump_backwards_pulls_due_times_back_to_one_period() -> None:
    schedule = scheduled(job(1, interval=HOUR), job(2, interval=60))
    schedule.pop_due(T0 + HOUR)
    back = T0 - DAY
    assert schedule.pop_due(back) == []  # no storm
    for entry in schedule.entries():
        assert entry.next_due is not None
        assert back < entry.next_due <= back + (HOUR if entry.key == key(1) else 60)
    (tick,) = schedule.pop_due(back + 60)  # no hang: the 60 s job runs a minute later
    assert (tick.key, tick.action) == (key(2), "RUN")
    ticks = {t.key: t for t in schedule.pop_due(back + HOUR)}
    assert (ticks[key(1)].action, ticks[key(1)].scheduled_at) == ("RUN", back + HOUR)  # on the grid as before


def test_small_clock_steps_backwards_change_nothing() -> None:
    schedule = scheduled(job(interval=HOUR))
    due = schedule.next_due()
    schedule.pop_due(T0 + 10)
    schedule.pop_due(T0 + 9.5)
    assert schedule.next_due() == due


# -- manual runs, show, invalid definitions -------------------------------------------------------------------------
def test_trigger_now() -> None:
    schedule = scheduled(job(1, interval=60), job(2, interval=60, active=False), job(3, interval=0))
    due = schedule.next_due()
    schedule.run_started(key(1), "running")
    tick = schedule.trigger_now(key(1), T0 + 5)
    assert tick == Tick(key(1), job(1), T0 + 5, "RUN", "MANUAL")  # overlap is not checked
    assert schedule.next_due() == due  # the regular schedule is untouched
    for unknown in (key(2), key(3), key(99)):
        with pytest.raises(KeyError):
            schedule.trigger_now(unknown, T0 + 5)


def test_entries_for_show() -> None:
    schedule = scheduled(
        job(1, interval=60, overlap_policy="QUEUE"), job(2, cron="*/5 * * * *", interval=None), job(3, active=False)
    )
    schedule.pop_due(T0 + 60.25)
    schedule.run_started(key(1), "r1")
    schedule.pop_due(T0 + 120)
    schedule.sync(
        [job(1, interval=30, overlap_policy="QUEUE"), job(2, cron="*/5 * * * *", interval=None), job(3, active=False)],
        T0 + 121,
    )
    one, two, three = schedule.entries()
    assert one.key == key(1)
    assert (one.name, one.active, one.scheduled, one.running, one.queued) == ("JOB_1", True, True, ["r1"], True)
    assert (one.next_due, one.last_scheduled, one.last_lateness) == (T0 + 180, T0 + 120, 0.0)
    assert (one.interval_seconds, one.cron_expr, one.timing_pending) == (60.0, None, True)
    assert (two.next_due, two.cron_expr, two.interval_seconds) == (T0 + 300, "*/5 * * * *", None)
    assert two.last_scheduled == T0
    assert (three.active, three.scheduled, three.next_due, three.running) == (False, False, None, [])
    assert not three.queued


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        (
            job(7, name="LOAD_ORDERS", interval=None, cron="61 * * * *"),
            "APP1 job 7 (LOAD_ORDERS): cron expression '61 * * * *' is not valid: ",
        ),
        (job(7, interval=None, cron="0 0 31 2 *"), "cron expression '0 0 31 2 *' is not valid: it never fires"),
        (job(7, interval=None, cron="every hour"), "cron expression 'every hour' is not valid"),
        (job(7, interval=60, cron="* * * * *"), "both INTERVAL_SECONDS (60) and CRON_EXPR ('* * * * *') are set"),
        (job(7, interval=0), "INTERVAL_SECONDS 0 is not allowed; it must be a number of seconds > 0"),
        (job(7, interval=-5), "INTERVAL_SECONDS -5 is not allowed"),
        (job(7, interval=float("nan")), "INTERVAL_SECONDS nan is not allowed"),
        (job(7, overlap_policy="PARALLEL"), "OVERLAP_POLICY 'PARALLEL' is unknown; allowed: SKIP, QUEUE"),
        (job(7, missed_policy="ALL"), "MISSED_POLICY 'ALL' is unknown; allowed: SKIP, RUN_ONCE"),
        (job(7, grace_seconds=-1), "GRACE_SECONDS -1 is not allowed"),
        (job(7, payload={"timeout": 0.0}), "TIMEOUT_SECONDS 0 is not allowed; it must be a number of seconds > 0"),
        (job(7, payload={"timeout": -100.0}), "TIMEOUT_SECONDS -100 is not allowed"),
    ],
)
def test_invalid_definitions_are_reported_and_not_scheduled(definition: Definition, expected: str) -> None:
    schedule = Schedule(tz=dt.UTC)
    report = schedule.sync([definition, job(8)], T0)
    assert list(report.invalid) == [key(7)]
    assert expected in report.invalid[key(7)]
    assert report.invalid[key(7)].startswith("APP1 job 7 (")
    assert [e.key for e in schedule.entries() if e.scheduled] == [key(8)]
    assert {t.key for t in schedule.pop_due(T0 + 10 * DAY)} == {key(8)}
    # still reported on the next poll; fixed, it is scheduled from now
    assert list(schedule.sync([definition, job(8)], T0 + 10 * DAY).invalid) == [key(7)]
    report = schedule.sync([job(7), job(8)], T0 + 10 * DAY + 1)
    assert report.invalid == {}
    assert [e.scheduled for e in schedule.entries()] == [True, True]
    assert schedule.pop_due(T0 + 10 * DAY + 1) == []


def test_inactive_definitions_are_not_checked() -> None:
    schedule = Schedule(tz=dt.UTC)
    assert schedule.sync([job(interval=0, active=False)], T0).invalid == {}
    assert list(schedule.sync([job(interval=0)], T0 + 1).invalid) == [key()]


def test_a_job_without_interval_or_cron_runs_only_on_demand() -> None:
    schedule = Schedule(tz=dt.UTC)
    report = schedule.sync([job(7, interval=None)], T0)
    assert report.invalid == {}
    assert schedule.pop_due(T0 + 10 * DAY) == []
    entry = schedule.entries()[0]
    assert (entry.active, entry.scheduled, entry.next_due) == (True, False, None)
    # given a timing later (and reloaded), it is scheduled like any other job
    schedule.sync([job(7, interval=60)], T0 + 1, apply_timing=True)
    assert schedule.entries()[0].scheduled


def test_a_watcher_needs_an_interval_or_cron() -> None:
    schedule = Schedule(tz=dt.UTC)
    watcher = job(3, interval=None, kind="WATCHER", name="W")
    report = schedule.sync([watcher], T0)
    assert (
        "neither INTERVAL_SECONDS nor CRON_EXPR is set; a watcher needs one of them"
        in report.invalid[key(3, "WATCHER")]
    )


def test_a_key_defined_twice_is_invalid() -> None:
    report = Schedule(tz=dt.UTC).sync([job(7), job(7, name="OTHER")], T0)
    assert report.invalid == {
        key(7): "APP1 job 7 (JOB_7): defined 2 times; ids must be unique per schema, so none of them is scheduled"
    }


def test_a_broken_pending_timing_change_is_reported_but_the_schedule_stays() -> None:
    schedule = scheduled(job(interval=None, cron="*/5 * * * *"))
    due = schedule.next_due()
    report = schedule.sync([job(interval=None, cron="61 */5 * * *")], T0 + 1)
    assert report.timing_changed_pending == [key()]
    assert "not applied: the current schedule stays until `redctl reload`" in report.invalid[key()]
    assert schedule.next_due() == due
    report = schedule.sync([job(interval=None, cron="61 */5 * * *")], T0 + 2, apply_timing=True)
    assert "not applied" not in report.invalid[key()]
    assert schedule.next_due() is None


def test_keys_are_normalised() -> None:
    definition = Definition("job", "app1", 7, "X", True, 60.0, None)
    assert definition.key == ("JOB", "APP1", 7)
    assert definition.timing() == (60.0, None)
    assert Definition("JOB", "A", 1, "X", True, None, "  ").timing() == (None, None)


def test_a_run_adopted_from_sched_holds_its_job_and_its_tick_is_done() -> None:
    """JMON restarted while a scheduled run went on: the run's tick came due again from the log (the run has no row
    yet) and was skipped as OVERLAP beside its own run; the next tick is skipped as usual while it runs."""
    before_read = Schedule(tz=dt.UTC)
    before_read.run_adopted(key(), "in-sched", T0 + 60)  # learnt from SCHED before the first poll
    before_read.sync([job(interval=60)], T0 + 65, last_scheduled={key(): T0})
    after_read = scheduled(job(interval=60))  # read first, then learnt from SCHED
    after_read.run_adopted(key(), "in-sched", T0 + 60)
    for schedule in (before_read, after_read):
        assert schedule.in_flight() == {key(): ["in-sched"]}
        assert schedule.pop_due(T0 + 70) == []  # T0 + 60 is the adopted run's own tick
        assert schedule.pop_due(T0 + 120) == [Tick(key(), job(interval=60), T0 + 120, "SKIP", "OVERLAP")]
