"""A SCHED worker process: reads run requests on stdin, carries them out, writes results on stdout.

One JSON message per line both ways. The first line out is `{"ready": true, "pid": ...}`. The worker ends when its
stdin closes (the master's way to stop it after the current run). SIGINT is ignored: Ctrl+C in `redctl start_trace`
reaches the whole process group, and it is the master that decides what happens to running work.

A worker dies with its master (SIGKILL from the kernel when the master ends, whatever killed it, with or without
systemd): a run whose master is gone can never be logged, so its work must not be committed either.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.logging import setup_logging
from redpss.core.paths import InstancePaths
from redpss.sched.runners import execute
from redpss.sched.runs import FAILED, RunRequest, RunResult

log = logging.getLogger("redpss.sched.worker")

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_master(master_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent ends; exit at once if the parent is already gone.

    The death signal follows the parent *thread* that forked us: the master starts workers from its event-loop
    thread, which lives as long as the master does.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    if os.getppid() != master_pid:  # the master died before the death signal was armed
        raise SystemExit(f"redpss-sched-worker: the SCHED master {master_pid} is gone; not starting")


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="redpss-sched-worker")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--master-pid", type=int, default=os.getppid(), help="the SCHED master to die with")
    args = parser.parse_args(argv)
    die_with_master(args.master_pid)
    paths = InstancePaths.from_env(name=args.instance).require()
    config = load_config(paths.config_file)
    setup_logging("sched", instance=paths.redenv, level=config.redctl.log_level, log_file=paths.log_file("sched"))
    worker = f"{args.pool}-{args.index}[{os.getpid()}]"
    session = DbSession(DbSettings.from_config(config, client_name=f"RED-PSS SCHED {worker}"))
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            try:
                request = RunRequest.from_dict(json.loads(line))
            except ValueError as exc:
                result = RunResult("?", FAILED, f"bad run request: {exc}", worker=worker)
            else:
                result = _execute_guarded(request, session, paths, worker)
            out.write(json.dumps(result.to_dict(), default=str) + "\n")
            out.flush()
    finally:
        session.close()
    return 0


def _execute_guarded(request: RunRequest, session: DbSession, paths: InstancePaths, worker: str) -> RunResult:
    """execute(), and an error nobody foresaw fails the run with its text instead of ending the worker."""
    try:
        return execute(request, session, paths, worker)
    except Exception as exc:
        log.error("run %s failed unexpectedly: %s: %s", request.run_id, type(exc).__name__, exc)
        session.close()  # the session's state is unknown after that
        return RunResult(request.run_id, FAILED, f"unexpected error: {type(exc).__name__}: {exc}", worker=worker)


if __name__ == "__main__":
    raise SystemExit(main())
