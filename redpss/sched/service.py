"""The SCHED master daemon: accepts runs on sched_service_port, runs them in its pools, logs every run.

Requests (JSON lines, see redpss.core.wire): `submit` {run}, `skip` {row fields}, `status`, `subscribe` (push
events `started`, `finished` and `watcher_blocked` to this connection), `ping`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redpss.core.config import Config, load_config
from redpss.core.config.checks import action_pool_problems
from redpss.core.daemon import Service
from redpss.core.db import DbSession, DbSettings
from redpss.core.entry import run_instance_daemon
from redpss.core.errors import ConfigError, StartupError
from redpss.core.logging import level_from_name
from redpss.core.paths import InstancePaths
from redpss.core.reloading import value
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import Code, Connection, JsonLineServer, Message, unknown_op
from redpss.sched.alerts import mail_owner, wants_alert
from redpss.sched.commit import UNKNOWN, UNREADABLE, CommitMarkers, is_sql_job
from redpss.sched.inflight import InFlight, LeftOver
from redpss.sched.pool import MAX_QUEUE, Pool, WorkerDied, WorkerProcess
from redpss.sched.reload import LOG_LEVEL, POOL_SIZE_KEYS, config_changes
from redpss.sched.runlog import GroupRecorder, LogRow, record, run_log_writer, run_rows, skip_row, unstarted_row
from redpss.sched.runs import FAILED, INTERRUPTED, OK, POOLS, SKIPPED, TIMEOUT, RunRequest, RunResult
from redpss.sched.ticks import SAME_TICK, Key, LoggedTicks, tick_of

log = logging.getLogger("redpss.sched")

SKIPS_REMEMBERED = 10000  # skip records known by run id: JMON sends a record again within seconds, if at all
KILL_GRACE = 5.0  # seconds past a run's timeout before the master kills a worker that did not answer


class SchedService(Service):
    name = "sched"
    tick_interval = 1.0
    drain_timeout = service_spec("sched").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        sizes = {
            "DEFAULT": config.redctl.sched_default_pool_size,
            "LOADER": config.redctl.sched_loader_pool_size,
            "ACTION": config.redctl.sched_action_pool_size,
        }
        self.pools = {name: Pool(name, sizes[name]) for name in POOLS}
        self.generation = 0  # raised by a reload that workers must start again for (the log level)
        self.accepting = True
        self.running: dict[str, tuple[RunRequest, WorkerProcess, asyncio.Task[None]]] = {}
        # runs whose worker answered while their end is being logged and a retry (if due) set up: still in flight
        # for the overlap rules, so a run waiting for their job does not start in between
        self.finishing: dict[str, RunRequest] = {}
        self.retries: dict[str, tuple[RunRequest, asyncio.TimerHandle]] = {}
        # retry run id -> the failed attempt and its result: the owner's alert if the retry never starts (suspended)
        self.retry_causes: dict[str, tuple[RunRequest, RunResult]] = {}
        session = DbSession(DbSettings.from_config(config, client_name="RED-PSS SCHED run log"))
        self.runlog = run_log_writer(paths.tmp / "sched-runlog.spool", session)
        self.ticks = LoggedTicks()  # the newest logged tick of each job, also while its row waits in the spool
        self.recorder = GroupRecorder(self.runlog, self.ticks)
        self.inflight = InFlight(paths.tmp / "sched-running")
        self.commits = CommitMarkers(DbSession(DbSettings.from_config(config, client_name="RED-PSS SCHED commits")))
        self.settling: set[asyncio.Task[None]] = set()  # leftover SQL runs waiting for their commit marker
        self.purging: asyncio.Task[None] | None = None  # deleting the commit markers of logged runs
        self.server: JsonLineServer | None = None
        self.started_runs = 0
        self.finished_runs = 0
        self.alerts: set[asyncio.Task[None]] = set()  # failure mails being handed to SENDMAIL
        self.skipping: set[asyncio.Task[None]] = set()  # accepted runs not started (suspended) being logged
        # run ids of JMON's skip records taken, the newest SKIPS_REMEMBERED, with the delivery that logs them
        self.skips_taken: collections.OrderedDict[str, asyncio.Future[bool]] = collections.OrderedDict()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.server = JsonLineServer(self.handle, instance_secret(self.paths), "SCHED")
        self.ticks.note(self.runlog.waiting())  # rows a previous SCHED logged that the database does not hold yet
        self._reconcile_interrupted()
        starts = []
        for pool in self.pools.values():
            for index in range(1, pool.size + 1):
                worker = WorkerProcess(pool.name, index, self.paths.redenv, self.generation)
                pool.workers.append(worker)
                starts.append(worker.start())
        results = await asyncio.gather(*starts, return_exceptions=True)
        failures = [str(r) for r in results if isinstance(r, BaseException)]
        if failures:
            raise StartupError(f"{len(failures)} worker(s) did not start: {failures[0]}")
        self.runlog.start()
        await self.listen(
            self.server, "127.0.0.1", self.config.redctl.sched_service_port, "[redctl] sched_service_port"
        )

    async def tick(self, now: float) -> None:
        for pool in self.pools.values():
            for worker in list(pool.workers):
                if worker.process is None or (worker.process.returncode is not None and worker.current is None):
                    await self._replace(pool, worker, "found dead while idle")
            await self._fit(pool)
            self._dispatch(pool)
        if self.commits.pending_purge() and (self.purging is None or self.purging.done()):
            # in the background: its DELETE may wait for a long transaction of a job, the loop must not
            self.purging = asyncio.create_task(self.commits.purge())

    async def drain(self) -> None:
        self.accepting = False
        unstarted = []
        for pool in self.pools.values():
            while pool.queue:
                request = pool.queue.popleft()
                unstarted.append((request, _result(request, INTERRUPTED, "not started: SCHED stopped first")))
        for request, handle in list(self.retries.values()):
            handle.cancel()
            message = f"retry {request.attempt} not started: SCHED stopped"
            unstarted.append((request, _result(request, INTERRUPTED, message)))
        self.retries.clear()
        self.retry_causes.clear()
        # one append (one fsync) for them all: a queue of thousands must not cost thousands of fsyncs
        await self.recorder.record([row for r, result in unstarted for row in run_rows(r, result)])
        for request, result in unstarted:
            await self._finish(request, result, recorded=True)
        if self.running:
            log.info("waiting for %d running run(s) to finish", len(self.running))
            await asyncio.gather(*(task for _, _, task in self.running.values()))
        if self.alerts:  # failure mails on their way to SENDMAIL (each gives up after SUBMIT_TIMEOUT)
            await asyncio.wait(set(self.alerts))
        await self._shutdown(kill=False)

    async def abort(self) -> None:
        self.accepting = False
        for run_id, (request, worker, task) in list(self.running.items()):
            task.cancel()
            worker.kill()
            self.running.pop(run_id, None)
            forced = _result(
                request, INTERRUPTED, "interrupted: SCHED was stopped by force", worker.label, worker.started(request)
            )
            result = await self.commits.decide(request, forced, timeout=3.0)
            if result is not None:  # else the in-flight record stays: the next start decides by the commit marker
                await self._finish(request, result)
        await self._shutdown(kill=True)

    async def _shutdown(self, kill: bool) -> None:
        if self.skipping:  # runs not started (suspended): one append each, and their end told before the port closes
            await asyncio.wait(set(self.skipping))
        if self.server is not None:
            await self.server.close()
        for pool in self.pools.values():
            for worker in pool.workers:
                if kill:
                    worker.kill()
                await worker.stop(timeout=1.0 if kill else 10.0)
        for task in self.settling:
            task.cancel()  # undecided runs keep their in-flight record: the next start decides them
        await asyncio.to_thread(self.commits.close)
        await self.recorder.flushed()
        self.recorder.close()
        # the records' last writes and removals first (every row is spooled by now): a stop forced before the writer
        # is done then leaves no record of a run whose row is in the database
        await asyncio.to_thread(self.inflight.close)
        await asyncio.to_thread(self.runlog.stop, 5.0 if kill else 15.0)

    def _reconcile_interrupted(self) -> None:
        """Log the runs a previous SCHED accepted and never saw finish (it was killed) as INTERRUPTED: those it had
        handed to a worker, and those still waiting to start (queued, or waiting for a retry)."""
        # (run id, attempt): a retry keeps its run id, and its first attempt's row may still wait in the spool
        spooled = {(str(row.get("RUN_ID")), int(row.get("ATTEMPT") or 1)) for _, row in self.runlog.waiting()}
        for left in self.inflight.leftovers():
            request = left.request
            logged = (request.run_id, request.attempt) in spooled
            if not left.started:
                if not logged:
                    self._log_unstarted(request)
                self.inflight.finished(request.run_id)
                continue
            if not logged and is_sql_job(request):  # it may have committed: the marker decides
                task = asyncio.get_running_loop().create_task(self._settle(left))
                self.settling.add(task)
                task.add_done_callback(self.settling.discard)
                continue
            if not logged:  # else the row was spooled just before the kill: it is logged
                result = RunResult(
                    request.run_id,
                    INTERRUPTED,
                    f"interrupted: SCHED ended (killed?) while this run was in flight in worker {left.worker}; "
                    "the worker was stopped with it and work it had not committed was rolled back",
                    left.started_at,
                    time.time(),
                    left.worker,
                )
                record(self.runlog, run_rows(request, result), self.ticks, if_absent=True)
                _say_left_over(request, "was in flight", INTERRUPTED)
            self.inflight.finished(request.run_id)

    def _log_unstarted(self, request: RunRequest) -> None:
        """The INTERRUPTED row of a run a killed SCHED had accepted but not started, as a graceful stop writes it."""
        if request.trigger == "RETRY":
            why = f"retry {request.attempt} not started: SCHED ended (killed?) while it waited for its time"
        else:
            why = "not started: SCHED ended (killed?) while this run waited in its queue"
        record(self.runlog, run_rows(request, _result(request, INTERRUPTED, why)), self.ticks, if_absent=True)
        _say_left_over(request, "was waiting to start", INTERRUPTED)

    async def _settle(self, left: LeftOver) -> None:
        """Log a SQL run a previous SCHED left in flight: OK if its commit marker is there, else INTERRUPTED."""
        request = left.request
        interrupted = RunResult(
            request.run_id,
            INTERRUPTED,
            f"interrupted: SCHED ended (killed?) while this run was in flight in worker {left.worker}; "
            "the worker was stopped with it",
            left.started_at,
            time.time(),
            left.worker,
        )
        result = await self.commits.decide(request, interrupted)
        if result is None:
            return  # stopping before the database answered: the next start decides
        durable = await asyncio.to_thread(record, self.runlog, run_rows(request, result), self.ticks, if_absent=True)
        if durable and result.status == OK:
            self.commits.forget(request.run_id)
        self.inflight.finished(request.run_id)
        _say_left_over(request, "was in flight", result.status)

    async def reload(self) -> None:
        """Apply what changed in red_params.conf that SCHED can apply running; name what needs a restart.

        A config with problems raises ConfigError: the daemon base logs it and SCHED keeps its settings.
        """
        new = await asyncio.to_thread(load_config, self.paths.config_file)
        if problems := action_pool_problems(new):  # an ACTION pool JEXEC would refuse, as a start says too
            raise ConfigError(str(self.paths.config_file), problems)
        changes = config_changes(self.config, new)
        if LOG_LEVEL in changes.applied:
            logging.getLogger().setLevel(level_from_name(str(value(new, LOG_LEVEL))))
            self.generation += 1  # workers set their level at start: idle ones are replaced, busy ones after the run
        for name, key in POOL_SIZE_KEYS.items():
            self.pools[name].size = int(str(value(new, key)))
        self.config = new
        if changes.applied:
            log.info("reload applied: %s", changes.describe(changes.applied))
        if changes.need_restart:
            log.warning(
                "reload: %s: these take effect only after a restart of SCHED (redctl restart)",
                changes.describe(changes.need_restart),
            )
        if changes.empty:
            log.info("reload: no setting SCHED uses has changed")
        for pool in self.pools.values():
            await self._fit(pool)
            self._dispatch(pool)

    async def _fit(self, pool: Pool) -> None:
        """Bring `pool` to its size and its workers to the current settings: idle workers beyond the size or
        started with older settings end (a busy one when its run is over); missing workers are started."""
        for worker in [w for w in pool.idle() if w.process is not None and w.process.returncode is None]:
            if worker.current is not None or worker not in pool.workers:
                continue  # given a run (or replaced) while an earlier one was stopping
            beyond = len(pool.workers) > pool.size
            if beyond or worker.generation < self.generation:
                pool.workers.remove(worker)
                await worker.stop(timeout=10.0)
                log.info("worker %s ended: %s", worker.label, "the pool shrank" if beyond else "settings changed")
        missing = pool.size - len(pool.workers)
        if missing <= 0:
            return
        taken = {w.index for w in pool.workers}
        indexes = [i for i in range(1, pool.size + len(taken) + 1) if i not in taken][:missing]
        added = [WorkerProcess(pool.name, index, self.paths.redenv, self.generation) for index in indexes]
        pool.workers.extend(added)
        results = await asyncio.gather(*(w.start() for w in added), return_exceptions=True)
        for worker, outcome in zip(added, results, strict=True):
            if isinstance(outcome, BaseException):
                log.error("new worker %s did not start (next try in a second): %s", worker.label, outcome)
                worker.kill()
                pool.workers.remove(worker)
            else:
                log.info("worker %s started: the pool has %d of %d", worker.label, len(pool.workers), pool.size)

    def status(self) -> str:
        pools = " ".join(f"{p.name} {p.busy}/{p.size}" for p in self.pools.values())
        queued = sum(len(p.queue) for p in self.pools.values())
        backlog = self.runlog.backlog()
        text = f"pools {pools}; {queued} queued; {backlog.rows} log rows waiting"
        if self.commits.undecided:  # logged once the database answers (check exa_connection if this stays)
            text += f"; {self.commits.undecided} run(s) wait for the database to read their commit marker"
        if backlog.spool_error:
            text += f" ({backlog.memory_only} in memory only: spool failing: {backlog.spool_error})"
        return text

    # -- requests -------------------------------------------------------------------------------------------------
    async def handle(self, message: Message, connection: Connection) -> Message:
        op = str(message.get("op"))
        if op == "submit":
            return self._submit_message(message)
        if op == "subscribe":
            connection.subscribed = True
            return {"ok": True}
        if op == "skip":
            return await self._record_skip(message)
        simple: dict[str, Callable[[], Message]] = {
            "status": lambda: {"ok": True, **self.describe()},
            # pid, version and status text: what JMON writes to REDSYS.DAEMON_STATUS for SCHED
            "ping": self.ping_reply,
        }
        if op in simple:
            return simple[op]()
        return unknown_op(op, ["submit", "skip", "status", "subscribe", "ping"])

    def _submit_message(self, message: Message) -> Message:
        """A submit from JMON: the run request checked, refused when it arrived after its deadline, else submitted."""
        try:
            request = RunRequest.from_dict(dict(message.get("run") or {}))
        except ValueError as exc:
            return {"ok": False, "error": f"bad run request: {exc}"}
        return self.submit(request, message.get("expires_at"))

    def submit(self, request: RunRequest, expires_at: object = None) -> Message:
        """Queue (or start) the run; `expires_at`: JMON's deadline for the answer (monotonic seconds), see _expired.
        It is looked at before and after the waiting journal's write, which may outlast it on a stalled disk."""
        answer = self._answer_without_a_run(request, expires_at)
        if answer is not None:
            return answer
        pool = self.pools[request.pool]
        # on disk before the answer, so a kill -9 cannot lose it without a row: also a run started at once, whose
        # in-flight record is written on the disk thread before a worker gets it (that write removes this line)
        self.inflight.waiting(request, time.time())
        if _expired(expires_at):  # JMON has logged the tick as skipped meanwhile: the record goes again
            self.inflight.finished(request.run_id)
            return self._refuse_expired(request, expires_at)
        pool.queue.append(request)
        self._dispatch(pool)
        state = "started" if request.run_id in self.running else "queued"
        log.debug(
            "%s %s.%s run %s from %s: %s",
            request.kind.lower(),
            request.schema,
            request.name,
            request.run_id,
            request.origin,
            state,
        )
        return {
            "ok": True,
            "run_id": request.run_id,
            "state": state,
        }

    def _answer_without_a_run(self, request: RunRequest, expires_at: object) -> Message | None:
        """The answer to a submit that starts no new run (refused, or the tick's run in flight); None: start it."""
        if _expired(expires_at):
            return self._refuse_expired(request, expires_at)
        if not self.accepting:
            return {"ok": False, "reason": "STOPPING", "error": "SCHED is stopping and takes no new runs"}
        if request.run_id in self.running or self.pools[request.pool].queue.holds(request.run_id):
            return {"ok": False, "reason": "DUPLICATE", "error": f"run {request.run_id} is already here"}
        tick = self._answer_for_tick(request)
        if tick is not None:
            return tick
        if len(self.pools[request.pool].queue) >= MAX_QUEUE:
            return {"ok": False, "reason": "POOL_FULL", "error": f"pool {request.pool} has {MAX_QUEUE} runs waiting"}
        return None

    def _answer_for_tick(self, request: RunRequest) -> Message | None:
        """For a scheduled tick that has its run already (in flight, or logged): the answer; None otherwise."""
        same_tick = self._run_of_tick(request)
        if same_tick is not None:
            # JMON restarted while this tick's run was in flight (its row is written when it ends, so JMON found the
            # tick still due): the answer is that run, which JMON then follows, instead of a second run of the tick.
            log.info(
                "%s %s.%s: the tick of %s is already in flight as run %s; not started twice",
                request.kind.lower(),
                request.schema,
                request.name,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(request.scheduled_at)),
                same_tick.run_id,
            )
            state = "queued" if self.pools[same_tick.pool].queue.holds(same_tick.run_id) else "started"
            return {"ok": True, "run_id": same_tick.run_id, "state": state, "already": True}
        logged = self.ticks.logged(request.key, request.scheduled_at) if request.trigger == "SCHEDULE" else None
        if logged is not None:
            # JMON restarted after this tick was logged, before the row reached the database it reads its schedule
            # from: the tick is done, as it would have seen there (sched.ticks)
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(request.scheduled_at))
            why = f"the tick of {when} is logged already (run {logged[0]}, {logged[1]}); not started again"
            log.info("%s %s.%s: %s", request.kind.lower(), request.schema, request.name, why)
            return {"ok": False, "reason": "LOGGED", "error": why}
        return None

    @staticmethod
    def _refuse_expired(request: RunRequest, expires_at: object) -> Message:
        expired = _expired(expires_at)
        log.warning("%s %s.%s run %s not started: %s", request.kind.lower(), request.schema, request.name,
                    request.run_id, expired)  # fmt: skip
        return {"ok": False, "reason": "EXPIRED", "error": expired}

    async def _record_skip(self, message: Message) -> Message:
        """Log skipped ticks: `records` (a list, as JMON sends what waited) or the message itself as one record."""
        records = message.get("records", [message])
        try:
            if not isinstance(records, list):
                raise ValueError("records must be a list")
            rows = [_skip_record_row(each) for each in records]
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return {"ok": False, "code": Code.BAD_REQUEST, "error": f"bad skip record: {exc}"}
        # a tick logged already (JMON restarted before its row reached the database) keeps its one row
        rows = [row for row in rows if not self.ticks.logs(row.qualified_table, row.values)]
        # a record sent again (JMON gave up waiting for the answer) is one taken already: answered once its first
        # delivery is on disk, not logged twice
        earlier = {self.skips_taken[r.values["RUN_ID"]] for r in rows if r.values["RUN_ID"] in self.skips_taken}
        fresh = [row for row in rows if row.values["RUN_ID"] not in self.skips_taken]
        # a tick whose run is in flight keeps its one row too: JMON lost the link after its submit reached SCHED,
        # and logged the tick skipped; taken as done, so that the record sent again is not logged then either
        dropped = {row.values["RUN_ID"] for row in fresh if self._has_run(row)}
        if dropped:
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            done.set_result(True)
            self.skips_taken.update(dict.fromkeys(dropped, done))
            fresh = [row for row in fresh if row.values["RUN_ID"] not in dropped]
        recording = asyncio.ensure_future(self.recorder.record(fresh))
        taken = [row.values["RUN_ID"] for row in fresh]
        for run_id in taken:
            self.skips_taken[run_id] = recording
        recording.add_done_callback(lambda task: self._forget_failed_skips(task, taken))
        while len(self.skips_taken) > SKIPS_REMEMBERED:
            self.skips_taken.popitem(last=False)
        for delivery in (recording, *earlier):
            await asyncio.shield(delivery)  # on disk before the answer
        return {"ok": True}

    def _forget_failed_skips(self, delivery: asyncio.Future[bool], run_ids: list[str]) -> None:
        """A delivery of skip records that failed (or was cancelled) does not count: JMON's next sending logs them."""
        if delivery.cancelled() or delivery.exception() is not None:
            for run_id in run_ids:
                if self.skips_taken.get(run_id) is delivery:
                    del self.skips_taken[run_id]

    def describe(self) -> dict[str, Any]:
        return {
            "accepting": self.accepting,
            "pools": [pool.describe() for pool in self.pools.values()],
            "retries_waiting": [
                {"run_id": r.run_id, "job": f"{r.schema}.{r.name}", "attempt": r.attempt}
                for r, _ in self.retries.values()
            ],
            "queued_run_ids": [r.run_id for p in self.pools.values() for r in p.queue],
            # every run that holds its job (running, ending, waiting for a retry, queued): a JMON started anew learns
            # from these which jobs are busy, as it would have from its own submissions
            "in_flight": [
                {"run_id": r.run_id, "kind": r.kind, "schema": r.schema, "id": r.id}
                | {"trigger": r.trigger, "scheduled_at": r.scheduled_at}
                for r in (*self._in_flight(), *(r for p in self.pools.values() for r in p.queue))
            ],
            "runlog_backlog": self.runlog.backlog().rows,
            "runlog": self.runlog.backlog().to_dict(),
            "runs_started": self.started_runs,
            "runs_finished": self.finished_runs,
        }

    # -- running --------------------------------------------------------------------------------------------------
    def _dispatch(self, pool: Pool) -> None:
        while pool.queue:
            idle = [
                w
                for w in pool.idle()
                if w.process is not None and w.process.returncode is None and w.generation == self.generation
            ]
            if not idle or not self.accepting or pool.busy >= pool.size:  # a shrunk pool: no more at once than its size
                return
            request = self._next_startable(pool)
            if request is None:
                return
            if request.trigger != "MANUAL" and self._suspended():
                # a manual start is the operator's own (JMON takes one while suspended only with --force)
                self._skip_suspended(request, "not started: the instance was suspended while this run waited")
                continue
            worker = idle[0]
            worker.current = request  # taken now, so the next loop round does not pick it again
            task = asyncio.create_task(self._execute(pool, worker, request))
            self.running[request.run_id] = (request, worker, task)
            self.started_runs += 1

    def _run_of_tick(self, request: RunRequest) -> RunRequest | None:
        """The run in flight (running, queued, ending or waiting for a retry) of the same scheduled tick of the same
        job as `request`, if `request` is a scheduled tick; a manual start or a watcher's is always a run of its own."""
        if request.trigger != "SCHEDULE":
            return None
        return self._in_flight_of(request.key, request.scheduled_at)

    def _in_flight_of(self, key: Key, scheduled_at: float) -> RunRequest | None:
        """The run in flight (running, queued, ending or waiting for a retry) of the tick `scheduled_at` of `key`: a
        scheduled run or a retry of one; a manual start or a watcher's target, whose time is when it was asked for,
        is no tick's run even when that time falls on one."""
        queued = (r for each in self.pools.values() for r in each.queue)
        return next(
            (
                r
                for r in (*self._in_flight(), *queued)
                if r.key == key and r.trigger in _TICK_TRIGGERS and abs(r.scheduled_at - scheduled_at) < SAME_TICK
            ),
            None,
        )

    def _has_run(self, row: LogRow) -> bool:
        """Whether the tick a SKIPPED row of JMON's logs as SCHED_UNAVAILABLE (its submit got no answer) has its run in
        flight here, SCHED having taken the submit after all (said at INFO)."""
        if row.values.get("SKIP_REASON") != "SCHED_UNAVAILABLE":
            return False
        tick = tick_of(row.qualified_table, row.values)
        same = None if tick is None else self._in_flight_of(*tick)
        if same is not None:
            log.info(
                "%s %s.%s: the tick JMON logs as skipped (SCHED_UNAVAILABLE) has its run %s in flight; no SKIPPED row",
                same.kind.lower(),
                same.schema,
                same.name,
                same.run_id,
            )
        return same is not None

    def _next_startable(self, pool: Pool) -> RunRequest | None:
        """Take the first run of the queue that may start now: one that waits for its job only once that job's run
        has ended (a watcher's target under OVERLAP_POLICY QUEUE) stays in its place until then."""
        busy: set[tuple[str, str, int]] | None = None  # worked out once per call, and only when a run waits
        for index, request in enumerate(pool.queue):
            if request.waits_for_job:
                busy = self._busy_jobs() if busy is None else busy
                if request.key in busy:
                    continue
            return pool.queue.take(index)
        return None

    def _busy_jobs(self) -> set[tuple[str, str, int]]:
        """Jobs with a run in flight, or queued without waiting for its job."""
        busy = {request.key for request in self._in_flight()}
        busy |= {r.key for each in self.pools.values() for r in each.queue if not r.waits_for_job}
        return busy

    def _in_flight(self) -> Iterator[RunRequest]:
        """The runs that hold their job: running, ending (logged, retry not yet set up), or waiting for a retry."""
        yield from (request for request, _, _ in self.running.values())
        yield from self.finishing.values()
        yield from (request for request, _ in self.retries.values())

    async def _execute(self, pool: Pool, worker: WorkerProcess, request: RunRequest) -> None:
        await self.inflight.started(request, time.time(), worker.label)
        await self._publish("started", request)
        worker_lost = True  # the worker ended without an answer: a SQL job may have committed all the same
        try:
            result = await asyncio.wait_for(worker.run(request), request.timeout + KILL_GRACE)
            worker_lost = result.extra.get("commit") == UNKNOWN  # it lost the database around its COMMIT
        except TimeoutError:
            worker.kill()
            result = _result(
                request,
                TIMEOUT,
                f"no answer within the {request.timeout:.0f} s timeout; worker {worker.label} was killed and replaced",
                worker.label,
                worker.started(request),
            )
            await self._replace(pool, worker, "killed after a timeout")
        except WorkerDied as exc:
            died = f"{exc} while running this; the worker was replaced"
            result = _result(request, FAILED, died, worker.label, worker.started(request))
            await self._replace(pool, worker, "died")
        if worker_lost:
            decision = await self.commits.decide(request, result)  # committed all the same? the marker says
            if decision is None:  # stopping before the database answered: the in-flight record stays for the next start
                self.running.pop(request.run_id, None)
                return
            result = decision
        self.running.pop(request.run_id, None)
        self.finishing[request.run_id] = request
        # the worker is free: its next run starts while this one's row is written (fsync'd) and its end is told
        self._dispatch(pool)
        try:
            await self._finish(request, result)
        finally:
            self.finishing.pop(request.run_id, None)
        for each in self.pools.values():  # a run that waited for this job's end may be in another pool's queue
            self._dispatch(each)

    async def _replace(self, pool: Pool, worker: WorkerProcess, why: str) -> None:
        if worker not in pool.workers or worker.replacing:
            # replaced already, or being replaced: its run and the tick's check for dead idle workers both see it end
            # (the check while the kill after a timeout waits for its exit), and one replacement is said once
            return
        worker.replacing = True
        log.warning("worker %s %s; starting a replacement", worker.label, why)
        worker.kill()
        if worker.process is not None:
            with contextlib.suppress(ProcessLookupError):
                await worker.process.wait()
        if worker not in pool.workers:
            return  # another end of it replaced it while this one waited for its exit
        replacement = WorkerProcess(pool.name, worker.index, self.paths.redenv, self.generation)
        pool.workers[pool.workers.index(worker)] = replacement
        try:
            await replacement.start()
        except (WorkerDied, OSError, TimeoutError) as exc:
            log.error(
                "replacement worker for %s-%d did not start (next try in a second): %s", pool.name, worker.index, exc
            )
            replacement.kill()  # one that did not say ready in time, or said something else, may still run
            if replacement.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    await replacement.process.wait()
            replacement.process = None

    async def _finish(self, request: RunRequest, result: RunResult, *, recorded: bool = False) -> None:
        """Log the run's rows (unless `recorded` already), then its line, a retry if due, and its end event."""
        target_run_id = None
        rows: list[LogRow] = []
        if request.kind == "WATCHER" and result.condition_met and request.target and not self.accepting:
            target_name = f"{request.target.get('schema', '')}.{request.target.get('name', '')}"
            note = f"target {target_name} not started: SCHED is stopping (the condition is checked again after it)"
            result = dataclasses.replace(result, message=f"{result.message}; {note}")
        elif request.kind == "WATCHER" and result.condition_met and request.target:
            target, note, rows = self._start_target(request, request.target)
            if note:
                result = dataclasses.replace(result, message=f"{result.message}; {note}")
            if target is not None:
                target_run_id = target.run_id
                # JMON counts the run in flight from now on (its `started` may come much later: it may wait)
                await self._publish("queued", target)
        # never fails (held in memory if need be); on disk before JMON hears of the end; fsync off the event loop
        rows = run_rows(request, result, target_run_id) + rows
        durable = recorded or await self.recorder.record(rows)
        if durable and result.status == OK and is_sql_job(request):
            self.commits.forget(request.run_id)  # the row is on disk: the run's commit marker has done its job
        self.inflight.finished(request.run_id)
        extra = {
            "SCHEMA": request.schema,
            "JOB_ID" if request.kind == "JOB" else "WATCHER_ID": request.id,
            "RUN_ID": request.run_id,
        }
        level = logging.INFO if result.status == OK else logging.ERROR
        log.log(
            level,
            "%s %s.%s run %s: %s %s",
            request.kind.lower(),
            request.schema,
            request.name,
            request.run_id,
            result.status,
            result.message,
            extra=extra,
        )
        if (
            result.status in (FAILED, TIMEOUT)
            and request.kind == "JOB"
            and request.attempt <= request.max_retries
            and result.extra.get("commit") != UNREADABLE  # its work may be committed: a retry could do it twice
            and self.accepting
        ):
            retry = dataclasses.replace(request, attempt=request.attempt + 1, trigger="RETRY")
            delay = retry_delay(request)
            handle = asyncio.get_running_loop().call_later(delay, self._start_retry, retry)
            self.retries[retry.run_id] = (retry, handle)
            self.retry_causes[retry.run_id] = (request, result)
            self.inflight.waiting(retry, time.time())
            log.info(
                "%s.%s run %s: retry %d of %d in %.1f s",
                request.schema,
                request.name,
                request.run_id,
                request.attempt,
                request.max_retries,
                delay,
                extra=extra,
            )
            return
        self.finished_runs += 1
        if wants_alert(request, result):  # final: no retry follows
            self._spawn_alert(request, result)
        await self._publish("finished", request, result)
        if result.exec_error:
            await self._publish("watcher_blocked", request, result)

    def _start_target(self, watcher: RunRequest, fields: dict[str, Any]) -> tuple[RunRequest | None, str, list[LogRow]]:
        """Start the target job of a watcher whose condition holds, unless a run of that job is in flight.

        A FILE watcher keeps seeing its files until the LOAD it started has archived them: started again meanwhile,
        a second run would find nothing left to load. So the job's OVERLAP_POLICY decides, as JMON's does for
        scheduled ticks: SKIP starts nothing (the job's log gets a SKIPPED row, reason OVERLAP, trigger WATCHER);
        QUEUE lets the run wait in its pool until the job's run has ended. A run of the job already waiting to start
        makes a further one pointless under either policy, and nothing starts while the instance is suspended (reason
        SUSPENDED). Returns the target's request (None: nothing started), a note for the watcher's message, and the
        rows to log with the watcher's.
        """
        try:
            target = RunRequest.from_dict(
                {**fields, "run_id": _run_id(), "trigger": "WATCHER", "origin": "sched", "scheduled_at": time.time()}
            )
        except ValueError as exc:
            return None, f"the target job was not started: {exc}", []
        running, waiting = self._runs_in_flight(target.key)
        reason, why = "", ""
        if self._suspended():
            reason, why = "SUSPENDED", "the instance is suspended"
        elif waiting:
            reason, why = "OVERLAP", f"its run {waiting[0]} is waiting to start"
        elif running and target.overlap_policy == "SKIP":
            reason, why = "OVERLAP", f"its run {running[0]} is still in flight (OVERLAP_POLICY SKIP)"
        else:
            target = dataclasses.replace(target, waits_for_job=bool(running))
            reply = self.submit(target)
            if reply.get("ok"):
                note = f"target waits for run {running[0]} of its job (OVERLAP_POLICY QUEUE)" if running else ""
                return target, note, []
            reason, why = str(reply.get("reason") or "POOL_FULL"), str(reply.get("error"))
        row = skip_row(
            "JOB",
            target.schema,
            target.id,
            target.name,
            scheduled_at=target.scheduled_at,
            reason=reason,
            message=f"watcher {watcher.schema}.{watcher.name} (run {watcher.run_id}) found its condition held; {why}",
            run_id=target.run_id,
            trigger="WATCHER",
        )
        return None, f"target {target.schema}.{target.name} not started: {why}", [row]

    def _runs_in_flight(self, key: tuple[str, str, int]) -> tuple[list[str], list[str]]:
        """The run ids of `key` in flight (see _in_flight), and those waiting in a queue."""
        running = [request.run_id for request in self._in_flight() if request.key == key]
        waiting = [request.run_id for pool in self.pools.values() for request in pool.queue if request.key == key]
        return running, waiting

    def _spawn_alert(self, request: RunRequest, result: RunResult) -> None:
        """Mail the job's owner from a thread; the task is kept until it ends (drain waits for it)."""
        task = asyncio.create_task(asyncio.to_thread(mail_owner, self.config, self.paths, request, result))
        self.alerts.add(task)
        task.add_done_callback(self.alerts.discard)

    def _start_retry(self, request: RunRequest) -> None:
        self.retries.pop(request.run_id, None)
        cause = self.retry_causes.pop(request.run_id, None)
        if not self.accepting:
            return
        if self._suspended():
            retry = f"retry {request.attempt - 1} of {request.max_retries}"
            self._skip_suspended(request, f"{retry} not started: the instance is suspended")
            if cause is not None and wants_alert(*cause):  # the failure is final now: its owner is told, as always
                self._spawn_alert(*cause)
            return
        self.pools[request.pool].queue.append(request)
        self._dispatch(self.pools[request.pool])

    def _suspended(self) -> bool:
        """Whether the instance is suspended (`redctl suspend`): then no run starts, not even one SCHED holds already
        (a retry, a watcher's target, a run waiting in its queue); JMON submits nothing new meanwhile."""
        return self.paths.suspend_marker.exists()

    def _skip_suspended(self, request: RunRequest, why: str) -> None:
        """Log `request`, accepted but not started as the instance is suspended, as SKIPPED (SUSPENDED) and tell its
        end; its job counts as in flight until then, as for a run that ended."""
        self.finishing[request.run_id] = request
        task = asyncio.create_task(self._end_unstarted(request, "SUSPENDED", why))
        self.skipping.add(task)
        task.add_done_callback(self.skipping.discard)

    async def _end_unstarted(self, request: RunRequest, reason: str, why: str) -> None:
        """The SKIPPED row of a run that will not start, its records removed, its `finished` event (JMON counts its
        job in flight until then)."""
        try:
            await self.recorder.record([unstarted_row(request, reason, why)])
        finally:
            self.finishing.pop(request.run_id, None)
        self.inflight.finished(request.run_id)
        log.warning(
            "%s %s.%s run %s: %s; `redctl resume` lets runs start again",
            request.kind.lower(),
            request.schema,
            request.name,
            request.run_id,
            why,
            extra={
                "SCHEMA": request.schema,
                "JOB_ID" if request.kind == "JOB" else "WATCHER_ID": request.id,
                "RUN_ID": request.run_id,
            },
        )
        await self._publish("finished", request, RunResult(request.run_id, SKIPPED, why))

    async def _publish(self, event: str, request: RunRequest, result: RunResult | None = None) -> None:
        if self.server is None:
            return
        message: Message = {
            "event": event,
            "run_id": request.run_id,
            "kind": request.kind,
            "schema": request.schema,
            "id": request.id,
            "name": request.name,
            "origin": request.origin,
            "scheduled_at": request.scheduled_at,
            "trigger": request.trigger,
            "attempt": request.attempt,
        }
        if result is not None:
            message.update(
                status=result.status, message=result.message, started_at=result.started_at, ended_at=result.ended_at
            )
        await self.server.broadcast(message)


