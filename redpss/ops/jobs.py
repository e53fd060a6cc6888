"""Jobs and watchers: list, detail, toggle, start now, and the executor errors of watchers (list, reset).

Every function takes an Instance and returns rows (dicts keyed by the database's column names) or an outcome
record; callers format them. Unknown ids raise keys.UnknownObject, malformed ones UsageError, a JMON that is not
running NotRunning.
"""

from __future__ import annotations

from redpss.core.record import Record
from redpss.ops.instance import Declined, NotRunning, OutcomeUnknown
from redpss.ops.keys import resolve

# how long a start may take: JMON waits up to jmon.service.SUBMIT_TIMEOUT (30 s) for SCHED's answer, and a caller
# that gave up before JMON did would be told of a failure for a start that happened
START_TIMEOUT = 45.0

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.core.db import DbSession
    from redpss.ops.instance import Instance

Row = dict[str, "Any"]

JOB_LIST = (
    "SELECT SCHEMA_NAME, JOB_ID, JOB_NAME, POOL, JOB_TYPE, ACTIVE, INTERVAL_SECONDS, CRON_EXPR, TIMEOUT_SECONDS, "
    "OVERLAP_POLICY, MISSED_POLICY FROM REDSYS.ALL_ADM_JOBS ORDER BY SCHEMA_NAME, JOB_ID"
)
WATCHER_LIST = (
    "SELECT SCHEMA_NAME, WATCHER_ID, WATCHER_NAME, CONDITION_TYPE, TARGET_JOB_ID, ACTIVE, INTERVAL_SECONDS, "
    "CRON_EXPR FROM REDSYS.ALL_ADM_WATCHER ORDER BY SCHEMA_NAME, WATCHER_ID"
)
ERROR_LIST = (
    "SELECT e.SCHEMA_NAME, e.WATCHER_ID, w.WATCHER_NAME, e.ERROR_AT, e.RUN_ID, e.ERROR_MESSAGE "
    "FROM REDSYS.ALL_ADM_WATCHER_EXEC_ERROR e LEFT JOIN REDSYS.ALL_ADM_WATCHER w "
    "ON w.SCHEMA_NAME = e.SCHEMA_NAME AND w.WATCHER_ID = e.WATCHER_ID "
    "WHERE e.RESET_AT IS NULL ORDER BY e.ERROR_AT"
)
# kind -> (view, table in the application schema, id column)
TABLES = {
    "JOB": ("REDSYS.ALL_ADM_JOBS", "ADM_JOBS", "JOB_ID"),
    "WATCHER": ("REDSYS.ALL_ADM_WATCHER", "ADM_WATCHER", "WATCHER_ID"),
}


class Toggled(Record):
    kind: str  # JOB or WATCHER
    schema: str
    id: int
    name: str
    active: bool
    note: str  # "" or why JMON applies it only at its next start


class Started(Record):
    schema: str
    id: int
    name: str
    run_id: str | None
    state: str  # what SCHED said: submitted, queued, ...
    forced: bool  # started with force while the instance is suspended


class ErrorsReset(Record):
    watchers: tuple[tuple[str, int], ...]  # (schema, id) of every watcher whose error was reset
    note: str


def fetch(instance: Instance, sql: str, params: Row | None = None) -> list[Row]:
    """The rows of one query on a session of its own."""
    session = instance.db()
    try:
        return session.fetch_dicts(sql, params) if params else session.fetch_dicts(sql)
    finally:
        session.close()


def list_jobs(instance: Instance) -> list[Row]:
    return fetch(instance, JOB_LIST)


def list_watchers(instance: Instance) -> list[Row]:
    return fetch(instance, WATCHER_LIST)


def list_errors(instance: Instance) -> list[Row]:
    """The executor errors not reset yet, oldest first (a watcher with one does not run until reset)."""
    return fetch(instance, ERROR_LIST)


def detail(instance: Instance, kind: str, text: str) -> Row:
    """Every column of one job or watcher (`text`: SCHEMA.ID or ID)."""
    session = instance.db()
    try:
        schema, id_, _ = resolve(session, kind, text)
        view, _table, column = TABLES[kind]
        rows = session.fetch_dicts(
            f"SELECT * FROM {view} WHERE SCHEMA_NAME = {{schema}} AND {column} = {{id!d}}",  # noqa: S608 - constants
            {"schema": schema, "id": id_},
        )
    finally:
        session.close()
    return rows[0]


