"""How a worker carries out one run: the job types and the watcher conditions.

LOAD and ACTION jobs are carried out by handlers registered in HANDLERS (sched.load, JEXEC's client). A handler
returns the run's message, or an Outcome when the run's log row carries more (a LOAD job's ROWS_LOADED); an exception
it raises fails the run, and one with an `extra` dict still hands those fields to the log row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from redpss.core.db import DatabaseError, DatabaseQueryError, DatabaseUnavailable, DbSession
from redpss.core.db import errors as db_errors
from redpss.core.errors import TimedOut
from redpss.core.paths import InstancePaths
from redpss.sched.commit import UNKNOWN, CommitUnknown, run_sql_job
from redpss.sched.runs import FAILED, OK, TIMEOUT, RunRequest, RunResult

log = logging.getLogger("redpss.sched.runners")


class Outcome(NamedTuple):
    """A handler's success: the run's message and fields for its result's `extra` (e.g. rows_loaded)."""

    message: str
    extra: dict[str, Any]


Handler = Callable[[RunRequest, DbSession, InstancePaths], str | Outcome]
# job type -> handler returning the success message; raises on failure
HANDLERS: dict[str, Handler] = {}


def _run_action(request: RunRequest, session: DbSession, paths: InstancePaths) -> str:
    """ACTION jobs run through JEXEC; its client is imported here, so other job types never load it."""
    from redpss.jexec.client import run_action  # noqa: PLC0415

    return run_action(paths, request.command, run_id=request.run_id, job_id=request.id, timeout=request.timeout)


HANDLERS["ACTION"] = _run_action


def _run_load(request: RunRequest, session: DbSession, paths: InstancePaths) -> Outcome:
    """LOAD jobs (CSVSRV's loads) import files through CFISRV; see sched.load."""
    from redpss.sched.load import load_files, parse_command  # noqa: PLC0415 - only LOAD workers load it

    command = parse_command(request.command)  # a bad COMMAND fails before the database is asked anything
    _set_timeout(session, request.timeout)
    report = load_files(request, command, session, paths)
    return Outcome(report.message, {"rows_loaded": report.rows})


HANDLERS["LOAD"] = _run_load


def _run_sendfile(request: RunRequest, session: DbSession, paths: InstancePaths) -> str:
    """SENDFILE jobs: COMMAND is a SENDFILE request as JSON; the run waits for the delivery (docs/sendfile.md)."""
    from redpss.sendfile.client import RUN_KEY_PREFIX, job_request, send_file  # noqa: PLC0415 - SENDFILE runs only

    fields = job_request(request.command, request.schema)  # a bad COMMAND fails before SENDFILE is asked
    # a retry keeps the run's id: SENDFILE answers it with the first request's outcome or waits for that request,
    # which may still be spooled (a stop cut the first answer off), instead of delivering the file a second time.
    # Always the run's: a key in the COMMAND would be every run's, and later runs would deliver nothing.
    fields["key"] = f"{RUN_KEY_PREFIX}{request.run_id}"
    return str(send_file(paths, fields, timeout=request.timeout)["message"])


HANDLERS["SENDFILE"] = _run_sendfile


def execute(request: RunRequest, session: DbSession, paths: InstancePaths, worker: str) -> RunResult:
    """Carry out `request`; every outcome, failures included, is a RunResult with a readable message."""
    started = time.time()

    def result(status: str, message: str, **kw: object) -> RunResult:
        return RunResult(request.run_id, status, message, started, time.time(), worker, **kw)  # type: ignore[arg-type]

    if request.kind == "WATCHER":
        # an executor error blocks the watcher until an operator resets it: only for a condition that cannot be
        # evaluated as written (a bad glob, SQL the database refuses), never for a database that cannot answer now
        # (away, the query timed out or was aborted): the next tick asks again, as after any failed run
        try:
            met, note = _condition_holds(request, session, paths)
        except (DatabaseError, OSError, ValueError) as exc:
            query = exc if isinstance(exc, DatabaseQueryError) else None
            now_only = isinstance(exc, DatabaseUnavailable) or (query is not None and query.passing)
            return result(TIMEOUT if query and query.timeout else FAILED, str(exc), exec_error=not now_only)
        return result(OK, ("condition holds" if met else "condition does not hold") + note, condition_met=met)
    try:
        outcome = _run_job(request, session, paths)
    except (DatabaseQueryError, TimedOut) as exc:  # TimedOut: a handler's work ended at the run's timeout (JEXEC)
        timed_out = isinstance(exc, TimedOut) or (isinstance(exc, DatabaseQueryError) and exc.timeout)
        return result(TIMEOUT if timed_out else FAILED, _failure(exc), extra=_partial_extra(exc))
    except (DatabaseError, OSError, ValueError, LookupError) as exc:
        # a SQL job that lost its connection during COMMIT may have committed: SCHED asks its commit marker
        extra = {**_partial_extra(exc), **({"commit": UNKNOWN} if isinstance(exc, CommitUnknown) else {})}
        return result(FAILED, _failure(exc), extra=extra)
    if not isinstance(outcome, Outcome):
        outcome = Outcome(outcome, {})
    return result(OK, outcome.message, extra=outcome.extra)


