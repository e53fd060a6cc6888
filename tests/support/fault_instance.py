"""An instance whose daemons (devdb, SCHED, JMON) run as separate processes, for the fault suite to kill, stop and
starve one at a time while SQL jobs run, and afterwards to reconcile what the jobs wrote with what the run log says.

Every SQL job of the suite inserts one row into APP1.FAULT_ROWS per run; a run logged OK must have left exactly one
row, any other outcome none. `reconcile()` counts both after the instance drained.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.wire import BlockingClient, WireError
from tests.support.daemon_set import MODULES
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, add_job, run_redctl
from tests.support.leaks import process_tree
from tests.support.wait import wait_for

ROWS_TABLE = "APP1.FAULT_ROWS"
INSERT_ONE_ROW = f"INSERT INTO {ROWS_TABLE} (SESSION_ID, WRITTEN_AT) VALUES (CURRENT_SESSION, CURRENT_TIMESTAMP)"


@dataclass(frozen=True)
class Reconciled:
    """What the jobs wrote against what the run log says, once everything drained."""

    ok_runs: int  # runs logged OK (distinct run ids)
    rows: int  # rows the runs inserted
    duplicated_run_ids: int  # run ids logged more than once
    by_marker: int  # runs logged OK by their commit marker: the worker ended between its commit and its report
    statuses: dict[str, int]

    @property
    def lost(self) -> int:
        """Runs logged OK whose row is missing."""
        return max(0, self.ok_runs - self.rows)

    @property
    def unlogged(self) -> int:
        """Rows committed by runs not logged OK (a run logged FAILED or INTERRUPTED whose work was kept)."""
        return max(0, self.rows - self.ok_runs)


class FaultInstance:
    """devdb, SCHED and JMON of one instance as three processes, optionally all under one launcher prefix."""

    def __init__(
        self, paths: InstancePaths, workdir: Path, launcher: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> None:
        self.paths = paths
        self.env = env or {}  # for every daemon, e.g. WATCHDOG_USEC
        self.workdir = workdir
        self.launcher = list(launcher)
        self.inst = RunningInstance(paths, workdir)  # for its database helpers
        self.procs: dict[str, DaemonProcess] = {}
        self.generation = 0

    # -- daemons ---------------------------------------------------------------------------------------------------
    def start(self, name: str, timeout: float = 90.0) -> DaemonProcess:
        self.generation += 1
        daemon = DaemonProcess(
            MODULES[name],
            self.paths,
            self.workdir / f"{name}-{self.generation}",
            env=self.env,
            log_name=name,
            launcher=self.launcher,
        )
        self.procs[name] = daemon
        daemon.wait_ready(timeout)
        return daemon

    def start_all(self) -> None:
        self.start("devdb")
        self.redctl("db_register", "APP1")
        self.inst.db().execute(f"CREATE TABLE {ROWS_TABLE} (SESSION_ID DECIMAL(20,0), WRITTEN_AT TIMESTAMP)")
        self.start("sched")
        self.start("jmon")

    def kill(self, name: str) -> None:
        """SIGKILL, as the kernel's OOM killer or an operator's kill -9 would; the daemon stays dead until start."""
        daemon = self.procs.pop(name)
        if name == "devdb":
            self.inst.close()  # the test's own session dies with it
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGKILL)
        daemon.close()

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def sched_workers(self) -> list[dict[str, Any]]:
        """SCHED's workers as its status reports them (pid, run_id of the run each one carries out, or None)."""
        with self.sched_client() as client:
            reply = client.request("status")
        return [worker for pool in reply["pools"] for worker in pool["workers"]]

    def sched_client(self) -> BlockingClient:
        port = self.inst.config.redctl.sched_service_port
        return BlockingClient(("127.0.0.1", port), instance_secret(self.paths), "fault suite")

    def sched_status(self) -> dict[str, Any] | None:
        """SCHED's status, or None while it does not answer."""
        try:
            with self.sched_client() as client:
                reply: dict[str, Any] = client.request("status")
        except (OSError, WireError):
            return None
        return reply

    def redctl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """redctl, in the daemons' mount namespace when they run under a launcher (their control socket is there)."""
        return run_redctl(self.inst.env(), *args, launcher=self.launcher, check=check, timeout=timeout)

    def close(self) -> None:
        self.inst.close()
        for name in ("jmon", "sched", "devdb"):
            daemon = self.procs.pop(name, None)
            if daemon is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.pid, signal.SIGCONT)  # a test that failed while a daemon was stopped
            tree = process_tree(daemon.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.stop(timeout=60)
            for pid in tree[1:]:  # workers outliving a master that was killed by force
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            daemon.close()

    # -- jobs and reconciliation -----------------------------------------------------------------------------------
    def add_inserting_jobs(self, count: int, interval: int | None = 1) -> list[int]:
        """`count` SQL jobs, each inserting one row per run into FAULT_ROWS (every `interval` s; None: manual)."""
        ids = list(range(101, 101 + count))
        for job_id in ids:
            add_job(
                self.inst,
                "APP1",
                job_id,
                f"INSERT_{job_id}",
                JOB_TYPE="SQL",
                COMMAND=INSERT_ONE_ROW,
                INTERVAL_SECONDS=interval,
                OVERLAP_POLICY="SKIP",
                TIMEOUT_SECONDS=30,
            )
        self.redctl("reload")
        return ids

    def ok_runs(self) -> int:
        rows = self.inst.rows("SELECT COUNT(*) AS N FROM APP1.ADM_JOB_LOG WHERE STATUS = 'OK' AND JOB_ID > 100")
        return int(rows[0]["N"])

    def rows_written(self) -> int:
        return int(self.inst.rows(f"SELECT COUNT(*) AS N FROM {ROWS_TABLE}")[0]["N"])

    def wait_committing(self, what: str, timeout: float = 90) -> None:
        """Wait until runs commit again (the instance recovered from the last fault)."""
        before = self.rows_written()
        wait_for(lambda: self.rows_written() > before, timeout, interval=0.1, what=what)

    def stop_jobs(self) -> None:
        """No new runs: deactivate the jobs and let JMON see it."""
        self.inst.db().execute("UPDATE APP1.ADM_JOBS SET ACTIVE = FALSE WHERE JOB_ID > 100")
        self.inst.db().commit()
        self.redctl("reload")

    def drained(self) -> bool:
        """SCHED runs nothing, queues nothing, has every log row in the database and no run left to settle."""
        status = self.sched_status()
        if status is None:
            return False
        busy = sum(int(pool["busy"]) + int(pool["queued"]) for pool in status["pools"])
        in_flight = list(self.seen_by("sched", self.paths.tmp / "sched-running").glob("*.run"))
        return busy == 0 and not status["retries_waiting"] and status["runlog_backlog"] == 0 and not in_flight

    def seen_by(self, name: str, path: Path) -> Path:
        """`path` as daemon `name` sees it (under a launcher, tmp/ may be a tmpfs of its mount namespace)."""
        return Path(f"/proc/{self.pid(name)}/root") / path.relative_to("/")

    def reconcile(self) -> Reconciled:
        wait_for(self.drained, 120, interval=0.2, what="SCHED drained: nothing running, queued or unlogged")
        log = self.inst.rows(
            "SELECT RUN_ID, STATUS, MESSAGE FROM APP1.ADM_JOB_LOG WHERE JOB_ID > 100 AND STATUS <> 'SKIPPED'"
        )
        ids = [str(row["RUN_ID"]) for row in log]
        statuses: dict[str, int] = {}
        for row in log:
            statuses[str(row["STATUS"])] = statuses.get(str(row["STATUS"]), 0) + 1
        return Reconciled(
            ok_runs=len({str(row["RUN_ID"]) for row in log if row["STATUS"] == "OK"}),  # a duplicate is not a run
            rows=self.rows_written(),
            duplicated_run_ids=len(ids) - len(set(ids)),
            by_marker=sum(1 for row in log if str(row["MESSAGE"] or "").startswith("committed; the worker ended")),
            statuses=statuses,
        )
