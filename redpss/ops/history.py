"""What happened: runs of jobs, the database's log messages and JMON's load statistics, filtered and paged.

Filters arrive validated (Python values); they reach SQL only as bound parameters of pyexasol's formatting, names
and columns are constants here.
"""

from __future__ import annotations

from redpss.core.record import Record
from redpss.ops.jobs import Row, fetch

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    import datetime as dt

    from redpss.ops.instance import Instance

MAX_PAGE = 1000  # rows in one page at most


class Page(Record):
    limit: int = 100
    offset: int = 0


class RunFilter(Record):
    schema: str | None = None
    job_id: int | None = None
    status: str | None = None
    since: dt.datetime | None = None  # STARTED_AT at or after
    until: dt.datetime | None = None  # STARTED_AT before


class LogFilter(Record):
    schema: str | None = None
    level: str | None = None
    job_id: int | None = None
    run_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def _stamp(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _select(columns: str, source: str, conditions: list[str], order: str) -> str:
    """SELECT of constant columns from a constant source; the conditions hold only bound parameters."""
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {columns} FROM {source}{where} ORDER BY {order}"  # noqa: S608 - constants, values bound


def _time_window(column: str, since: dt.datetime | None, until: dt.datetime | None, params: Row) -> list[str]:
    conditions = []
    if since is not None:
        params["since"] = _stamp(since)
        conditions.append(f"{column} >= CAST({{since}} AS TIMESTAMP)")
    if until is not None:
        params["until"] = _stamp(until)
        conditions.append(f"{column} < CAST({{until}} AS TIMESTAMP)")
    return conditions


def _paged(sql: str, page: Page, params: Row) -> str:
    params["limit"] = min(max(page.limit, 1), MAX_PAGE)
    params["offset"] = max(page.offset, 0)
    return f"{sql} LIMIT {{limit!d}} OFFSET {{offset!d}}"


def runs(instance: Instance, where: RunFilter, page: Page) -> list[Row]:
    """Runs of jobs (REDSYS.ALL_ADM_JOB_LOG), newest start first."""
    params: Row = {}
    conditions = []
    if where.schema is not None:
        params["schema"] = where.schema.upper()
        conditions.append("SCHEMA_NAME = {schema}")
    if where.job_id is not None:
        params["job_id"] = where.job_id
        conditions.append("JOB_ID = {job_id!d}")
    if where.status is not None:
        params["status"] = where.status.upper()
        conditions.append("STATUS = {status}")
    conditions += _time_window("STARTED_AT", where.since, where.until, params)
    sql = _select(
        "SCHEMA_NAME, RUN_ID, ATTEMPT, JOB_ID, JOB_NAME, POOL, RUN_TRIGGER, SCHEDULED_AT, STARTED_AT, ENDED_AT, "
        "STATUS, SKIP_REASON, MESSAGE, WORKER",
        "REDSYS.ALL_ADM_JOB_LOG",
        conditions,
        "STARTED_AT DESC NULLS LAST, SCHEDULED_AT DESC, RUN_ID",
    )
    return fetch(instance, _paged(sql, page, params), params)


def failures_ended_since(instance: Instance, since: dt.datetime, limit: int) -> list[Row]:
    """Runs that ended FAILED or TIMEOUT at or after `since` (by their end: a timeout began a whole timeout before
    it ended), newest end first; the outcomes SCHED mails a job's owner about."""
    params: Row = {"since": _stamp(since), "limit": min(max(limit, 1), MAX_PAGE)}
    sql = _select(
        "SCHEMA_NAME, RUN_ID, JOB_ID, JOB_NAME, STARTED_AT, ENDED_AT, STATUS, MESSAGE",
        "REDSYS.ALL_ADM_JOB_LOG",
        ["STATUS IN ('FAILED', 'TIMEOUT')", "COALESCE(ENDED_AT, STARTED_AT) >= CAST({since} AS TIMESTAMP)"],
        "COALESCE(ENDED_AT, STARTED_AT) DESC, RUN_ID",
    )
    return fetch(instance, f"{sql} LIMIT {{limit!d}}", params)


def log_messages(instance: Instance, where: LogFilter, page: Page) -> list[Row]:
    """The database's ERROR and ALERT messages (REDSYS.ALL_LOG_MESSAGES), newest first."""
    params: Row = {}
    conditions = []
    if where.schema is not None:
        params["schema"] = where.schema.upper()
        conditions.append("SCHEMA_NAME = {schema}")
    if where.level is not None:
        params["level"] = where.level.upper()
        conditions.append("LOG_LEVEL = {level}")
    if where.job_id is not None:
        params["job_id"] = where.job_id
        conditions.append("JOB_ID = {job_id!d}")
    if where.run_id is not None:
        params["run_id"] = where.run_id
        conditions.append("RUN_ID = {run_id}")
    conditions += _time_window("LOG_TIME", where.since, where.until, params)
    sql = _select(
        'SCHEMA_NAME, LOG_TIME, LOG_LEVEL, "SOURCE", JOB_ID, RUN_ID, MESSAGE',
        "REDSYS.ALL_LOG_MESSAGES",
        conditions,
        # rows of one time (a batch) in a fixed order: else pages of OFFSET may repeat or skip some of them
        'LOG_TIME DESC, SCHEMA_NAME, MESSAGE_KEY, RUN_ID, JOB_ID, LOG_LEVEL, "SOURCE"',
    )
    return fetch(instance, _paged(sql, page, params), params)


def load_series(
    instance: Instance, pool: str | None, since: dt.datetime | None, until: dt.datetime | None, page: Page
) -> list[Row]:
    """JMON's load statistics (REDSYS.ADM_JMON_LOAD): per pool size, busy, queued, runs and lateness, oldest first."""
    params: Row = {}
    conditions = []
    if pool is not None:
        params["pool"] = pool.upper()
        conditions.append("POOL = {pool}")
    conditions += _time_window("LOG_TIME", since, until, params)
    sql = _select(
        "LOG_TIME, POOL, POOL_SIZE, BUSY, QUEUED, RUNS_STARTED, RUNS_SKIPPED, LATENESS_P50_MS, LATENESS_MAX_MS, "
        "LAST_POLL_OK, SUSPENDED",
        "REDSYS.ADM_JMON_LOAD",
        conditions,
        "LOG_TIME, POOL",
    )
    return fetch(instance, _paged(sql, page, params), params)


def runs_by_status(instance: Instance) -> list[Row]:
    """How many runs the run logs hold per status (for /metrics)."""
    return fetch(instance, "SELECT STATUS, COUNT(*) AS RUNS FROM REDSYS.ALL_ADM_JOB_LOG GROUP BY STATUS ORDER BY 1")


def lateness_values(instance: Instance, since: dt.datetime) -> list[float]:
    """Dispatch lateness (ms) of the runs JMON recorded since `since` (for the lateness histogram)."""
    params: Row = {"since": _stamp(since)}
    rows = fetch(
        instance,
        "SELECT LATENESS_MS FROM REDSYS.ADM_JMON_JOBLOG "
        "WHERE LOG_TIME >= CAST({since} AS TIMESTAMP) AND LATENESS_MS IS NOT NULL",
        params,
    )
    return [float(r["LATENESS_MS"]) for r in rows]
