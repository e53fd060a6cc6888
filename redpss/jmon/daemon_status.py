"""REDSYS.DAEMON_STATUS: JMON writes the state of every daemon of its instance into the database.

Every WRITE_PERIOD seconds JMON asks each daemon the services registry lists for this config, the way `redctl
status` does outside systemd: over the wire (`ping`, which answers pid, version and status text) or by a TCP connect
for the embedded database. It then replaces the instance's rows in REDSYS.ADM_DAEMON_STATUS in one transaction, in a
thread with its own session, so a slow database never holds up dispatch. While the database is away nothing is
written, and the view shows STATE UNKNOWN once the rows are 30 s old.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redpss
from redpss.core.config import Config
from redpss.core.db import DatabaseError, DatabaseQueryError, DbSession, DbSettings
from redpss.core.errors import RedpssError
from redpss.core.net import tcp_reachable
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import ServiceSpec, enabled_services
from redpss.core.wire import BlockingClient, WireError

log = logging.getLogger("redpss.jmon.daemon_status")

WRITE_PERIOD = 5.0  # seconds between two rewrites of the rows
PROBE_TIMEOUT = 2.0  # seconds a probe of one daemon may take
CLOSE_WAIT = 5.0  # seconds JMON's stop waits for a write in progress, and for marking itself STOPPED
RUNNING, NOT_RUNNING, STOPPED = "RUNNING", "NOT_RUNNING", "STOPPED"
TABLE = "REDSYS.ADM_DAEMON_STATUS"


@dataclass(frozen=True)
class DaemonState:
    daemon: str
    state: str
    pid: int | None = None
    version: str | None = None
    started: float | None = None
    heartbeat: float | None = None
    status: str = ""


def process_started(pid: int) -> float | None:
    """When process `pid` of this machine started (time.time() scale), from /proc; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name in () may hold blanks
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(int(line.split()[1]) for line in lines if line.startswith("btime "))
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    ticks_after_boot = int(stat[19])  # field 22 of proc(5): the name and the fields before it are cut off
    return boot + ticks_after_boot / os.sysconf("SC_CLK_TCK")


class DaemonProbe:
    """Asks the instance's daemons how they are; remembers when each last answered."""

    def __init__(self, paths: InstancePaths) -> None:
        self.paths = paths
        self.last_seen: dict[str, float] = {}

    def probe(self, config: Config, spec: ServiceSpec, now: float) -> DaemonState:
        address = spec.address(config, self.paths)
        if spec.probe == "ping" and address is not None:
            return self._ping(spec, address, now, lambda: spec.client_tls(config, self.paths))
        if spec.probe == "tcp" and isinstance(address, tuple):
            reachable, why = tcp_reachable(*address, timeout=PROBE_TIMEOUT)
            where = f"{address[0]}:{address[1]}"
            if reachable:
                self.last_seen[spec.name] = now
                return DaemonState(spec.name, RUNNING, heartbeat=now, status=f"listening on {where}")
            return self._absent(spec, f"not listening on {where} ({why})")
        return self._absent(spec, "no way to ask it")

    def _ping(
        self,
        spec: ServiceSpec,
        address: tuple[str, int] | Path,
        now: float,
        tls: Callable[[], ssl.SSLContext | None],
    ) -> DaemonState:
        try:
            secret = instance_secret(self.paths, create=False)
            with BlockingClient(address, secret, "JMON status", PROBE_TIMEOUT, ssl_context=tls()) as c:
                reply = c.request("ping")
        except (WireError, OSError, RedpssError) as exc:
            return self._absent(spec, f"not answering: {str(exc).split(' (')[0]}")
        self.last_seen[spec.name] = now
        pid = reply.get("pid")
        return DaemonState(
            spec.name,
            RUNNING,
            pid=pid if isinstance(pid, int) else None,
            version=str(reply["version"]) if reply.get("version") else None,
            started=process_started(pid) if isinstance(pid, int) else None,
            heartbeat=now,
            status=str(reply.get("status") or "answering"),
        )

    def _absent(self, spec: ServiceSpec, why: str) -> DaemonState:
        return DaemonState(spec.name, NOT_RUNNING, heartbeat=self.last_seen.get(spec.name), status=why)


def _timestamp(value: float | None) -> str | None:
    return None if value is None else dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]