def toggle(instance: Instance, kind: str, text: str, active: bool | None = None) -> Toggled:
    """Set ACTIVE of a job or watcher to `active` (None: flip it, as redctl's toggle commands do) and have a running
    JMON read its definitions at once. A client that knows the state it wants sends it: sent twice (a double click,
    a page shown before someone else's change, a retry), a flip would undo itself."""
    session = instance.db()
    try:
        schema, id_, name = resolve(session, kind, text)
        _view, table, column = TABLES[kind]
        new_state = "NOT ACTIVE" if active is None else "TRUE" if active else "FALSE"
        session.execute(
            f"UPDATE {schema}.{table} SET ACTIVE = {new_state}, CHANGED_AT = CURRENT_TIMESTAMP "  # noqa: S608
            f"WHERE {column} = {{id!d}}",
            {"id": id_},
        )
        now = session.fetchall(f"SELECT ACTIVE FROM {schema}.{table} WHERE {column} = {{id!d}}", {"id": id_})  # noqa: S608
        session.commit()
    finally:
        session.close()
    note = instance.tell_jmon("poll")
    return Toggled(kind, schema, id_, name, bool(now and now[0][0]), note)


def start(instance: Instance, text: str, *, by: str, force: bool = False, scheduled_only: bool = False) -> Started:
    """Start a job now (JMON hands it to SCHED); `scheduled_only`: only a job JMON already schedules (start_job)."""
    session = instance.db()
    try:
        schema, id_, name = resolve(session, "JOB", text)
    finally:
        session.close()
    op = "start_job" if scheduled_only else "start_db_job"
    from redpss.core.wire import Code, WireError  # noqa: PLC0415 - loaded by instance.jmon() already

    with instance.connect("jmon", START_TIMEOUT) as jmon:
        try:
            reply = jmon.request(op, kind="JOB", schema=schema, id=id_, force=force, by=by)
        except WireError as exc:
            if exc.code == Code.REFUSED:  # JMON said no, and why
                raise Declined(str(exc)) from None
            if exc.code == Code.UNAVAILABLE:  # SCHED away or stalled: nothing was started
                raise NotRunning(f"job {schema}.{id_} was not started: {exc}") from None
            if isinstance(exc.__cause__, TimeoutError):
                raise OutcomeUnknown(
                    f"JMON did not answer within {START_TIMEOUT:.0f} s: job {schema}.{id_} may have been started; "
                    "look at its runs before starting it again"
                ) from None
            raise
    run_id = reply.get("run_id")
    return Started(
        schema,
        id_,
        name,
        None if run_id is None else str(run_id),
        str(reply.get("state", "submitted")),
        bool(force and reply.get("suspended")),
    )


def _unreset(session: DbSession) -> list[tuple[str, int]]:
    return [
        (str(r[0]), int(r[1]))
        for r in session.fetchall(
            "SELECT DISTINCT SCHEMA_NAME, WATCHER_ID FROM REDSYS.ALL_ADM_WATCHER_EXEC_ERROR WHERE RESET_AT IS NULL"
        )
    ]


def reset_errors(instance: Instance, watcher: str | None, *, by: str) -> ErrorsReset:
    """Reset the executor error of one watcher (`watcher`: SCHEMA.ID or ID) or, with None, of every watcher."""
    session = instance.db()
    try:
        if watcher is None:
            targets = _unreset(session)
        else:
            schema, id_, _ = resolve(session, "WATCHER", watcher)
            targets = [(schema, id_)]
        for schema, id_ in targets:
            session.execute(
                f"UPDATE {schema}.ADM_WATCHER_EXEC_ERROR SET RESET_AT = CURRENT_TIMESTAMP, RESET_BY = {{user}} "  # noqa: S608
                "WHERE WATCHER_ID = {id!d} AND RESET_AT IS NULL",
                {"user": by, "id": id_},
            )
        session.commit()
    finally:
        session.close()
    return ErrorsReset(tuple(targets), instance.tell_jmon("we_reset"))
