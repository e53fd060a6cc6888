"""Properties of the schedule over random clocks, and its cost with 10,000 definitions."""

from __future__ import annotations

import datetime as dt
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from redpss.jmon.schedule import BACKWARD_TOLERANCE, Definition, Key, Schedule

T0 = 1_800_000_000.0

jobs = st.lists(
    st.tuples(
        st.one_of(st.integers(1, 7200).map(float), st.floats(0.5, 5000.0)),  # interval
        st.sampled_from(["SKIP", "RUN_ONCE"]),
        st.sampled_from([0.0, 5.0, 60.0, 600.0]),  # grace
    ),
    min_size=1,
    max_size=6,
)
steps = st.lists(
    st.one_of(
        st.floats(0.0, 30.0),  # the daemon's usual wake-ups
        st.floats(0.0, 3 * 86400.0),  # stalls and forward jumps
        st.floats(-2 * 86400.0, 0.0),  # the clock set back
    ),
    min_size=1,
    max_size=40,
)


def definitions(spec: list[tuple[float, str, float]]) -> list[Definition]:
    return [
        Definition("JOB", "APP1", i, f"J{i}", True, interval, None, missed_policy=policy, grace_seconds=grace)
        for i, (interval, policy, grace) in enumerate(spec)
    ]


@settings(max_examples=300, deadline=None)
@given(spec=jobs, deltas=steps, aligned=st.booleans())
def test_pop_due_yields_at_most_one_past_tick_per_key_and_never_hangs(
    spec: list[tuple[float, str, float]], deltas: list[float], aligned: bool
) -> None:
    defs = definitions(spec)
    interval = {d.key: float(d.interval_seconds or 0) for d in defs}
    schedule = Schedule(tz=dt.UTC)
    schedule.sync(defs, T0, last_scheduled={d.key: T0 for d in defs} if aligned else None)
    now = T0
    for delta in deltas:
        now += delta
        ticks = schedule.pop_due(now)
        keys = [t.key for t in ticks]
        assert len(keys) == len(set(keys))  # one tick per key per call
        for tick in ticks:
            assert tick.scheduled_at <= now  # never a due time in the future
            assert tick.missed >= 0
            assert tick.action in ("RUN", "SKIP")
        for entry in schedule.entries():
            assert entry.next_due is not None
            assert entry.next_due > now  # nothing left behind: the next call will not replay
            assert entry.next_due <= now + interval[entry.key] + BACKWARD_TOLERANCE + 1e-6  # no hang
        assert schedule.next_due() == min(e.next_due for e in schedule.entries() if e.next_due is not None)


@settings(max_examples=200, deadline=None)
@given(spec=jobs, deltas=st.lists(st.floats(0.0, 20_000.0), min_size=1, max_size=40))
def test_every_due_time_is_accounted_for_exactly_once(
    spec: list[tuple[float, str, float]], deltas: list[float]
) -> None:
    """With a clock that only moves forward, each due time is either the one a tick stands for or counted as missed."""
    defs = definitions(spec)
    schedule = Schedule(tz=dt.UTC)
    schedule.sync(defs, T0, last_scheduled={d.key: T0 for d in defs})
    accounted: dict[Key, int] = {d.key: 0 for d in defs}
    grace = {d.key: d.grace_seconds for d in defs}
    now = T0
    for delta in deltas:
        now += delta
        oldest = {e.key: e.next_due for e in schedule.entries()}
        for tick in schedule.pop_due(now):
            due = oldest[tick.key]
            assert due is not None
            in_grace = due >= now - grace[tick.key]
            accounted[tick.key] += tick.missed + (1 if in_grace else 0)
            missed_reason = {"SKIP": "MISSED", "RUN_ONCE": "MISSED_RUN_ONCE"}[tick.definition.missed_policy]
            assert tick.reason == ("" if in_grace else missed_reason)
    for d in defs:
        assert d.interval_seconds is not None
        last_due = next(e.last_scheduled for e in schedule.entries() if e.key == d.key)
        expected = 0 if last_due is None else round((last_due - T0) / d.interval_seconds)
        assert accounted[d.key] == expected