def retry_delay(failed: RunRequest) -> float:
    """Backoff before the next attempt: RETRY_DELAY_SECONDS after the first failure, doubling after each further one."""
    return float(failed.retry_delay * 2 ** (failed.attempt - 1))


_TICK_TRIGGERS = frozenset({"SCHEDULE", "RETRY"})  # runs of a scheduled tick (a retry keeps its run's scheduled_at)


def _skip_record_row(record: Any) -> LogRow:
    """The SKIPPED row of one skip record of JMON; KeyError/ValueError/TypeError name what is wrong."""
    return skip_row(
        str(record["kind"]),
        str(record["schema"]),
        int(record["id"]),
        str(record.get("name", "")),
        scheduled_at=float(record["scheduled_at"]),
        reason=str(record["reason"]),
        message=str(record.get("message", "")),
        run_id=str(record.get("run_id") or _run_id()),
    )


def _say_left_over(request: RunRequest, how: str, status: str) -> None:
    """The log line of a run a previous SCHED left behind (`how`: what it was doing), logged now as `status`."""
    log.log(
        logging.INFO if status == OK else logging.ERROR,
        "%s %s.%s run %s %s when SCHED ended; logged %s",
        request.kind.lower(),
        request.schema,
        request.name,
        request.run_id,
        how,
        status,
        extra={"SCHEMA": request.schema, "RUN_ID": request.run_id},
    )


def _result(
    request: RunRequest, status: str, message: str, worker: str = "", started: float | None = None
) -> RunResult:
    """An outcome SCHED states itself (no worker answered); `started`: when the run began on its worker, else it
    never began and starts and ends now. A run killed at its timeout must show how long it ran."""
    now = time.time()
    return RunResult(request.run_id, status, message, started or now, now, worker)


def _expired(expires_at: object) -> str:
    """Why a submit arrived too late to be carried out ("" when it is in time or names no deadline).

    JMON gives up on SCHED's answer after a timeout and logs the tick as SKIPPED (SCHED_UNAVAILABLE); a request
    that reaches SCHED only later (SCHED was stopped or stalled) must then not run as well: the tick would be logged
    twice, and JMON, which took it for skipped, would start the next run beside it. Both daemons read the clock of
    one machine (the monotonic clock is the same for every process of a host, and no clock step moves it)."""
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
        return ""
    late = time.monotonic() - float(expires_at)
    if late <= 0:
        return ""
    return f"the submission arrived {late:.1f} s after its deadline: its sender has given up and logged it as skipped"


def _run_id() -> str:
    return uuid.uuid4().hex


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return SchedService(config, paths)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("sched", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
