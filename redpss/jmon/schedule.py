"""JMON's scheduling core: when each job and watcher is due, and what to do at each due tick.

Pure logic: no I/O, no clock, no threads. Every call gets ``now`` (epoch seconds), so the daemon drives it with the
real clock and the tests with any clock they like.

Decisions (each pinned down by a test in tests/jmon/):

First due time.
  A definition added with a ``last_scheduled`` time (the newest SCHEDULED_AT in its log, given at JMON start)
  continues where it stopped: interval jobs on the grid ``last + k * interval``, cron jobs at the first fire time
  after ``last``. Due times that passed meanwhile are handled by the missed policy at the first ``pop_due``.
  Without one, an interval job's first due time is the next point of a grid with a stable per-job offset
  (``crc32(key) mod interval``): it lies in (now, now + interval], and 10,000 new jobs with the same interval are
  spread over that interval instead of all firing in the same second, start after start. A cron job is due at its
  first fire time after now. A definition that is activated, fixed, or whose timing change is applied starts at
  its first due time after ``now`` (never a storm of old due times); an interval job keeps the grid of its newest
  due time if it has one (so an interval raised from 1 s to 1 h on reload next runs an hour after its last run).

Fixed rate.
  Interval jobs are anchored: the next due time is ``due + interval``, not ``now + interval``, so lateness does not
  accumulate. Cron uses croniter in the server's local time (see redpss.jmon.timing for daylight saving time).

Stalls, clock jumps and downtime.
  ``pop_due(now)`` yields at most ONE tick per key per call, and afterwards the key's next due time is after now: the
  due times passed over are never replayed. With due times d1 < ... < dm <= now, the tick stands for the newest, dm.
  If the oldest, d1, is late by no more than ``grace_seconds``, it is an ordinary run (``missed`` = m - 1 tells how
  many were passed over; more than 0 only for intervals shorter than the grace). If d1 is older than now - grace,
  the whole backlog counts as missed: missed_policy SKIP gives one SKIP "MISSED" tick, RUN_ONCE one RUN
  "MISSED_RUN_ONCE" tick, both with ``missed`` = m (after 3 hours of downtime a 10-minute job reports 18).
  Counts are exact for intervals; for cron they are exact up to 512 and extrapolated beyond (days of stall on an
  every-minute expression cost milliseconds).
  When ``now`` is more than a second below the largest ``now`` seen (the clock was set back), every due time is
  pulled back to at most one period after the new now (the same grid for intervals, the next fire time for cron):
  no hang until the clock catches up, and no storm.

Order of checks for a due tick.
  1. suspended -> SKIP "SUSPENDED"; 2. key in ``blocked`` (watcher executor error) -> SKIP "BLOCKED";
  3. all due times missed and missed_policy SKIP -> SKIP "MISSED"; 4. a run of the key in flight ->
  overlap_policy SKIP -> SKIP "OVERLAP"; QUEUE -> the tick is remembered (no tick is returned now; at most one is
  remembered, later ones are SKIP "OVERLAP") and ``run_finished``/``run_lost`` hand it back as RUN "QUEUED_OVERLAP"
  when the last run of the key ends; 5. RUN ("" or "MISSED_RUN_ONCE").
  A remembered tick is handed back as SKIP "SUSPENDED"/"BLOCKED" instead if the instance is suspended or the key
  blocked by then (from ``pop_due`` or from ``run_finished`` when the caller passes those arguments).

Runs in flight are tracked per key by run id (``run_started``/``run_finished``/``run_lost``), independently of the
definitions: a run keeps counting while its definition is deactivated or removed. When a run actually began
(``run_began``: scheduled, manual or started by a watcher) is kept apart from the due times handled: ``redctl show``
reports it as the last run, which a skipped tick never is.

Timing changes.
  A change of interval/cron of a definition that is scheduled waits for ``sync(..., apply_timing=True)``
  (``redctl reload``) and is reported as pending until then; everything else in a definition (name, payload,
  policies, the active flag) applies at once. A pending change that would make the definition invalid is reported
  as invalid at once, while the current schedule stays. A definition that is not scheduled (inactive or invalid)
  takes its new timing at once: there is no running schedule to protect.

Invalid definitions.
  An active definition that cannot be scheduled (no interval and no cron, both, interval <= 0, a cron expression
  croniter rejects or one that never fires, an unknown policy, negative grace, a key defined twice) is reported
  with a message naming the schema, kind, id, name, the value and what is allowed, and is not scheduled. Inactive
  definitions are checked when they are activated.

Cost, for n definitions: ``sync`` O(n) plus one croniter call per distinct (cron expression, start) pair;
``pop_due`` O(k log n) for k due entries (a heap with lazy deletion; cron next times are computed only for
entries that fire, memoised per expression and due time); ``next_due`` O(1) amortised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redpss.jmon.timing import CronCalendar, CronInvalid, grid_after, interval_due_times, local_zone, spread_phase
from redpss.sched.runs import OVERLAP_POLICIES
from redpss.sched.ticks import SAME_TICK

Key = tuple[str, str, int]  # (kind "JOB"|"WATCHER", schema upper case, id)

KINDS = ("JOB", "WATCHER")
MISSED_POLICIES = ("SKIP", "RUN_ONCE")
BACKWARD_TOLERANCE = 1.0  # seconds the clock may go back before due times are pulled back to the new now
HEAP_SLACK = 64  # stale heap items tolerated beyond twice the scheduled count before the heap is rebuilt


@dataclass(frozen=True)
class Definition:
    """A job or watcher as JMON schedules it; ``payload`` carries everything else (pool, command, ...) opaquely."""

    kind: str
    schema: str
    id: int
    name: str
    active: bool
    interval_seconds: float | None
    cron_expr: str | None
    overlap_policy: str = "SKIP"
    missed_policy: str = "SKIP"
    grace_seconds: float = 60.0
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.kind.upper(), self.schema.upper(), int(self.id))

    def timing(self) -> tuple[float | None, str | None]:
        """What counts as an interval/cron change (held back until ``redctl reload``)."""
        cron = self.cron_expr.strip() if self.cron_expr else None
        return (None if self.interval_seconds is None else float(self.interval_seconds), cron or None)

    def label(self) -> str:
        """How messages name this definition: ``APP1 job 7 (LOAD_ORDERS)``."""
        return f"{self.schema.upper()} {self.kind.lower()} {self.id} ({self.name})"


@dataclass(frozen=True)
class Tick:
    """One due time of one key and what to do about it."""

    key: Key
    definition: Definition
    scheduled_at: float
    action: str  # "RUN" or "SKIP"
    reason: str = ""  # SKIP: SUSPENDED, OVERLAP, BLOCKED, MISSED; RUN: "", MISSED_RUN_ONCE, QUEUED_OVERLAP, MANUAL
    missed: int = 0  # due times passed over (clock jump, stall, downtime)


@dataclass
class SyncReport:
    """What a ``sync`` changed; the daemon logs it."""

    added: list[Key] = field(default_factory=list)
    removed: list[Key] = field(default_factory=list)
    activated: list[Key] = field(default_factory=list)
    deactivated: list[Key] = field(default_factory=list)
    timing_changed_pending: list[Key] = field(default_factory=list)
    timing_applied: list[Key] = field(default_factory=list)
    invalid: dict[Key, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleEntry:
    """One definition as ``redctl show`` lists it."""

    key: Key
    name: str
    active: bool
    scheduled: bool  # active, valid and in the timer
    next_due: float | None
    last_scheduled: float | None  # the newest due time handled (run or skipped)
    last_started: float | None  # when the newest run that actually began began (any trigger); never a skip
    running: list[str]  # run ids in flight
    queued: bool  # one overlap tick waits for the running run to end
    last_lateness: float | None  # seconds between the newest due time handled and the moment it was handled
    interval_seconds: float | None  # the timing in effect
    cron_expr: str | None
    timing_pending: bool  # the database has another interval/cron, applied on reload
    role: str = ""  # "CSVSRV": a FILE watcher starting a LOAD job (the description's name for it)


@dataclass
class _Entry:
    definition: Definition
    timing: tuple[float | None, str | None]  # the timing in effect
    invalid: str | None = None
    due: float | None = None  # None: not scheduled
    token: int = 0  # the heap item that is current for this entry
    last_scheduled: float | None = None
    last_lateness: float | None = None
    queued: Tick | None = None

    @property
    def scheduled(self) -> bool:
        return self.due is not None


@dataclass
class _SyncRun:
    """The arguments and results of one ``sync``, handed through its helpers."""

    now: float
    apply_timing: bool
    last_scheduled: Mapping[Key, float]
    report: SyncReport
    pushes: list[tuple[float, int, Key]] = field(default_factory=list)


def role(definition: Definition) -> str:
    """The name an operator knows a definition by beyond its kind: CSVSRV for a FILE watcher starting a LOAD job."""
    payload = definition.payload
    target = payload.get("target") or {}
    if payload.get("condition_type") == "FILE" and target.get("job_type") == "LOAD":
        return "CSVSRV"
    return ""


def on_demand(definition: Definition, timing: tuple[float | None, str | None]) -> bool:
    """A job with neither interval nor cron runs only when started: by a watcher or `redctl start_db_job`."""
    return definition.kind.upper() == "JOB" and timing == (None, None)


def _timing_problem(
    label: str, timing: tuple[float | None, str | None], calendar: CronCalendar, now: float
) -> str | None:
    interval, cron = timing
    if interval is None and cron is None:
        return f"{label}: neither INTERVAL_SECONDS nor CRON_EXPR is set; a watcher needs one of them"
    if interval is not None and cron is not None:
        return f"{label}: both INTERVAL_SECONDS ({interval:g}) and CRON_EXPR ({cron!r}) are set; set only one of them"
    if interval is not None and not (math.isfinite(interval) and interval > 0):
        return f"{label}: INTERVAL_SECONDS {interval:g} is not allowed; it must be a number of seconds > 0"
    if cron is not None:
        try:
            calendar.check(cron, now)
        except CronInvalid as exc:
            return f"{label}: cron expression {cron!r} is not valid: {exc}"
    return None


def _policy_problem(definition: Definition) -> str | None:
    label = definition.label()
    if definition.kind.upper() not in KINDS:
        return f"{label}: kind {definition.kind!r} is unknown; allowed: {', '.join(KINDS)}"
    if definition.overlap_policy not in OVERLAP_POLICIES:
        return (
            f"{label}: OVERLAP_POLICY {definition.overlap_policy!r} is unknown; allowed: {', '.join(OVERLAP_POLICIES)}"
        )
    if definition.missed_policy not in MISSED_POLICIES:
        return f"{label}: MISSED_POLICY {definition.missed_policy!r} is unknown; allowed: {', '.join(MISSED_POLICIES)}"
    grace = definition.grace_seconds
    if not (math.isfinite(grace) and grace >= 0):
        return f"{label}: GRACE_SECONDS {grace:g} is not allowed; it must be a number of seconds >= 0"
    # SCHED waits a run's timeout for its worker, then kills it: 0 or less never ran the job, and cost a worker
    # process at every tick (there is no "no limit"; NULL gives the default: 3600 s for a job, 300 for a watcher)
    timeout = definition.payload.get("timeout")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        return (
            f"{label}: TIMEOUT_SECONDS {timeout:g} is not allowed; it must be a number of seconds > 0 "
            "(NULL for the default)"
        )
    return None


class Schedule:
    """The in-memory timer of all jobs and watchers; see the module docstring for its rules."""

    def __init__(self, tz: dt.tzinfo | None = None) -> None:
        self.calendar = CronCalendar(tz if tz is not None else local_zone())
        self._entries: dict[Key, _Entry] = {}
        self._heap: list[tuple[float, int, Key]] = []
        self._tokens = 0
        self._scheduled = 0
        self._running: dict[Key, list[str]] = {}
        self._last_started: dict[Key, float] = {}
        self._queued: set[Key] = set()
        self._clock_high: float | None = None
        self._adopted: dict[Key, float] = {}  # ticks of runs in flight in SCHED, for entries not read yet

    # -- definitions ---------------------------------------------------------------------------------------------
    def sync(
        self,
        definitions: Iterable[Definition],
        now: float,
        *,
        apply_timing: bool = False,
        last_scheduled: Mapping[Key, float] | None = None,
    ) -> SyncReport:
        """Bring the schedule in line with the definitions read from the database (see the module docstring)."""
        self._observe_clock(now)
        report = SyncReport()
        by_key: dict[Key, Definition] = {}
        duplicates: dict[Key, int] = {}
        for definition in definitions:
            key = definition.key
            if key in by_key:
                duplicates[key] = duplicates.get(key, 1) + 1
            else:
                by_key[key] = definition
        last = dict(last_scheduled or {})
        for key, adopted in self._adopted.items():  # runs in flight in SCHED, learnt before the definitions were
            if adopted > last.get(key, -math.inf):
                last[key] = adopted
        self._adopted.clear()
        run = _SyncRun(now, apply_timing, last, report)
        for key in [k for k in self._entries if k not in by_key]:
            self._unschedule(self._entries.pop(key))
            report.removed.append(key)
        for key, definition in by_key.items():
            problem = None
            if key in duplicates:
                problem = (
                    f"{definition.label()}: defined {duplicates[key]} times; ids must be unique per schema, "
                    "so none of them is scheduled"
                )
            entry = self._entries.get(key)
            if entry is None:
                entry = self._sync_new(key, definition, problem, run)
            else:
                self._sync_existing(key, entry, definition, problem, run)
            if entry.invalid is not None:
                report.invalid[key] = entry.invalid
        self._push_many(run.pushes)
        return report

    def _sync_new(self, key: Key, definition: Definition, problem: str | None, run: _SyncRun) -> _Entry:
        entry = _Entry(definition, definition.timing())
        self._entries[key] = entry
        run.report.added.append(key)
        if definition.active:
            entry.invalid = problem or self._problem(definition, entry.timing, run.now)
            if entry.invalid is None and not on_demand(definition, entry.timing):
                last = run.last_scheduled.get(key)
                entry.last_scheduled = last
                run.pushes.append(self._set_due(entry, self._first_due(entry, run.now, last)))
        return entry

    def _sync_existing(
        self, key: Key, entry: _Entry, definition: Definition, problem: str | None, run: _SyncRun
    ) -> None:
        was_active, was_scheduled = entry.definition.active, entry.scheduled
        entry.definition = definition
        if not definition.active:
            if was_active:
                run.report.deactivated.append(key)
            entry.invalid = None
            entry.timing = definition.timing()
            self._unschedule(entry)
            return
        if not was_active:
            run.report.activated.append(key)
        applied = self._take_timing(key, entry, was_scheduled, run)
        entry.invalid = problem or self._problem(definition, entry.timing, run.now)
        if entry.invalid is None and entry.timing != definition.timing():
            pending_problem = self._problem(definition, definition.timing(), run.now)
            if pending_problem:  # keep the schedule in effect, but tell the operator now, not at the reload
                entry.invalid = f"{pending_problem} (not applied: the current schedule stays until `redctl reload`)"
                return
        if entry.invalid is not None or on_demand(definition, entry.timing):
            self._unschedule(entry)
        elif not was_scheduled or applied:
            self._unschedule(entry, keep_queued=True)
            run.pushes.append(self._set_due(entry, self._first_due(entry, run.now, None)))

    def _take_timing(self, key: Key, entry: _Entry, was_scheduled: bool, run: _SyncRun) -> bool:
        """Adopt a changed interval/cron if allowed now; True if a running schedule's timing was replaced."""
        new_timing = entry.definition.timing()
        if new_timing == entry.timing:
            return False
        if was_scheduled and not run.apply_timing:
            run.report.timing_changed_pending.append(key)
            return False
        entry.timing = new_timing
        if was_scheduled:
            run.report.timing_applied.append(key)
        return was_scheduled

    def _problem(self, definition: Definition, timing: tuple[float | None, str | None], now: float) -> str | None:
        """Why a definition cannot be scheduled, as an operator reads it; None if it can."""
        if on_demand(definition, timing):
            return _policy_problem(definition)
        return _timing_problem(definition.label(), timing, self.calendar, now) or _policy_problem(definition)

    # -- the timer -----------------------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """The earliest due time of anything scheduled (when the daemon's timer should wake), or None."""
        heap = self._heap
        while heap:
            due, token, key = heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry.token == token and entry.due == due:
                return due
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float, *, suspended: bool = False, blocked: Collection[Key] = ()) -> list[Tick]:
        """The ticks of every entry due at ``now`` (at most one per key), each entry moved to its next due time."""
        self._observe_clock(now)
        ticks = self._release_held_queued(suspended, blocked)
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, token, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is None or entry.token != token or entry.due != due:
                continue
            tick = self._fire(key, entry, now, suspended, blocked)
            if tick is not None:
                ticks.append(tick)
        return ticks

    def _fire(self, key: Key, entry: _Entry, now: float, suspended: bool, blocked: Collection[Key]) -> Tick | None:
        """Handle an entry whose due time has come: one tick (or a queued one), and the entry's next due time."""
        oldest = entry.due
        assert oldest is not None
        definition = entry.definition
        interval, cron = entry.timing
        try:
            if interval is not None:
                count, newest, following = interval_due_times(oldest, interval, now)
            else:
                assert cron is not None
                count, newest, following = self.calendar.due_times(cron, oldest, now)
        except ValueError as exc:  # croniter's errors (CroniterError is a ValueError): never out of the daemon's loop
            entry.invalid = f"{definition.label()}: cron expression {cron!r} has no further fire time: {exc}"
            self._unschedule(entry)
            return None
        if following <= now:  # cannot happen by the arithmetic above; guards the daemon's loop against spinning
            following = math.nextafter(now, math.inf)
        if math.isinf(following):
            entry.invalid = f"{definition.label()}: cron expression {cron!r} fires no more after this run"
            self._unschedule(entry, keep_queued=True)
        else:
            heapq.heappush(self._heap, self._set_due(entry, following))
        entry.last_scheduled = newest
        entry.last_lateness = now - newest
        all_missed = oldest < now - definition.grace_seconds
        missed = count if all_missed else count - 1
        decision = self._decide(key, entry, all_missed, suspended, blocked)
        if decision is None:
            entry.queued = Tick(key, definition, newest, "RUN", "QUEUED_OVERLAP", missed)
            self._queued.add(key)
            return None
        return Tick(key, definition, newest, decision[0], decision[1], missed)

    def _decide(
        self, key: Key, entry: _Entry, all_missed: bool, suspended: bool, blocked: Collection[Key]
    ) -> tuple[str, str] | None:
        """(action, reason) for a due tick, in the documented order of checks; None: queue it behind the run."""
        reason = "OVERLAP"
        if suspended:
            reason = "SUSPENDED"
        elif key in blocked:
            reason = "BLOCKED"
        elif all_missed and entry.definition.missed_policy == "SKIP":
            reason = "MISSED"
        elif not self._running.get(key):
            return ("RUN", "MISSED_RUN_ONCE" if all_missed else "")
        elif entry.definition.overlap_policy == "QUEUE" and entry.queued is None:
            return None
        return ("SKIP", reason)

    def _release_held_queued(self, suspended: bool, blocked: Collection[Key]) -> list[Tick]:
        """Queued overlap ticks that may no longer run (suspended, blocked) become SKIP ticks now."""
        if not self._queued or not (suspended or blocked):
            return []
        ticks = []
        for key in sorted(self._queued):
            if suspended or key in blocked:
                ticks.append(self._take_queued(key, suspended, blocked))
        return [t for t in ticks if t is not None]

    def _take_queued(self, key: Key, suspended: bool, blocked: Collection[Key]) -> Tick | None:
        self._queued.discard(key)
        entry = self._entries.get(key)
        if entry is None or entry.queued is None:
            return None
        queued, entry.queued = entry.queued, None
        queued = dataclasses.replace(queued, definition=entry.definition)  # the definition as it is now
        if suspended:
            return dataclasses.replace(queued, action="SKIP", reason="SUSPENDED")
        if key in blocked:
            return dataclasses.replace(queued, action="SKIP", reason="BLOCKED")
        return queued

    # -- runs ----------------------------------------------------------------------------------------------------
    def run_started(self, key: Key, run_id: str) -> None:
        """A run of ``key`` is in flight (submitted by JMON, or started elsewhere and reported by SCHED)."""
        runs = self._running.setdefault(key, [])
        if run_id not in runs:
            runs.append(run_id)

    def run_adopted(self, key: Key, run_id: str, scheduled_at: float | None) -> None:
        """A run in flight in SCHED that this JMON did not submit (it started while the run went on): the run holds
        its job like one of ours, and the tick it runs (`scheduled_at`, for a scheduled run) is done, not due again,
        else it would come due now and be skipped as OVERLAP beside its own run."""
        self.run_started(key, run_id)
        entry = self._entries.get(key)
        if scheduled_at is not None and entry is None:  # not read yet (JMON's first poll): its sync starts after it
            self._adopted[key] = max(self._adopted.get(key, scheduled_at), scheduled_at)
        if scheduled_at is None or entry is None or entry.due is None or entry.due > scheduled_at + SAME_TICK:
            return
        interval, cron = entry.timing
        try:
            if interval is not None:
                following = scheduled_at + interval
            else:
                following = self.calendar.next_after(str(cron), scheduled_at)
        except ValueError:
            return  # a cron expression without a further time: the entry's own firing says so
        entry.last_scheduled = max(entry.last_scheduled or scheduled_at, scheduled_at)
        heapq.heappush(self._heap, self._set_due(entry, following))

    def run_began(self, key: Key, when: float) -> None:
        """A run of ``key`` actually began at ``when`` (any trigger); an older time never replaces a newer one."""
        if when > self._last_started.get(key, -math.inf):
            self._last_started[key] = when

    def runs_began(self, last_started: Mapping[Key, float]) -> None:
        """``run_began`` for many keys at once (the run logs' newest start times, read at JMON's start)."""
        for key, when in last_started.items():
            self.run_began(key, when)

    def run_finished(
        self, key: Key, run_id: str, now: float, *, suspended: bool = False, blocked: Collection[Key] = ()
    ) -> Tick | None:
        """A run ended; when it was the key's last run in flight, the queued overlap tick (if any) is returned."""
        runs = self._running.get(key)
        if runs is not None:
            if run_id in runs:
                runs.remove(run_id)
            if not runs:
                del self._running[key]
        if self._running.get(key) or key not in self._queued:
            return None
        return self._take_queued(key, suspended, blocked)

    def run_lost(
        self, key: Key, run_id: str, now: float, *, suspended: bool = False, blocked: Collection[Key] = ()
    ) -> Tick | None:
        """SCHED no longer knows the run (it restarted): the key is free again, as after ``run_finished``."""
        return self.run_finished(key, run_id, now, suspended=suspended, blocked=blocked)

    def trigger_now(self, key: Key, now: float) -> Tick:
        """A RUN "MANUAL" tick for ``redctl start_job``; the regular due times stay as they are.

        Raises KeyError if ``key`` is not scheduled (unknown, inactive or invalid). Overlap is not checked: the
        operator asked for this run.
        """
        entry = self._entries.get(key)
        if entry is None or not entry.scheduled:
            raise KeyError(key)
        return Tick(key, entry.definition, now, "RUN", "MANUAL")

    def running_count(self) -> int:
        """How many runs are in flight (for the status line, asked every tick: no copy of the map)."""
        return sum(len(runs) for runs in self._running.values())

    def in_flight(self) -> dict[Key, list[str]]:
        """Run ids in flight per key (a copy)."""
        return {key: list(runs) for key, runs in self._running.items() if runs}

    def entries(self) -> list[ScheduleEntry]:
        """Every known definition with its state, for ``redctl show``, ordered by key."""
        result = []
        for key in sorted(self._entries):
            entry = self._entries[key]
            interval, cron = entry.timing
            result.append(
                ScheduleEntry(
                    key=key,
                    name=entry.definition.name,
                    active=entry.definition.active,
                    scheduled=entry.scheduled,
                    next_due=entry.due,
                    last_scheduled=entry.last_scheduled,
                    last_started=self._last_started.get(key),
                    running=list(self._running.get(key, ())),
                    queued=entry.queued is not None,
                    last_lateness=entry.last_lateness,
                    interval_seconds=interval,
                    cron_expr=cron,
                    timing_pending=entry.timing != entry.definition.timing(),
                    role=role(entry.definition),
                )
            )
        return result

    # -- internals -----------------------------------------------------------------------------------------------
    def _first_due(self, entry: _Entry, now: float, last: float | None) -> float:
        """Where an entry (re)starts (see "First due time" in the module docstring).

        ``last`` is a restart's last_scheduled: the schedule continues right after it, even in the past (the missed
        policy then decides). Otherwise the first due time is after ``now``, on the grid of the entry's newest due
        time if it has one, else on its spread grid.
        """
        interval, cron = entry.timing
        if interval is not None:
            if last is not None and last <= now:
                return last + interval
            anchor = last if last is not None else entry.last_scheduled
            if anchor is None:
                anchor = spread_phase("{}:{}:{}".format(*entry.definition.key), interval)
            return grid_after(anchor, interval, now)
        assert cron is not None
        return self.calendar.next_after(cron, now if last is None else min(last, now))

    def _set_due(self, entry: _Entry, due: float) -> tuple[float, int, Key]:
        """Make ``due`` the entry's due time; returns the heap item the caller must push."""
        if entry.due is None:
            self._scheduled += 1
        self._tokens += 1
        entry.due, entry.token = due, self._tokens
        return (due, self._tokens, entry.definition.key)

    def _unschedule(self, entry: _Entry, *, keep_queued: bool = False) -> None:
        """Take the entry out of the timer (its heap item goes stale); a queued overlap tick goes too unless kept."""
        if entry.due is not None:
            self._scheduled -= 1
        entry.due = None
        if not keep_queued:
            entry.queued = None
            self._queued.discard(entry.definition.key)

    def _push_many(self, items: list[tuple[float, int, Key]]) -> None:
        if len(self._heap) + len(items) > 2 * self._scheduled + HEAP_SLACK:
            self._rebuild()
        elif len(items) > HEAP_SLACK:
            self._heap.extend(items)
            heapq.heapify(self._heap)
        else:
            for item in items:
                heapq.heappush(self._heap, item)

    def _rebuild(self) -> None:
        """The heap from the entries' current due times, without the stale items lazy deletion leaves behind."""
        self._heap = [(entry.due, entry.token, key) for key, entry in self._entries.items() if entry.due is not None]
        heapq.heapify(self._heap)

    def _observe_clock(self, now: float) -> None:
        """Detect the clock being set back, and pull due times back to at most one period after the new now."""
        high = self._clock_high
        self._clock_high = now if high is None else max(high, now)
        if high is None or now >= high - BACKWARD_TOLERANCE:
            return
        self._clock_high = now
        for entry in self._entries.values():
            if entry.due is None:
                continue
            interval, cron = entry.timing
            if interval is not None:
                if entry.due > now + interval:
                    entry.due = grid_after(entry.due, interval, now)
            else:
                assert cron is not None
                entry.due = min(entry.due, self.calendar.next_or_inf(cron, now))
        self._rebuild()