MAX_GAP = {  # cron expression: the longest time between two of its fire times (UTC)
    "*/5 * * * *": 300.0,
    "*/7 * * * *": 420.0,
    "0 * * * *": 3600.0,
    "30 2 * * *": 86400.0,
    "0 9 * * 1-5": 3 * 86400.0,
}


@settings(max_examples=150, deadline=None)
@given(
    exprs=st.lists(st.sampled_from(sorted(MAX_GAP)), min_size=1, max_size=4),
    policy=st.sampled_from(["SKIP", "RUN_ONCE"]),
    deltas=steps,
)
def test_cron_pop_due_yields_at_most_one_past_tick_per_key_and_never_hangs(
    exprs: list[str], policy: str, deltas: list[float]
) -> None:
    defs = [Definition("JOB", "APP1", i, f"C{i}", True, None, e, missed_policy=policy) for i, e in enumerate(exprs)]
    gap = {d.key: MAX_GAP[e] for d, e in zip(defs, exprs, strict=True)}
    schedule = Schedule(tz=dt.UTC)
    schedule.sync(defs, T0)
    now = T0
    for delta in deltas:
        now += delta
        ticks = schedule.pop_due(now)
        assert len({t.key for t in ticks}) == len(ticks)
        assert all(t.scheduled_at <= now and t.missed >= 0 for t in ticks)
        for entry in schedule.entries():
            assert entry.next_due is not None
            assert now < entry.next_due <= now + gap[entry.key] + BACKWARD_TOLERANCE


def test_heap_stays_compact_under_toggling() -> None:
    on = [Definition("JOB", "APP1", i, f"J{i}", True, 60.0, None) for i in range(2000)]
    off = [Definition("JOB", "APP1", i, f"J{i}", False, 60.0, None) for i in range(2000)]
    schedule = Schedule(tz=dt.UTC)
    for n in range(20):
        schedule.sync(on if n % 2 == 0 else off, T0 + n)
        assert len(schedule._heap) <= 2 * 2000 + 64
    assert schedule.next_due() is None
    schedule.sync(on, T0 + 100)
    assert len(schedule.pop_due(T0 + 160)) == 2000


def test_ten_thousand_jobs_due_in_the_same_second() -> None:
    defs = [Definition("JOB", f"APP{i % 20}", i, f"J{i}", True, 60.0, None) for i in range(10_000)]
    schedule = Schedule(tz=dt.UTC)
    started = time.perf_counter()
    schedule.sync(defs, T0, last_scheduled={d.key: T0 for d in defs})
    synced = time.perf_counter()
    schedule.sync(defs, T0 + 1)  # the regular poll: nothing changed
    polled = time.perf_counter()
    ticks = schedule.pop_due(T0 + 60.5)
    popped = time.perf_counter()
    assert len(ticks) == 10_000
    assert {t.action for t in ticks} == {"RUN"}
    print(
        f"10,000 interval jobs: first sync {1000 * (synced - started):.1f} ms, "
        f"poll sync {1000 * (polled - synced):.1f} ms, pop_due of all {1000 * (popped - polled):.1f} ms"
    )
    assert popped - polled < 5.0  # generous: the measured time is printed above
    assert schedule.pop_due(T0 + 60.5) == []


def test_ten_thousand_cron_jobs() -> None:
    exprs = [f"{m} * * * *" for m in range(50)]
    defs = [Definition("JOB", "APP1", i, f"J{i}", True, None, exprs[i % 50]) for i in range(10_000)]
    schedule = Schedule(tz=dt.UTC)
    started = time.perf_counter()
    schedule.sync(defs, T0 + 1)
    synced = time.perf_counter()
    ticks = schedule.pop_due(T0 + 3600)
    popped = time.perf_counter()
    assert len(ticks) == 10_000
    print(
        f"10,000 cron jobs (50 expressions): sync {1000 * (synced - started):.1f} ms, "
        f"pop_due of all {1000 * (popped - synced):.1f} ms, croniter calls {schedule.calendar.computations}"
    )
    assert popped - started < 5.0
