"""The JMON daemon: polls definitions, dispatches due runs to SCHED on time, writes statistics, serves redctl.

Precision comes from an in-memory timer (the Schedule's heap) driving one dispatcher task; the database is read
only every jmon_poll_interval (and on `redctl reload`), so dispatch never waits for a query. Requests on the control
socket $REDENV_HOME/tmp/jmon.sock (JSON lines, see redpss.core.wire): show, reload, poll, suspend, resume,
start_job, start_db_job, we_reset, ping (fields checked in redpss.jmon.requests).

JMON exists to hand runs to SCHED. It starts dispatching only once its link to SCHED is up (or SCHED_WAIT_AT_START
has passed), and it reports itself unhealthy -- the watchdog pings stop, systemd restarts it, `redctl status` shows
it -- when SCHED has been unreachable for longer than --sched-outage-limit seconds. The dispatcher and the SCHED
link are long-lived tasks of the daemon base: if one of them ends, JMON exits (1) with the traceback in its log.
Ticks skipped while SCHED is away wait in memory and reach the job log once SCHED is back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redpss.clone.guard import CloneGuard
from redpss.core.config import Config, load_config
from redpss.core.daemon import Service
from redpss.core.db import DatabaseConfigMismatch, DatabaseError, DatabaseQueryError, DbSession, DbSettings
from redpss.core.db.contract import current_version
from redpss.core.entry import daemon_argument_parser, run_instance_daemon
from redpss.core.errors import StartupError
from redpss.core.logging.levels import level_from_name
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import AsyncClient, Code, Connection, JsonLineServer, Message, WireError
from redpss.jmon import requests
from redpss.jmon.definitions import (
    read_blocked_watchers,
    read_definitions,
    read_last_scheduled,
    read_last_started,
    run_request,
)
from redpss.jmon.housekeeping import Housekeeping
from redpss.jmon.reload import config_changes
from redpss.jmon.repeated_hour import RepeatedHourTicks, newest
from redpss.jmon.schedule import Definition, Key, Schedule, ScheduleEntry, Tick
from redpss.jmon.stats import StatsCollector, StatsWriter

log = logging.getLogger("redpss.jmon")

DB_WAIT_AT_START = 60.0  # seconds start-up waits for the database before giving up (systemd then restarts JMON)
SCHED_WAIT_AT_START = 15.0  # seconds start-up waits for the SCHED link before dispatching anyway (ticks skipped)
SCHED_OUTAGE_LIMIT = 60.0  # seconds without SCHED after which JMON is unhealthy (default of --sched-outage-limit)
INSTALL_HINT_PERIOD = 60.0  # seconds between the reminders that REDSYS is not installed
MAX_WAITING_SKIPS = 100_000
SKIPS_PER_REQUEST = 500  # one request and one fsync in SCHED for many skipped ticks (a backlog can hold thousands)
# seconds JMON waits for SCHED's answer to a submit; SCHED starts nothing that reaches it after half of it
SUBMIT_TIMEOUT = 30.0
POLL_WAIT_AT_STOP = 3.0  # seconds a stop lets a poll under way finish before it leaves the session to it
FULL_SYNC_PERIOD = 60.0  # seconds: unchanged definitions are still synced this often (cron validity over time)


def control_socket(paths: InstancePaths) -> Any:
    return paths.tmp / "jmon.sock"


class JmonService(Service):
    name = "jmon"
    tick_interval = 0.5
    drain_timeout = service_spec("jmon").drain_timeout

    def __init__(
        self,
        config: Config,
        paths: InstancePaths,
        clock: Callable[[], float] = time.time,
        *,
        sched_outage_limit: float = SCHED_OUTAGE_LIMIT,
        debug: bool = False,
    ) -> None:
        self.config = config
        self.sched_outage_limit = sched_outage_limit
        self.debug = debug  # --debug: DEBUG whatever log_level a reload reads
        self.sched_down_since: float | None = time.monotonic()  # monotonic; None while the link is up
        self.sched_up = asyncio.Event()
        self.next_install_hint = 0.0
        self.paths = paths
        self.clock = clock
        # the exact times of ticks handled in a repeated local hour, which the run logs cannot tell apart
        self.repeated_hour = RepeatedHourTicks(paths.tmp / "jmon-repeated-hour.json")
        self.schedule = Schedule()
        self.definitions: dict[Key, Definition] = {}
        self.blocked: set[Key] = set()
        self.invalid: dict[Key, str] = {}
        self.pending_timing: set[Key] = set()
        self.skip_sender_busy = False
        self.skips_held = False  # SCHED could not log the waiting skips; said once until it can
        self.fingerprint = ""
        self.stop_event = threading.Event()
        self.last_full_sync = 0.0
        self.session = DbSession(DbSettings.from_config(config, client_name="RED-PSS JMON"))
        self.stats_writer = StatsWriter(
            DbSession(DbSettings.from_config(config, client_name="RED-PSS JMON stats")), paths.tmp / "jmon-stats.spool"
        )
        self.db_lock = asyncio.Lock()
        self.stats = StatsCollector()
        self.waiting_skips: deque[Message] = deque(maxlen=MAX_WAITING_SKIPS)
        self.sched: AsyncClient | None = None
        self.secret = ""
        self.control: JsonLineServer | None = None
        self.wake = asyncio.Event()
        self.stopping = False
        self.last_poll_ok: float | None = None
        self.next_poll = 0.0
        self.next_stats = 0.0
        self.tasks: list[asyncio.Task[None]] = []
        self.side_tasks: set[asyncio.Task[Message]] = set()
        self.stats_task: asyncio.Task[None] | None = None
        self.poll_task: asyncio.Task[dict[str, Any]] | None = None  # the tick's poll of the definitions
        self.housekeeping = Housekeeping(config, paths)  # the daemons' state in REDSYS; the DB logs' retention
        self.clone_guard: CloneGuard | None = None  # is the database ours (redpss.clone)? set once the secret is read
        self.clone_hold = ""  # why no job starts (a foreign database), "" when the database is this instance's
        # the newest scheduled tick per job/watcher read from the run logs at start, kept until the first sync takes
        # it: a first poll that fails (the database just back) must not lose the missed ticks' MISSED_POLICY. None
        # before that sync: read (again) then, when the read at start failed or the database was held meanwhile.
        self.last_at_start: dict[Key, float] | None = None
        self.synced = False  # the schedule has taken the definitions once

    @property
    def suspended(self) -> bool:
        return self.paths.suspend_marker.exists()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.secret = instance_secret(self.paths)
        self.control = JsonLineServer(self.handle, self.secret, "JMON")
        try:
            await self.control.start_unix(control_socket(self.paths))
        except OSError as exc:
            raise StartupError(f"cannot create the control socket {control_socket(self.paths)}: {exc}") from exc
        began = time.monotonic()
        self.tasks.append(self.spawn(self._sched_link(), "sched-link"))
        try:
            connected = await asyncio.to_thread(
                self.session.wait_connected, self.stop_event, DB_WAIT_AT_START, refusal_is_final=True
            )
        except DatabaseConfigMismatch as exc:
            raise StartupError(f"{exc}; JMON stops until the configuration is fixed") from exc
        if not connected:
            raise RuntimeError(
                f"database at {self.config.default.exa_connection} not reachable within "
                f"{DB_WAIT_AT_START:.0f} s; giving up so that systemd restarts JMON"
            )
        # Before the first poll: a database restored from another instance's backup gets this instance's state
        # back (with a pending preclone) or schedules nothing (without one).
        self.clone_guard = CloneGuard(self.paths, self.secret)
        self.clone_hold = await self._db(self._clone_check)
        try:
            self.last_at_start = await self._last_scheduled()
            self.schedule.runs_began(await self._db(read_last_started))
        except DatabaseError as exc:
            await self._explain_db_failure(exc, "cannot read the run logs")
        await self._poll(apply_timing=False)
        self.next_stats = self.clock() + self.config.redctl.jmon_stats_interval
        # Dispatching before the link is up would only log SCHED_UNAVAILABLE skips for ticks due at start.
        remaining = min(SCHED_WAIT_AT_START, self.sched_outage_limit) - (time.monotonic() - began)
        try:
            await asyncio.wait_for(self.sched_up.wait(), max(0.0, remaining))
        except TimeoutError:
            log.warning(
                "SCHED did not answer within %.0f s of JMON's start; dispatching anyway: due ticks are skipped "
                "(SCHED_UNAVAILABLE) until it does, and after %.0f s without SCHED JMON reports itself unhealthy",
                min(SCHED_WAIT_AT_START, self.sched_outage_limit),
                self.sched_outage_limit,
            )
        self.tasks.append(self.spawn(self._dispatcher(), "dispatcher"))
        if self.suspended:
            log.warning("instance is suspended: no new runs until `redctl resume`")

    async def tick(self, now: float) -> None:
        # The poll runs beside the tick, not in it: the main loop pings the watchdog after each tick, and a database
        # that stops answering on an open connection holds a query for the socket timeout (30 s, the watchdog's
        # interval), so systemd killed a JMON that was only waiting. An unexpected failure of the last poll still
        # surfaces here, as it did when the tick awaited it.
        if self.poll_task is not None and self.poll_task.done():
            task, self.poll_task = self.poll_task, None
            task.result()
        if now >= self.next_poll and self.poll_task is None:
            self.poll_task = asyncio.create_task(self._poll(apply_timing=False))
        if now >= self.next_stats and (self.stats_task is None or self.stats_task.done()):
            self.next_stats = now + self.config.redctl.jmon_stats_interval
            self.stats_task = asyncio.create_task(self._write_stats(now))
        self.housekeeping.tick(now, self.config, self.status())
        await self._send_waiting_skips()
        self.wake.set()  # a suspend marker created or removed by hand is seen within one tick

    async def drain(self) -> None:
        self.stopping = True
        self.wake.set()
        await self._send_waiting_skips()
        if self.stats_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.stats_task, 5)
        await self.abort()

    async def abort(self) -> None:
        self.stopping = True
        self.stop_event.set()  # ends a wait for the database that start-up may still be in
        # a poll is let finish (briefly): cancelled, its query would go on in its thread while the session closes
        polling = self.poll_task is not None and not self.poll_task.done()
        if polling and self.poll_task is not None:
            done, _ = await asyncio.wait({self.poll_task}, timeout=POLL_WAIT_AT_STOP)
            polling = not done
        tasks = [*self.tasks, *([self.poll_task] if self.poll_task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.control is not None:
            await self.control.close()
        if self.sched is not None:
            await self.sched.close()
        if self.waiting_skips:
            log.warning("%d skipped tick(s) could not be handed to SCHED for logging", len(self.waiting_skips))
        await self.housekeeping.close()
        if not polling:  # else the query still holds the session: it ends with the process
            await asyncio.to_thread(self.session.close)
        await asyncio.to_thread(self.stats_writer.close)

    def status(self) -> str:
        entries = len(self.definitions)
        running = self.schedule.running_count()
        state = "SUSPENDED; " if self.suspended else ""
        if self.clone_hold:
            state = "NO JOBS: the database is another instance's (`redctl status` says what to run); " + state
        down = self.sched_down_for()
        if down is None:
            link = "SCHED connected"
        elif down > self.sched_outage_limit:
            link = f"UNHEALTHY: SCHED unreachable for {down:.0f} s (limit {self.sched_outage_limit:.0f} s)"
        else:
            link = f"SCHED unreachable for {down:.0f} s, reconnecting"
        return f"{state}{entries} definitions, {running} running, {link}"

    def healthy(self) -> bool:
        """JMON can hand runs to SCHED, or has been reconnecting for no longer than the outage limit."""
        down = self.sched_down_for()
        return down is None or down <= self.sched_outage_limit

    def sched_down_for(self) -> float | None:
        """Seconds since the link to SCHED was lost (or since start-up, if it never came up); None while it is up."""
        return None if self.sched_down_since is None else time.monotonic() - self.sched_down_since

    async def reload(self) -> None:
        """SIGHUP: re-read red_params.conf, apply what JMON can apply while running, name what needs a restart;
        then re-read the definitions with interval/cron changes applied, as `redctl reload` does."""
        config = await asyncio.to_thread(load_config, self.paths.config_file)
        changes = config_changes(self.config, config)
        for key in changes.applied:
            log.info("reload: %s (applied)", changes.described[key])
        for key in changes.need_restart:
            log.warning(
                "reload: %s: takes effect only after a restart of JMON (`redctl restart`)", changes.described[key]
            )
        if changes.empty:
            log.info("reload: red_params.conf has no change that concerns JMON")
        self.config = config
        if not self.debug:
            logging.getLogger().setLevel(level_from_name(config.redctl.log_level))
        self.next_poll = min(self.next_poll, self.clock() + config.redctl.jmon_poll_interval)
        self.next_stats = min(self.next_stats, self.clock() + config.redctl.jmon_stats_interval)
        await self._poll(apply_timing=True)

    # -- database -------------------------------------------------------------------------------------------------
    async def _db(self, query: Callable[[DbSession], Any]) -> Any:
        async with self.db_lock:
            return await asyncio.to_thread(query, self.session)

    async def _explain_db_failure(self, exc: DatabaseError, what: str) -> None:
        """Log a failed read; when REDSYS is not installed, say so (once per INSTALL_HINT_PERIOD) with the fix."""
        installed = True
        if isinstance(exc, DatabaseQueryError):
            with contextlib.suppress(DatabaseError):
                installed = await self._db(lambda session: current_version(session, "REDSYS")) > 0
        if installed:
            log.warning("%s, keeping the current schedule: %s", what, exc)
            return
        if time.monotonic() >= self.next_install_hint:
            self.next_install_hint = time.monotonic() + INSTALL_HINT_PERIOD
            log.warning(
                "REDSYS is not installed in the database at %s, so there are no job definitions to schedule; "
                "run `redctl db_install` (this reminder repeats every %.0f s)",
                self.config.default.exa_connection,
                INSTALL_HINT_PERIOD,
            )

    def _clone_check(self, session: DbSession, routine: bool = False) -> str:
        return self.clone_guard.check(session, self.config, routine=routine) if self.clone_guard is not None else ""

    async def _clone_hold_now(self) -> str:
        """Why no job may start ("" when the database is this instance's), looked at again at every poll."""
        if self.clone_hold:  # `redctl postclone` (or a fixed folder) ends it
            hold = str(await self._db(self._clone_check))
            if not hold:  # the run logs read while held may have been another database's: read again
                self.last_at_start = None
            return hold
        # a database restored under the running instance (no stop, no preclone) is found at the next poll
        return str(await self._db(lambda session: self._clone_check(session, routine=True)))

    async def _last_scheduled(self) -> dict[Key, float]:
        """Per job and watcher, the newest tick handled: the run logs', or a later one of a repeated local hour that
        the logs cannot tell from an earlier one (repeated_hour)."""
        logged = await self._db(read_last_scheduled)
        return newest(logged, await asyncio.to_thread(self.repeated_hour.load, self.clock()))

    async def _last_scheduled_for_sync(self) -> dict[Key, float] | None:
        """The run logs' newest scheduled ticks for the first sync (read now if they could not be before); None
        after it."""
        if not self.synced and self.last_at_start is None:
            try:
                self.last_at_start = await self._last_scheduled()
            except DatabaseError as exc:  # scheduled from now, as when the run logs cannot be read at all
                await self._explain_db_failure(exc, "cannot read the run logs")
        return self.last_at_start

    async def _poll(self, apply_timing: bool) -> dict[str, Any]:
        self.next_poll = self.clock() + self.config.redctl.jmon_poll_interval
        try:
            self.clone_hold = await self._clone_hold_now()
        except DatabaseError as exc:
            # whose the database is could not be told (a session lost when the database went away and came back,
            # perhaps restored from another instance's backup): the definitions the next statement would read on a
            # new session might be another instance's, so this poll reads none; the schedule stays as it was
            await self._explain_db_failure(exc, "cannot tell whether the database is this instance's")
            return {"ok": False, "error": str(exc)}
        if self.clone_hold:
            return {"ok": False, "error": self.clone_hold}
        try:
            definitions, fingerprint = await self._db(read_definitions)
            self.blocked = await self._db(read_blocked_watchers)
        except DatabaseError as exc:
            await self._explain_db_failure(exc, "reading job definitions failed")
            return {"ok": False, "error": str(exc)}
        now = self.clock()
        if fingerprint == self.fingerprint and not apply_timing and now - self.last_full_sync < FULL_SYNC_PERIOD:
            # Nothing changed: re-syncing thousands of definitions would only hold up the dispatcher.
            self.last_poll_ok = now
            return {
                "ok": True,
                "definitions": len(definitions),
                "pending_timing_changes": len(self.pending_timing),
                "invalid": len(self.invalid),
            }
        last_scheduled = await self._last_scheduled_for_sync()
        self.fingerprint, self.last_full_sync = fingerprint, now
        report = self.schedule.sync(definitions, now, apply_timing=apply_timing, last_scheduled=last_scheduled)
        self.last_at_start, self.synced = None, True
        self.definitions = {d.key: d for d in definitions}
        for key, reason in report.invalid.items():
            if self.invalid.get(key) != reason:
                log.error("%s", reason, extra={"SCHEMA": key[1], f"{key[0]}_ID": key[2]})
        self.invalid = dict(report.invalid)
        for label, keys in (
            ("added", report.added),
            ("removed", report.removed),
            ("activated", report.activated),
            ("deactivated", report.deactivated),
            ("timing applied", report.timing_applied),
        ):
            for key in keys:
                log.info("%s %s.%s %s", key[0].lower(), key[1], key[2], label, extra={"SCHEMA": key[1]})
        for key in set(report.timing_changed_pending) - self.pending_timing:
            log.info("%s %s.%s: interval/cron changed; takes effect on `redctl reload`", key[0].lower(), key[1], key[2])
        self.pending_timing = set(report.timing_changed_pending)
        # The definitions live until the next change: keep the collector from walking them in every full
        # collection, which with 10,000 jobs is a pause the dispatcher would feel.
        gc.freeze()
        self.last_poll_ok = self.clock()
        self.wake.set()
        return {
            "ok": True,
            "definitions": len(definitions),
            "pending_timing_changes": len(report.timing_changed_pending),
            "invalid": len(report.invalid),
        }

    # -- dispatch -------------------------------------------------------------------------------------------------
    async def _dispatcher(self) -> None:
        while not self.stopping:
            due = self.schedule.next_due()
            wait = 1.0 if due is None or self.clone_hold else min(1.0, max(0.0, due - self.clock()))
            self.wake.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait)
            if self.stopping:
                return
            if self.clone_hold:  # found at a poll: another instance's database under us; nothing starts on it
                continue
            ticks = self.schedule.pop_due(self.clock(), suspended=self.suspended, blocked=self.blocked)
            if ticks:
                await asyncio.gather(*(self._handle_tick(tick) for tick in ticks))
            kept = self.repeated_hour.pending(self.clock())
            if kept is not None:
                await asyncio.to_thread(self.repeated_hour.write, kept)

    async def _handle_tick(self, tick: Tick) -> Message:
        if tick.reason != "MANUAL":  # a manual start moves no schedule (read_last_scheduled leaves it out too)
            self.repeated_hour.note(tick.key, tick.scheduled_at)
        if tick.action == "SKIP":
            self._skip(tick, tick.reason, _skip_message(tick))
            return {"ok": False, "reason": tick.reason}
        if self.sched is None:
            self._skip(tick, "SCHED_UNAVAILABLE", "SCHED is not reachable")
            return {"ok": False, "error": "SCHED is not reachable"}
        payload = run_request(tick, trigger="MANUAL" if tick.reason == "MANUAL" else "SCHEDULE")
        sent_at = self.clock()
        try:
            # SCHED starts the run only while JMON still waits for the answer (see sched.service._expired)
            expires_at = time.monotonic() + SUBMIT_TIMEOUT / 2
            reply = await self.sched.request("submit", timeout=SUBMIT_TIMEOUT, run=payload, expires_at=expires_at)
        except (WireError, TimeoutError, ConnectionError) as exc:
            why = f"no answer within {SUBMIT_TIMEOUT:.0f} s" if isinstance(exc, TimeoutError) else str(exc)
            self._skip(tick, "SCHED_UNAVAILABLE", f"SCHED did not take the run {payload['run_id']}: {why}")
            return {"ok": False, "error": why}
        if not reply.get("ok"):
            reason = str(reply.get("reason") or "REFUSED")
            if reason == "LOGGED":  # handled before this JMON started, its row not yet in the database: no new row
                log.info("%s %s.%s: %s", tick.key[0].lower(), tick.key[1], tick.definition.name, reply.get("error"))
                return reply
            # EXPIRED: SCHED was stalled past the deadline, and took nothing: as unavailable as not answering at all
            self._skip(tick, "SCHED_UNAVAILABLE" if reason == "EXPIRED" else reason, str(reply.get("error", "")))
            return reply
        # SCHED answers with the run already in flight for this tick, when there is one (JMON restarted meanwhile):
        # that run is the one to follow
        self.schedule.run_started(tick.key, str(reply.get("run_id") or payload["run_id"]))
        self.stats.dispatched(sent_at - tick.scheduled_at)
        return reply

    def _skip(self, tick: Tick, reason: str, message: str) -> None:
        self.stats.skip()
        kind, schema, id_ = tick.key
        self.waiting_skips.append(
            {
                "kind": kind,
                "schema": schema,
                "id": id_,
                "name": tick.definition.name,
                "scheduled_at": tick.scheduled_at,
                "reason": reason,
                "message": message,
                # the row's run id, made here: a record sent again (SCHED's answer came too late) is known by it
                "run_id": uuid.uuid4().hex,
            }
        )
        log.info(
            "%s %s.%s tick skipped: %s %s",
            kind.lower(),
            schema,
            tick.definition.name,
            reason,
            message,
            extra={"SCHEMA": schema, f"{kind}_ID": id_},
        )

    async def _send_waiting_skips(self) -> None:
        """Hand skipped ticks to SCHED for its run log; one sender at a time, so none is sent twice or lost."""
        if self.skip_sender_busy:
            return
        self.skip_sender_busy = True
        try:
            while self.waiting_skips and self.sched is not None:
                records = list(itertools.islice(self.waiting_skips, SKIPS_PER_REQUEST))
                try:
                    reply = await self.sched.request("skip", timeout=5, records=records)
                except (WireError, TimeoutError, ConnectionError):
                    return
                if not reply.get("ok"):
                    if reply.get("code") != Code.BAD_REQUEST:  # SCHED cannot log them now (its disk): sent again
                        if not self.skips_held:
                            log.warning("SCHED cannot log skipped ticks now, they wait: %s", reply.get("error"))
                        self.skips_held = True
                        return
                    # records SCHED will never take: sending them again would block every later one
                    log.error(
                        "SCHED refused %d skipped tick(s), they are not in the run log: %s",
                        len(records),
                        reply.get("error"),
                    )
                self.skips_held = False
                for record in records:  # a record the full deque dropped meanwhile is no longer at its head
                    if self.waiting_skips and self.waiting_skips[0] is record:
                        self.waiting_skips.popleft()
        finally:
            self.skip_sender_busy = False

    # -- the link to SCHED ----------------------------------------------------------------------------------------
    async def _sched_link(self) -> None:
        port = self.config.redctl.sched_service_port
        complained = False
        while not self.stopping:
            try:
                client = await AsyncClient.connect_tcp("127.0.0.1", port, self.secret, "jmon")
                await client.request("subscribe")
                status = await client.request("status")
            except (WireError, TimeoutError, ConnectionError) as exc:
                if not complained:
                    log.warning("SCHED at 127.0.0.1:%d not reachable (%s); retrying every second", port, exc)
                    complained = True
                await asyncio.sleep(1.0)  # pacing of reconnect attempts
                continue
            log.info("connected to SCHED at 127.0.0.1:%d", port)
            complained = False
            self._forget_lost_runs(status)
            self.sched = client
            self.sched_down_since = None
            self.sched_up.set()
            self.wake.set()  # skipped ticks waiting for SCHED go out at the next tick
            try:
                await self._consume_events(client)
            finally:
                self.sched = None
                self.sched_down_since = time.monotonic()
                self.sched_up.clear()
                await client.close()
            if not self.stopping:
                log.warning("connection to SCHED lost; reconnecting")

    def _forget_lost_runs(self, status: Message) -> None:
        """Runs we handed to a SCHED that no longer knows them (it restarted): free their jobs for the schedule.
        Runs SCHED has that we do not know (JMON restarted while they ran) hold their jobs as our own would: else a
        job with OVERLAP_POLICY SKIP got a second run beside the one still going."""
        known = {w["run_id"] for p in status.get("pools", []) for w in p["workers"] if w["run_id"]}
        known |= set(status.get("queued_run_ids", [])) | {r["run_id"] for r in status.get("retries_waiting", [])}
        ours = {run_id for run_ids in self.schedule.in_flight().values() for run_id in run_ids}
        for run in status.get("in_flight", []):
            known.add(run["run_id"])
            if run["run_id"] not in ours:
                key = (str(run["kind"]), str(run["schema"]), int(run["id"]))
                scheduled = float(run["scheduled_at"]) if run.get("trigger") == "SCHEDULE" else None
                self.schedule.run_adopted(key, str(run["run_id"]), scheduled)
                log.info("run %s of %s.%s is in flight in SCHED; its job waits for it", run["run_id"], key[1], key[2])
        for key, run_ids in self.schedule.in_flight().items():
            for run_id in run_ids:
                if run_id not in known:
                    log.warning("run %s of %s.%s was lost by SCHED; the job is scheduled again", run_id, key[1], key[2])
                    tick = self.schedule.run_lost(
                        key, run_id, self.clock(), suspended=self.suspended, blocked=self.blocked
                    )
                    if tick is not None:
                        task = asyncio.create_task(self._handle_tick(tick))
                        self.side_tasks.add(task)
                        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[Message]) -> None:
        """A one-off task ended: an error in it is logged with its traceback, never dropped unseen."""
        self.side_tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("handing a tick to SCHED failed", exc_info=error)

    async def _consume_events(self, client: AsyncClient) -> None:
        closed = asyncio.create_task(client.closed.wait())
        try:
            while not self.stopping:
                event_task = asyncio.create_task(client.events.get())
                done, _ = await asyncio.wait({event_task, closed}, return_when=asyncio.FIRST_COMPLETED)
                if event_task not in done:
                    event_task.cancel()
                    return
                await self._on_event(event_task.result())
        finally:
            closed.cancel()

    async def _on_event(self, event: Message) -> None:
        key: Key = (str(event["kind"]), str(event["schema"]), int(event["id"]))
        if event["event"] == "started":
            self.schedule.run_began(key, self.clock())  # what `redctl show` reports as the last run
            if event.get("origin") != "jmon":
                self.schedule.run_started(key, str(event["run_id"]))
        elif event["event"] == "queued":  # a run SCHED submitted itself (a watcher's target), maybe waiting
            if event.get("origin") != "jmon":
                self.schedule.run_started(key, str(event["run_id"]))
        elif event["event"] == "finished":
            self.stats.run_finished(event)
            queued = self.schedule.run_finished(
                key, str(event["run_id"]), self.clock(), suspended=self.suspended, blocked=self.blocked
            )
            if queued is not None:
                await self._handle_tick(queued)
        elif event["event"] == "watcher_blocked":
            self.blocked.add(key)
            log.error(
                "watcher %s.%s blocked after an executor error; `redctl we_reset_error` releases it",
                key[1],
                event.get("name"),
                extra={"SCHEMA": key[1], "WATCHER_ID": key[2]},
            )

    # -- statistics -----------------------------------------------------------------------------------------------
    async def _write_stats(self, now: float) -> None:
        pools: list[dict[str, Any]] = []
        if self.sched is not None:
            with contextlib.suppress(WireError, TimeoutError, ConnectionError):
                pools = list((await self.sched.request("status", timeout=5))["pools"])
        rows = self.stats.rows(now, pools, self.last_poll_ok, self.suspended)
        # the rows are spooled with an fsync (and may wait for the writer's lock): not on the loop that dispatches
        await asyncio.to_thread(self.stats_writer.add, *rows)
        if self.stats_writer.backlog:
            await asyncio.to_thread(self.stats_writer.flush)

    # -- control --------------------------------------------------------------------------------------------------
    async def handle(self, message: Message, connection: Connection) -> Message:
        op = requests.operation(message)  # RequestError (an error reply) for an unknown op or field
        handlers: dict[str, Callable[[], Awaitable[Message]]] = {
            "show": self._show,
            "stats": lambda: self._stats(requests.flag(message, "reset")),
            "reload": lambda: self._poll(apply_timing=True),
            "poll": lambda: self._poll(apply_timing=False),
            "suspend": lambda: self._set_suspended(True),
            "resume": lambda: self._set_suspended(False),
            "start_job": lambda: self._start_now(message, scheduled_only=True),
            "start_db_job": lambda: self._start_now(message, scheduled_only=False),
            "we_reset": self._reset_blocked,
            "ping": self._ping,
        }
        return await handlers[op]()

    async def _stats(self, reset: bool) -> Message:
        """Dispatch lateness and run counters without the per-job listing (cheap with 10,000 jobs)."""
        summary = self.stats.lateness_summary()
        if reset:
            self.stats.recent_ms.clear()
        sched: Message | None = None
        if self.sched is not None:
            with contextlib.suppress(WireError, TimeoutError, ConnectionError):
                sched = await self.sched.request("status", timeout=5)
        finished = sched.get("runs_finished") if sched else None
        return {"ok": True, "lateness": summary, "runs_finished": finished, "definitions": len(self.definitions)}

    async def _ping(self) -> Message:
        """Alive, and whether JMON can do its work (what the watchdog is told), for status views outside systemd."""
        return {"ok": True, "pid": os.getpid(), "healthy": self.healthy(), "status": self.status()}

    async def _reset_blocked(self) -> Message:
        self.blocked = await self._db(read_blocked_watchers)
        return {"ok": True, "blocked": len(self.blocked)}

    async def _set_suspended(self, suspend: bool) -> Message:
        marker = self.paths.suspend_marker
        if suspend:
            marker.touch(exist_ok=True)
            log.warning("instance suspended: no new runs; running ones finish")
        else:
            marker.unlink(missing_ok=True)
            log.info("instance resumed")
        self.wake.set()
        return {"ok": True, "suspended": suspend}

    async def _start_now(self, message: Message, scheduled_only: bool) -> Message:
        key = requests.job_key(message)
        force = requests.flag(message, "force")
        by = requests.text(message, "by", requests.MAX_BY_LENGTH) or "a client"
        definition = self.definitions.get(key)
        if definition is None:
            return {"ok": False, "code": Code.REFUSED, "error": f"no {key[0].lower()} {key[2]} in schema {key[1]}"}
        if self.suspended:
            if not force:
                return {
                    "ok": False,
                    "code": Code.REFUSED,
                    "error": f"instance {self.paths.redenv} is suspended: no run starts, {key[1]}.{definition.name} "
                    "was not started (`redctl resume` first, or start it anyway with --force)",
                }
            log.warning(
                "job %s.%s started by %s while the instance is suspended (--force)",
                key[1],
                definition.name,
                by,
                extra={"SCHEMA": key[1], "JOB_ID": key[2]},
            )
        if scheduled_only:
            try:
                tick = self.schedule.trigger_now(key, self.clock())
            except KeyError:
                return {
                    "ok": False,
                    "code": Code.REFUSED,
                    "error": f"{key[1]}.{definition.name} is not scheduled (inactive?); "
                    "use start_db_job to run it anyway",
                }
        else:
            tick = Tick(key=key, definition=definition, scheduled_at=self.clock(), action="RUN", reason="MANUAL")
        reply = await self._handle_tick(tick)
        if reply.get("ok"):
            return {"ok": True, "run_id": reply.get("run_id"), "state": reply.get("state"), "suspended": self.suspended}
        # SCHED declined it as things stand (a reason of its own), or was away, silent or stalled (none, EXPIRED)
        away = reply.get("reason") in (None, "EXPIRED")
        return {
            "ok": False,
            "code": Code.UNAVAILABLE if away else Code.REFUSED,
            "error": str(reply.get("error") or reply.get("reason")),
        }

    async def _show(self) -> Message:
        sched: Message | None = None
        if self.sched is not None:
            with contextlib.suppress(WireError, TimeoutError, ConnectionError):
                sched = await self.sched.request("status", timeout=5)
        entries = [
            {**_entry_dict(e), "blocked": e.key in self.blocked, "invalid": self.invalid.get(e.key)}
            for e in self.schedule.entries()
        ]
        return {
            "ok": True,
            "suspended": self.suspended,
            "last_poll_ok": self.last_poll_ok,
            "entries": entries,
            "invalid": [{"key": list(k), "reason": v} for k, v in self.invalid.items()],
            "sched": sched,
            "lateness": self.stats.lateness_summary(),
        }


def _entry_dict(entry: ScheduleEntry) -> dict[str, Any]:
    data = dataclasses.asdict(entry)
    data["key"] = list(entry.key)
    return data


def _skip_message(tick: Tick) -> str:
    if tick.reason == "MISSED":
        return f"{tick.missed} run(s) missed (stall, clock jump or downtime); continuing with the next due time"
    return {
        "SUSPENDED": "instance suspended",
        "OVERLAP": "previous run still running",
        "BLOCKED": "watcher blocked by an executor error",
    }.get(tick.reason, "")


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return JmonService(config, paths, sched_outage_limit=args.sched_outage_limit, debug=args.debug)


def main(argv: Sequence[str] | None = None) -> int:
    parser = daemon_argument_parser("jmon", "RED-PSS JMON: dispatches due jobs and watchers to SCHED")
    parser.add_argument(
        "--sched-outage-limit",
        type=float,
        default=SCHED_OUTAGE_LIMIT,
        help=f"seconds without SCHED after which JMON reports itself unhealthy (default {SCHED_OUTAGE_LIMIT:.0f})",
    )
    return run_instance_daemon("jmon", _build, argv, parser=parser)


if __name__ == "__main__":
    raise SystemExit(main())
