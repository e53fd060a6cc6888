"""SIGSTOP/SIGCONT of each daemon for longer than its watchdog and than the timeout of the clients waiting on it,
while SQL jobs run: on SIGCONT the instance recovers by itself (outside systemd nothing restarts a daemon; the
watchdog restart under systemd is tests/system's part): the daemon pings its watchdog again, its clients
reconnect, runs go on, and nothing is lost (rows reconciled with the run log as in the kill -9 suite).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.cli.redctl.clients import CONNECT_TIMEOUT
from redpss.core.db.settings import DbSettings
from redpss.core.paths import InstancePaths
from redpss.jmon.service import SUBMIT_TIMEOUT  # what JMON waits for SCHED's answer to a submit
from tests.support.fault_instance import FaultInstance
from tests.support.instance_runner import instance_config

pytestmark = pytest.mark.slow

WATCHDOG_SECONDS = 4  # WATCHDOG_USEC given to every daemon, as systemd's WatchdogSec= would
# (pyexasol's socket timeout: what a worker, JMON and SCHED's run log wait for the database)
DB_SOCKET_TIMEOUT = float(next(f.default for f in dataclasses.fields(DbSettings) if f.name == "socket_timeout"))  # type: ignore[arg-type]
STOPPED_SECONDS = {
    "jmon": max(WATCHDOG_SECONDS, CONNECT_TIMEOUT) + 2,  # redctl gives up after CONNECT_TIMEOUT (see below)
    "sched": SUBMIT_TIMEOUT + 2,
    "devdb": DB_SOCKET_TIMEOUT + 2,
}
# SCHED and devdb are stopped at the same time: both need half a minute, and each still faces its own clients'
# timeout (JMON's submits to SCHED; the workers', JMON's and the run log's sessions to devdb).
PHASES = (("jmon",), ("sched", "devdb"))


def redctl_gave_up(watched: FaultInstance) -> None:
    """`redctl show` against the stopped JMON ends by itself, non-zero, with a message and no traceback."""
    shown = watched.redctl("show", check=False, timeout=CONNECT_TIMEOUT * 3)
    assert shown.returncode != 0, shown.stdout
    assert shown.stderr.strip() and "Traceback" not in shown.stderr, shown.stderr


@pytest.fixture
def watched(instance: InstancePaths, tmp_path: Path) -> Iterator[FaultInstance]:
    instance.config_file.write_text(instance_config())
    running = FaultInstance(instance, tmp_path, env={"WATCHDOG_USEC": str(WATCHDOG_SECONDS * 1_000_000)})
    try:
        running.start_all()
        yield running
    finally:
        running.close()


def test_each_daemon_stopped_beyond_its_watchdog_and_client_timeouts_recovers_by_itself(
    watched: FaultInstance, figures: list[str]
) -> None:
    watched.add_inserting_jobs(2)
    for names in PHASES:
        watched.wait_committing(f"runs committing before {' and '.join(names)} stopped")
        daemons = [watched.procs[name] for name in names]
        for daemon in daemons:
            daemon.notify.drain()
            os.kill(daemon.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            if "jmon" in names:  # its client, redctl, gives up with a clear error while JMON is stopped
                redctl_gave_up(watched)
            stopped_for = max(STOPPED_SECONDS[name] for name in names)
            time.sleep(max(0.0, stopped_for - (time.monotonic() - stopped_at)))  # fault schedule: beyond the timeouts
        finally:
            for daemon in reversed(daemons):
                os.kill(daemon.pid, signal.SIGCONT)
        for name, daemon in zip(names, daemons, strict=True):
            pings = daemon.notify.count("WATCHDOG", "1")
            daemon.notify.wait_for("WATCHDOG", "1", timeout=30, nth=pings + 1)  # healthy again
            assert daemon.process.poll() is None, f"{name} ended after SIGCONT"
        watched.wait_committing(f"runs committing again after {' and '.join(names)} continued")
    watched.stop_jobs()
    result = watched.reconcile()
    line = (
        f"SIGSTOP/SIGCONT ({', '.join(f'{n} {s:.0f} s' for n, s in STOPPED_SECONDS.items())}): recovered 3 of 3; "
        f"rows reconciled {result.rows} of {result.ok_runs} OK runs; lost {result.lost}; "
        f"duplicated {result.duplicated_run_ids + result.unlogged}; statuses {dict(sorted(result.statuses.items()))}"
    )
    print(line)
    figures.append(line)
    assert result.ok_runs > 0
    assert (result.lost, result.unlogged, result.duplicated_run_ids) == (0, 0, 0), line
    for name in ("sched", "jmon", "devdb"):
        assert "Traceback" not in watched.procs[name].log, f"{name} logged a traceback"