def _failure(exc: BaseException) -> str:
    """The run's message: the error, and what the handler had done before it (runs.note_partial)."""
    done = getattr(exc, "partial_done", "")
    return f"{exc}; before that: {done}" if done else str(exc)


def _partial_extra(exc: BaseException) -> dict[str, object]:
    return dict(getattr(exc, "extra", None) or {})


def _run_job(request: RunRequest, session: DbSession, paths: InstancePaths) -> str | Outcome:
    if request.job_type == "NOOP":
        return "no-op"
    if request.job_type == "SQL":
        _set_timeout(session, request.timeout)
        rows = run_sql_job(session, request.run_id, request.command)  # with its commit marker, see sched.commit
        return f"{rows} row(s)"
    handler = HANDLERS.get(request.job_type)
    if handler is None:
        part = {"ACTION": "JEXEC"}.get(request.job_type, "a handler")
        raise LookupError(f"job type {request.job_type} needs {part}, which this RED-PSS version does not provide yet")
    return handler(request, session, paths)


def _condition_holds(request: RunRequest, session: DbSession, paths: InstancePaths) -> tuple[bool, str]:
    """Whether the watcher's condition holds, and a note for its MESSAGE: for a FILE condition that does not,
    the folders on its glob's way the instance user may not list or enter (files there can never count)."""
    if request.condition_type == "QUERY":
        _set_timeout(session, request.timeout)
        return bool(session.execute(request.command).fetchmany(1)), ""
    pattern = request.command.strip()
    if not pattern or pattern.startswith("/") or ".." in Path(pattern).parts:
        raise ValueError(f"file condition {pattern!r} must be a glob relative to data/input, e.g. orders/*.csv")
    # a file still being written does not count (core.filestable: the rule JSON2CSV and PARQ2CSV follow too)
    from redpss.core.config import load_config  # noqa: PLC0415 - FILE watchers only
    from redpss.core.filestable import finished, is_stable_file, regular_file_state  # noqa: PLC0415
    from redpss.redftp.inputs import folders_a_glob_cannot_search, not_searched, reachable_below_data  # noqa: PLC0415
    from redpss.sched.load import taken_aside  # noqa: PLC0415

    interval = load_config(paths.config_file).redctl.ingest_stable_seconds
    now = time.time()
    # a file LOAD would not take (reached through a link leading out of the data tree) does not count either, or
    # the watcher would start a LOAD that loads nothing at every check
    if any(
        is_stable_file(path, interval, now) and reachable_below_data(paths.data, path)
        for path in paths.data_input.glob(pattern)
    ):
        return True, ""
    for path in taken_aside(paths.data_input, pattern):  # left by a LOAD run that could not finish: still to load
        state = regular_file_state(path)
        if state is not None and finished(path, state, interval, now) and reachable_below_data(paths.data, path):
            return True, ""
    problems = folders_a_glob_cannot_search(paths.data_input, pattern)
    return False, ("; " + not_searched(problems)) if problems else ""


def _set_timeout(session: DbSession, timeout: float) -> None:
    """The database ends a statement that runs longer than the run's timeout (ExaQueryTimeoutError -> TIMEOUT).

    This is a run's first request to the database: a session lost while the worker was idle is found here, before
    anything of the run was done, so it is reopened once and the run goes on.
    """
    for attempt in (1, 2):
        connection = session.connection()
        try:
            connection.set_query_timeout(max(1, int(timeout)))
            return
        except Exception as exc:
            error = db_errors.map_exa_error(exc, dsn=session.settings.dsn, user=session.settings.user)
            session.close()  # whatever happened, the next request starts on a fresh session
            if attempt == 2 or not isinstance(error, db_errors.DatabaseUnavailable):
                raise error from exc
            log.info("database session lost while idle (%s); reconnecting before the run", error)
