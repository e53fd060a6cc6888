"""A whole instance running as an operator runs it: `redctl start_trace` with the embedded database, driven by
the real redctl commands and inspected through the real pyexasol driver.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from redpss.cfi.tls import ensure_certificate
from redpss.cli.redctl.commands.trace import ALL_READY
from redpss.core.config import load_config, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.sqltext import insert_statement
from redpss.core.net import free_ports
from redpss.core.paths import InstancePaths
from tests.support.leaks import process_tree
from tests.support.unit_limits import unit_limits
from tests.support.wait import wait_for


def _ports_apart_from(overrides: Mapping[str, Mapping[str, str]], avoid: Iterable[int]) -> list[int]:
    """Eight distinct free ports (repeated free_port() calls may return one port twice), none of them a port the
    overrides already name (a test's own choice, or inside the passive range it gives CFISRV) nor one in `avoid`
    (another instance's ports: free now, because that instance has not started yet, but claimed by its config)."""
    redctl = overrides.get("redctl", {})
    named = {int(v) for keys in overrides.values() for v in keys.values() if v.isdigit()}
    named.update(avoid)
    start, end = redctl.get("cfi_pasv_port_start", ""), redctl.get("cfi_pasv_port_end", "")
    if start.isdigit() and end.isdigit():
        named.update(range(int(start), int(end) + 1))
    while True:
        chosen = free_ports(8)
        if not named.intersection(chosen):
            return chosen


def instance_config(overrides: Mapping[str, Mapping[str, str]] | None = None, avoid: Iterable[int] = ()) -> str:
    """A config for a test instance on free loopback ports, none in `avoid`, with the embedded database and quick
    JMON cycles."""
    ports = iter(_ports_apart_from(overrides or {}, avoid))
    values: dict[str, dict[str, str]] = {
        "DEFAULT": {"exa_password": "test-pw", "exa_connection": f"127.0.0.1:{next(ports)}", "exa_encryption": "false"},
        "redctl": {
            "devdb_enabled": "true",
            "sched_service_port": str(next(ports)),
            "dbls_port": str(next(ports)),
            "jexec_port": str(next(ports)),
            "sendmail_port": str(next(ports)),
            "sendfile_port": str(next(ports)),
            "cfi_port": str(next(ports)),
            "cfi_explicit_port": str(next(ports)),
            "cfi_password": "test-cfi-pw",  # CFISRV (on by default) refuses to start without one
            "jmon_poll_interval": "0.5",
            "jmon_stats_interval": "2",
            "sched_default_pool_size": "2",
            "sched_loader_pool_size": "1",
            "sched_action_pool_size": "1",
        },
    }
    for section, keys in (overrides or {}).items():
        values.setdefault(section, {}).update(keys)
    return render_config(values)


def run_redctl(
    env: Mapping[str, str], *args: str, launcher: Sequence[str] = (), check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`redctl *args` as an operator runs it (under `launcher`, a command prefix, if given); with `check`, a non-zero
    exit fails the test showing what redctl printed."""
    result = subprocess.run(
        [*launcher, sys.executable, "-m", "redpss.cli.redctl.main", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"redctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


@contextlib.contextmanager
def started_instance(paths: InstancePaths, workdir: Path, *redctl_args: str) -> Iterator[RunningInstance]:
    """An instance on a fresh test config, started as an operator starts it, then `redctl *redctl_args` (e.g.
    db_install) if given; closed, whatever the test did, when the block ends."""
    paths.config_file.write_text(instance_config())
    running = RunningInstance(paths, workdir)
    try:
        running.start()
        if redctl_args:
            running.redctl(*redctl_args)
        yield running
    finally:
        running.close()


class RunningInstance:
    def __init__(self, paths: InstancePaths, workdir: Path) -> None:
        self.paths = paths
        self.workdir = workdir
        self.trace: subprocess.Popen[bytes] | None = None
        self.trace_log = workdir / "start_trace.log"
        self.starts = 0  # start() calls: each ends with start_trace's ALL_READY line in trace_log
        self._session: DbSession | None = None

    @property
    def config(self) -> Any:
        return load_config(self.paths.config_file)

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.paths.environment()}

    def redctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_redctl(self.env(), *args, check=check, timeout=timeout)

    def start(self, *args: str) -> None:
        """`redctl start_trace` until JMON answers on its control socket."""
        ensure_certificate(self.paths)  # CFISRV (on by default) needs one, as `redsysctl create` makes it
        self.starts += 1
        with self.trace_log.open("ab") as out:
            self.trace = subprocess.Popen(
                [*unit_limits(), sys.executable, "-m", "redpss.cli.redctl.main", "start_trace", *args],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._jmon_answers, 120, interval=0.2, what=f"JMON of {self.paths.redenv} (see {self.trace_log})")

    def _jmon_answers(self) -> bool:
        if self.trace is not None and self.trace.poll() is not None:
            raise AssertionError(f"start_trace exited {self.trace.returncode}:\n{self.trace_log.read_text()}")
        # the daemons after JMON in the start order (MAIL2CMD) are ready too once start_trace says so; the log
        # holds the lines of earlier starts of this instance: count them
        if self.trace_log.read_text(errors="replace").count(ALL_READY) < self.starts:
            return False
        return self.redctl("show", "--json", check=False).returncode == 0

    def stop(self, timeout: float = 120) -> int:
        """Ctrl+C as an operator would press it: SIGINT to start_trace; returns its exit code."""
        if self._session is not None:  # the database goes away with the instance
            self._session.close()
            self._session = None
        if self.trace is None:
            return 0
        if self.trace.poll() is None:
            self.trace.send_signal(signal.SIGINT)
        code = self.trace.wait(timeout=timeout)
        self.trace = None
        if code != 0:
            print(self.output)  # shown by pytest when the caller's assertion fails
        return code

    def db(self) -> DbSession:
        if self._session is None or not self._session.connected:
            self._session = DbSession(DbSettings.from_config(self.config, client_name="test"))
            self._session.connection()
        return self._session

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.db().fetch_dicts(sql)

    def add_watcher_error(self, run_id: str, message: str, watcher_id: int = 1) -> None:
        """An executor error of APP1's watcher, as SCHED records one, for what shows and resets it to act on."""
        db = self.db()
        db.execute(
            "INSERT INTO APP1.ADM_WATCHER_EXEC_ERROR (WATCHER_ID, RUN_ID, ERROR_AT, ERROR_MESSAGE) "
            "VALUES ({watcher!d}, {run_id}, CURRENT_TIMESTAMP, {message})",
            {"watcher": watcher_id, "run_id": run_id, "message": message},
        )
        db.commit()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self.trace is not None and self.trace.poll() is None:
            tree = process_tree(self.trace.pid)
            for signum, grace in ((signal.SIGINT, 60), (signal.SIGINT, 30)):  # Ctrl+C, then Ctrl+C again (force)
                self.trace.send_signal(signum)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.trace.wait(timeout=grace)
                    break
            for pid in tree:  # whatever still lives after that must not outlive the test
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.trace.wait()
        self.trace = None

    @property
    def output(self) -> str:
        return self.trace_log.read_text(errors="replace")


def add_job(instance: RunningInstance, schema: str, job_id: int, name: str, **columns: Any) -> None:
    values: dict[str, Any] = {
        "JOB_ID": job_id,
        "JOB_NAME": name,
        "JOB_TYPE": "NOOP",
        "COMMAND": "-",
        "INTERVAL_SECONDS": 1,
        "ACTIVE": True,
        **columns,
    }
    _insert(instance, f"{schema}.ADM_JOBS", values)


def add_watcher(instance: RunningInstance, schema: str, watcher_id: int, name: str, **columns: Any) -> None:
    values: dict[str, Any] = {
        "WATCHER_ID": watcher_id,
        "WATCHER_NAME": name,
        "INTERVAL_SECONDS": 1,
        "ACTIVE": True,
        **columns,
    }
    _insert(instance, f"{schema}.ADM_WATCHER", values)


def _insert(instance: RunningInstance, table: str, values: Mapping[str, Any]) -> None:
    instance.db().execute(insert_statement(table, [dict(values)]))
    instance.db().commit()
