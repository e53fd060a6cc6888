"""The demo's database side: a SQL job that logs through REDSYS.PSS_LOG, an ACTION job that runs a sample cmd/
script through JEXEC, PSS_EXEC called from SQL, and where each one's output is to be found.

The scripts and the CONNECTION objects they read were created by `redctl db_register` (db_install).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redpss.core.db import DbSession
from redpss.core.paths import InstancePaths

SCHEMA = "DEMO"
LOG_JOB = (6, "LOG_SAMPLE")
ACTION_JOB = (7, "HELLO_ACTION")
SAMPLE_SCRIPT = "demo/hello.sh"
SAMPLE_SCRIPT_TEXT = '#!/bin/sh\necho "hello $1 from $REDENV (run $REDPSS_RUN_ID)"\necho "a line on stderr" >&2\n'
LOG_TEXT = "sample job LOG_SAMPLE: order 17 has no customer"
SHOWN_LINES = 3
WAIT_SECONDS = 30.0  # how long the summary waits for a first run of each job (the database rows come after)


def _first(rows: Callable[[], list[Any]]) -> list[Any]:
    """The rows once there are any, or none after WAIT_SECONDS: the demo's jobs may still be on their first run."""
    deadline = time.monotonic() + WAIT_SECONDS
    found = rows()
    while not found and time.monotonic() < deadline:
        time.sleep(0.5)  # the demo's pacing while a first run ends
        found = rows()
    return found


def define(session: DbSession, paths: InstancePaths) -> None:
    """The sample cmd/ script, and the two jobs: LOG_SAMPLE (SQL calling PSS_LOG) and HELLO_ACTION (ACTION)."""
    script = paths.cmd / SAMPLE_SCRIPT
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SAMPLE_SCRIPT_TEXT)
    script.chmod(0o750)  # JEXEC runs only executables of its user that no one else may change
    log_call = f"SELECT REDSYS.PSS_LOG('{SCHEMA}', 'ERROR', '{LOG_TEXT}')"
    jobs = (
        (LOG_JOB, "DEFAULT", "SQL", log_call.replace("'", "''"), 4),
        (ACTION_JOB, "ACTION", "ACTION", f"{SAMPLE_SCRIPT} world", 5),
    )
    for (job_id, name), pool, job_type, command, interval in jobs:
        session.execute(
            f"INSERT INTO {SCHEMA}.ADM_JOBS (JOB_ID, JOB_NAME, POOL, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE) "  # noqa: S608 - constants
            f"VALUES ({job_id}, '{name}', '{pool}', '{job_type}', '{command}', {interval}, TRUE)"
        )


def show(paths: InstancePaths, session: DbSession) -> None:
    """What PSS_LOG and the ACTION job left behind, and PSS_EXEC called from SQL."""
    rows = _first(  # an ERROR line reaches LOG_MESSAGES after DBLS acknowledged it (so after its file)
        lambda: session.fetchall(
            f"SELECT LOG_LEVEL, MESSAGE FROM REDSYS.ALL_LOG_MESSAGES WHERE SCHEMA_NAME = '{SCHEMA}'"  # noqa: S608
        )
    )
    files = sorted(p for p in (paths.log_db / SCHEMA).glob(f"{SCHEMA}-*.log") if not p.is_symlink())
    print(f"== PSS_LOG: job {LOG_JOB[1]} runs `SELECT REDSYS.PSS_LOG(...)`; DBLS writes {paths.log_db / SCHEMA}/:")
    lines = [line for f in files for line in f.read_text(errors="replace").splitlines()]
    for line in lines[-SHOWN_LINES:]:
        print(f"   {line}")
    print(f"   ERROR lines in REDSYS.ALL_LOG_MESSAGES: {len(rows)}")
    print(f"== ACTION job {ACTION_JOB[1]} runs cmd/{SAMPLE_SCRIPT} through JEXEC; its latest run:")
    runs = _first(
        lambda: session.fetchall(
            f"SELECT RUN_ID, STATUS, MESSAGE FROM {SCHEMA}.ADM_JOB_LOG WHERE JOB_ID = {ACTION_JOB[0]} "  # noqa: S608
            "AND STATUS <> 'SKIPPED' ORDER BY STARTED_AT DESC LIMIT 1"
        )
    )
    for run_id, status, message in runs:
        print(f"   {status}: {message}".replace("\n", "\n   "))
        print(f"   run file: {paths.log / 'JEXEC' / f'{run_id}.log'}")
    result = session.fetchall(f"SELECT REDSYS.PSS_EXEC('{SAMPLE_SCRIPT}', 'SQL')")[0][0]
    print(f"== SELECT REDSYS.PSS_EXEC('{SAMPLE_SCRIPT}', 'SQL') returned:")
    print("   " + str(result).replace("\n", "\n   "))
