"""One LOAD run (or FILE watcher check) in a process of its own, as a SCHED worker carries it out
(runners.execute), printing the run's outcome as JSON. Tests start it without root's file-access override to see
what the redsys user would."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.paths import InstancePaths
from redpss.sched.runners import execute
from redpss.sched.runs import RunRequest


def load_request(command: str) -> RunRequest:
    """The request of a run of the tests' LOAD job (LOADS.LOAD_ORDERS, id 7) with `command`."""
    return _request("JOB", "LOAD_ORDERS", command, pool="LOADER", job_type="LOAD")


def file_watcher_request(pattern: str) -> RunRequest:
    """The request of a check of a FILE watcher (LOADS.CSVSRV, id 7) on `pattern`."""
    return _request("WATCHER", "CSVSRV", pattern, pool="DEFAULT", condition_type="FILE")


def _request(
    kind: str, name: str, command: str, *, pool: str, job_type: str = "", condition_type: str = ""
) -> RunRequest:
    return RunRequest(
        run_id=f"{kind.lower()}-{time.monotonic_ns()}",
        kind=kind,
        schema="LOADS",
        id=7,
        name=name,
        pool=pool,
        job_type=job_type,
        condition_type=condition_type,
        command=command,
        timeout=60,
    )


def main(redhome: str, redenv: str, dsn: str, command: str, kind: str = "LOAD") -> None:
    paths = InstancePaths.for_instance(redenv, Path(redhome))
    session = DbSession(DbSettings(dsn=dsn, user="sys", password=Secret("exasol"), encryption=False))
    request = load_request(command) if kind == "LOAD" else file_watcher_request(command)
    try:
        result = execute(request, session, paths, "LOADER-0")
    finally:
        session.close()
    print(json.dumps({"status": result.status, "message": result.message, "extra": result.extra}))


if __name__ == "__main__":
    main(*sys.argv[1:])