class DaemonStatusWriter:
    """JMON's part: `run_if_due(now, config, own_status)` from its tick; `close()` marks JMON stopped."""

    def __init__(
        self,
        paths: InstancePaths,
        open_session: Callable[[], DbSession],
        *,
        period: float = WRITE_PERIOD,
    ) -> None:
        self.paths = paths
        self.open_session = open_session
        self.session: DbSession | None = None
        self.period = period
        self.probe = DaemonProbe(paths)
        self.started = time.time()
        self.next_write = 0.0
        self.task: asyncio.Task[None] | None = None
        self.failing = False

    @classmethod
    def for_instance(cls, config: Config, paths: InstancePaths) -> DaemonStatusWriter:
        # one transaction per round: a reader sees every daemon's row of a round, or the previous round's
        settings = DbSettings.from_config(config, client_name="RED-PSS JMON daemon status", autocommit=False)
        return cls(paths, lambda: DbSession(settings))

    def own_state(self, state: str, status: str, now: float) -> DaemonState:
        return DaemonState("jmon", state, os.getpid(), redpss.__version__, self.started, now, status)

    def run_if_due(self, now: float, config: Config, own_status: str) -> None:
        if now < self.next_write or (self.task is not None and not self.task.done()):
            return
        self.next_write = now + self.period
        self.task = asyncio.create_task(asyncio.to_thread(self._probe_and_write, now, config, own_status))

    def states(self, now: float, config: Config, own_status: str) -> list[DaemonState]:
        """One state per daemon the config enables and JMON can ask, JMON's own from JMON itself.

        A daemon that listens nowhere (JSON2CSV, PARQ2CSV) has no row, as `redctl status` does not probe it either:
        a NOT_RUNNING row for a daemon that runs would be false.
        """
        return [
            self.own_state(RUNNING, own_status, now) if spec.name == "jmon" else self.probe.probe(config, spec, now)
            for spec in enabled_services(config)
            if spec.name == "jmon" or spec.probe != "none"
        ]

    def _probe_and_write(self, now: float, config: Config, own_status: str) -> None:
        self.write(self.states(now, config, own_status))

    def write(self, states: list[DaemonState]) -> bool:
        """Bring the instance's rows to `states`; False (logged once) when that fails.

        Each daemon's row is updated in place (inserted the first time), and rows of daemons the config no longer
        enables are deleted last, all in one transaction: a reader never sees a round half written.
        """
        if self.session is None:
            self.session = self.open_session()
        instance = self.paths.redenv
        try:
            for s in states:
                values = {
                    "instance": instance,
                    "daemon": s.daemon,
                    "state": s.state,
                    "pid": s.pid,
                    "version": s.version,
                    "started": _timestamp(s.started),
                    "heartbeat": _timestamp(s.heartbeat),
                    "status": s.status[:2000],
                }
                updated = self.session.execute(
                    f'UPDATE {TABLE} SET "STATE" = {{state}}, PID = {{pid!d}}, VERSION = {{version}}, '  # noqa: S608
                    "STARTED_AT = {started}, LAST_HEARTBEAT = {heartbeat}, STATUS_TEXT = {status}, "
                    'UPDATED_AT = CURRENT_TIMESTAMP WHERE "INSTANCE" = {instance} AND DAEMON = {daemon}',
                    values,
                )
                if int(updated.rowcount()) == 0:
                    self.session.execute(
                        f'INSERT INTO {TABLE} ("INSTANCE", DAEMON, "STATE", PID, VERSION, STARTED_AT, '  # noqa: S608
                        "LAST_HEARTBEAT, STATUS_TEXT, UPDATED_AT) VALUES ({instance}, {daemon}, {state}, {pid!d}, "
                        "{version}, {started}, {heartbeat}, {status}, CURRENT_TIMESTAMP)",
                        values,
                    )
            names = {f"daemon{n}": s.daemon for n, s in enumerate(states)}
            enabled = ", ".join(f"{{{name}}}" for name in names) or "''"
            self.session.execute(
                f'DELETE FROM {TABLE} WHERE "INSTANCE" = {{instance}} AND DAEMON NOT IN ({enabled})',  # noqa: S608
                {"instance": instance, **names},
            )
            self.session.commit()
        except DatabaseError as exc:
            with contextlib.suppress(DatabaseError):
                self.session.execute("ROLLBACK")
            if not self.failing:
                hint = " (is REDSYS up to date? redctl db_install)" if isinstance(exc, DatabaseQueryError) else ""
                log.warning("cannot write the daemons' state to %s%s: %s", TABLE, hint, exc)
            self.failing = True
            return False
        if self.failing:
            log.info("the daemons' state is written to %s again", TABLE)
        self.failing = False
        return True

    async def close(self, own_status: str = "stopped") -> None:
        """Let a running write finish, then mark JMON STOPPED (bounded: the database may be away)."""
        if self.task is not None:
            with contextlib.suppress(Exception):  # a database that hangs must not hold up JMON's stop
                await asyncio.wait_for(asyncio.shield(self.task), CLOSE_WAIT)
        if self.session is None or (self.task is not None and not self.task.done()):
            return  # never written, or a write still hangs in its thread: the session is that thread's
        session = self.session
        stopped = [self.own_state(STOPPED, own_status, time.time())]

        def final() -> None:
            try:
                if not self.failing:
                    self._replace_own(stopped[0])
            finally:
                session.close()

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.to_thread(final), CLOSE_WAIT)

    def _replace_own(self, state: DaemonState) -> None:
        assert self.session is not None
        with contextlib.suppress(DatabaseError):
            self.session.execute(
                f'UPDATE {TABLE} SET "STATE" = {{state}}, STATUS_TEXT = {{status}}, UPDATED_AT = CURRENT_TIMESTAMP '  # noqa: S608
                "WHERE \"INSTANCE\" = {instance} AND DAEMON = 'jmon'",
                {"state": state.state, "status": state.status, "instance": self.paths.redenv},
            )
            self.session.commit()
