"""Retention of the logs RED-PSS keeps in the database: rows older than log_retention days are deleted.

The run logs, watcher logs and errors and LOG_MESSAGES of every registered schema, and JMON's statistics in REDSYS,
grow by thousands of rows a day. JMON runs `purge_expired_rows` once a day (`DbLogRetention`), in batches of at most
`batch` rows, each committed on its own: a long purge never holds one huge transaction, and a stop between batches
loses nothing. Rows that still mean something are kept whatever their age: a RUNNING run, a watcher error not yet
reset (it blocks its watcher until `redctl we_reset_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redpss.core.db.contract import REDSYS, registered_schemas
from redpss.core.db.errors import DatabaseError
from redpss.core.db.session import DbSession

log = logging.getLogger("redpss.core.db.retention")

DEFAULT_BATCH = 10_000
RETENTION_PERIOD = 86400.0  # seconds between two purges
CLOSE_WAIT = 5.0  # seconds a stopping daemon waits for the batch in progress


@dataclass(frozen=True)
class RetainedTable:
    """A table whose rows expire: the expression giving a row's time, and which rows may go at all."""

    table: str
    time: str
    deletable: str = "1 = 1"


# In every registered application schema.
APP_TABLES = (
    RetainedTable("ADM_JOB_LOG", "COALESCE(ENDED_AT, STARTED_AT, SCHEDULED_AT)", "STATUS <> 'RUNNING'"),
    RetainedTable("ADM_WATCHER_LOG", "COALESCE(ENDED_AT, STARTED_AT, SCHEDULED_AT)", "STATUS <> 'RUNNING'"),
    RetainedTable("ADM_WATCHER_EXEC_ERROR", "ERROR_AT", "RESET_AT IS NOT NULL"),
    RetainedTable("LOG_MESSAGES", "LOG_TIME"),
)
# In REDSYS only.
REDSYS_TABLES = (RetainedTable("ADM_JMON_LOAD", "LOG_TIME"), RetainedTable("ADM_JMON_JOBLOG", "LOG_TIME"))


@dataclass
class PurgeReport:
    removed: dict[str, int] = field(default_factory=dict)  # "APP1.ADM_JOB_LOG" -> rows deleted
    batches: int = 0
    largest_batch: int = 0  # rows of the largest single DELETE (at most `batch` unless rows share a time)

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def purge_expired_rows(
    session: DbSession,
    days: int,
    *,
    now: float | None = None,
    batch: int = DEFAULT_BATCH,
    stop: threading.Event | None = None,
) -> PurgeReport:
    """Delete rows older than `days` days (0 keeps all) from every retained table; log what went, per table."""
    report = PurgeReport()
    if days <= 0:
        return report
    moment = dt.datetime.fromtimestamp((time.time() if now is None else now) - days * 86400)
    cutoff = moment.strftime("%Y-%m-%d %H:%M:%S")  # local time, as every RED-PSS timestamp in the database
    targets = [(schema, t) for schema in registered_schemas(session) for t in APP_TABLES]
    targets += [(REDSYS, t) for t in REDSYS_TABLES]
    for schema, table in targets:
        if stop is not None and stop.is_set():
            break
        removed = _purge_table(session, f"{schema}.{table.table}", table, cutoff, batch=batch, report=report, stop=stop)
        if removed:
            report.removed[f"{schema}.{table.table}"] = removed
            log.info(
                "removed %d row(s) older than %d days (before %s) from %s.%s",
                removed,
                days,
                cutoff,
                schema,
                table.table,
                extra={"SCHEMA": schema},
            )
    return report


def _purge_table(
    session: DbSession,
    name: str,
    table: RetainedTable,
    cutoff: str,
    *,
    batch: int,
    report: PurgeReport,
    stop: threading.Event | None,
) -> int:
    # Names come from the constants above and from registered (validated) schema names, never from input.
    expired = f"{table.time} < {{cutoff}} AND {table.deletable}"
    removed = 0
    while stop is None or not stop.is_set():
        # The time of the batch-th oldest expired row bounds this batch (rows sharing it go along).
        rows = session.fetchall(
            f"SELECT {table.time} FROM {name} WHERE {expired} ORDER BY 1 LIMIT 1 OFFSET {batch - 1:d}",  # noqa: S608
            {"cutoff": cutoff},
        )
        last = None if not rows or rows[0][0] is None else str(rows[0][0])
        condition = expired if last is None else f"{table.time} <= {{last}} AND {table.deletable}"
        statement = session.execute(f"DELETE FROM {name} WHERE {condition}", {"cutoff": cutoff, "last": last})  # noqa: S608
        session.commit()
        count = int(statement.rowcount())
        report.batches += 1
        report.largest_batch = max(report.largest_batch, count)
        removed += count
        if last is None:
            break
    return removed


class DbLogRetention:
    """JMON's daily purge: `run_if_due(now)` from its tick starts one in a thread with its own session."""

    def __init__(self, open_session: Callable[[], DbSession], days: int, *, period: float = RETENTION_PERIOD) -> None:
        self.open_session = open_session
        self.days = days
        self.period = period
        self.next_run = 0.0  # the first purge runs at the first tick
        self.stop = threading.Event()
        self.task: asyncio.Task[None] | None = None

    def run_if_due(self, now: float) -> None:
        if self.days <= 0 or now < self.next_run or (self.task is not None and not self.task.done()):
            return
        self.next_run = now + self.period
        self.task = asyncio.create_task(asyncio.to_thread(self._purge, now))

    def _purge(self, now: float) -> None:
        session = self.open_session()
        try:
            purge_expired_rows(session, self.days, now=now, stop=self.stop)
        except DatabaseError as exc:
            log.warning("log retention in the database failed, trying again in an hour: %s", exc)
            self.next_run = min(self.next_run, now + 3600)  # the database was away: not a whole day later
        finally:
            session.close()

    async def close(self) -> None:
        """Stop after the current batch and wait for it (at most CLOSE_WAIT seconds)."""
        self.stop.set()
        if self.task is not None:
            with contextlib.suppress(Exception):  # a database that hangs must not hold up the daemon's stop
                await asyncio.wait_for(asyncio.shield(self.task), CLOSE_WAIT)
