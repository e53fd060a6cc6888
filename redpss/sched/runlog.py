"""The run log: ADM_JOB_LOG, ADM_WATCHER_LOG and ADM_WATCHER_EXEC_ERROR rows of each run's schema.

The rows go through the project's durable row writer (redpss.core.db.rowwriter): on disk before anything else,
written in batches while the database is there, kept while it is away (also across restarts), refused rows set
aside with the reason. A spool from before the writer existed is converted at start, so an upgrade loses nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from redpss.core.db import DbSession
from redpss.core.db.rowwriter import RowWriter
from redpss.core.db.sqltext import timestamp
from redpss.sched.runs import SKIPPED, RunRequest, RunResult
from redpss.sched.ticks import LoggedTicks

log = logging.getLogger("redpss.sched.runlog")

TABLES = ("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_WATCHER_EXEC_ERROR")
# What identifies a run's row, so a batch the writer sends again (SCHED or the database killed between its commit and
# the spool's note) replaces its earlier copy: a run is logged once. A retry shares its run id with the first attempt.
KEYS = {"ADM_JOB_LOG": ("RUN_ID", "ATTEMPT"), "ADM_WATCHER_LOG": ("RUN_ID",)}


@dataclass(frozen=True)
class LogRow:
    schema: str
    table: str  # one of TABLES
    values: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"schema": self.schema, "table": self.table, "values": self.values}, default=str)

    @classmethod
    def from_json(cls, line: str) -> LogRow:
        data = json.loads(line)
        if data["table"] not in TABLES:
            raise ValueError(f"unknown table {data['table']!r}")
        return cls(data["schema"], data["table"], data["values"])

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"


def run_rows(request: RunRequest, result: RunResult, target_run_id: str | None = None) -> list[LogRow]:
    """The log rows of one finished run (a watcher whose executor failed also gets its error row)."""
    common = {
        "RUN_ID": request.run_id,
        "SCHEDULED_AT": timestamp(request.scheduled_at),
        "STARTED_AT": timestamp(result.started_at),
        "ENDED_AT": timestamp(result.ended_at),
        "STATUS": result.status,
        "MESSAGE": result.message[:2000],
        "WORKER": result.worker,
    }
    if request.kind == "JOB":
        values = {
            **common,
            "JOB_ID": request.id,
            "JOB_NAME": request.name,
            "POOL": request.pool,
            "RUN_TRIGGER": request.trigger,
            "ATTEMPT": request.attempt,
        }
        if "rows_loaded" in result.extra:  # LOAD jobs only: other rows leave the column out (NULL)
            values["ROWS_LOADED"] = result.extra["rows_loaded"]
        return [LogRow(request.schema, "ADM_JOB_LOG", values)]
    rows = [
        LogRow(
            request.schema,
            "ADM_WATCHER_LOG",
            {
                **common,
                "WATCHER_ID": request.id,
                "WATCHER_NAME": request.name,
                "CONDITION_MET": result.condition_met,
                "TARGET_RUN_ID": target_run_id,
            },
        )
    ]
    if result.exec_error:
        rows.append(
            LogRow(
                request.schema,
                "ADM_WATCHER_EXEC_ERROR",
                {
                    "WATCHER_ID": request.id,
                    "RUN_ID": request.run_id,
                    "ERROR_AT": timestamp(result.ended_at),
                    "ERROR_MESSAGE": result.message[:2000],
                },
            )
        )
    return rows


def skip_row(
    kind: str,
    schema: str,
    id_: int,
    name: str,
    *,
    scheduled_at: float,
    reason: str,
    message: str,
    run_id: str,
    trigger: str = "SCHEDULE",
) -> LogRow:
    """The row of a tick that started no run, with the reason (SUSPENDED, OVERLAP, POOL_FULL, BLOCKED, MISSED); a
    job's row names what would have started it (`trigger`: its schedule, or a watcher whose condition held)."""
    values: dict[str, Any] = {
        "RUN_ID": run_id,
        "SCHEDULED_AT": timestamp(scheduled_at),
        "STATUS": SKIPPED,
        "SKIP_REASON": reason,
        "MESSAGE": message[:2000],
    }
    if kind == "JOB":
        return LogRow(schema, "ADM_JOB_LOG", {**values, "JOB_ID": id_, "JOB_NAME": name, "RUN_TRIGGER": trigger})
    return LogRow(schema, "ADM_WATCHER_LOG", {**values, "WATCHER_ID": id_, "WATCHER_NAME": name})


def unstarted_row(request: RunRequest, reason: str, message: str) -> LogRow:
    """The SKIPPED row of a run SCHED accepted and then did not start (`reason`, e.g. SUSPENDED); a job's row names
    the run's trigger, pool and attempt, so a retry's row is told apart from the attempts before it."""
    row = skip_row(
        request.kind,
        request.schema,
        request.id,
        request.name,
        scheduled_at=request.scheduled_at,
        reason=reason,
        message=message,
        run_id=request.run_id,
        trigger=request.trigger,
    )
    if request.kind != "JOB":
        return row
    return replace(row, values={**row.values, "POOL": request.pool, "ATTEMPT": request.attempt})


def run_log_writer(spool: Path, session: DbSession) -> RowWriter:
    """The run log's writer on `spool` (a spool in the format before the shared writer is converted first)."""
    _convert_old_spool(spool)
    # rows of runs from before a clone belong to the database that was replaced (redpss.clone)
    return RowWriter("run log", spool, session, keys=KEYS)


def record(writer: RowWriter, rows: list[LogRow], ticks: LoggedTicks | None = None, *, if_absent: bool = False) -> bool:
    """Hand `rows` to the writer, their ticks to `ticks`; True once they are on disk, False when held in memory (the
    spool failed). `if_absent`: a row is written only if its run (and attempt) has no row yet: the rows a restarted
    SCHED writes for runs a killed one left, whose own rows may have reached the database just before the kill."""
    if ticks is not None:
        ticks.note((row.qualified_table, row.values) for row in rows)
    durable = True
    for table in dict.fromkeys(row.qualified_table for row in rows):
        values = [row.values for row in rows if row.qualified_table == table]
        keyed = table.rsplit(".", 1)[-1] in KEYS  # ADM_WATCHER_EXEC_ERROR has none: its rows are only ever added
        durable &= writer.append(table, values, if_absent=if_absent and keyed)
    return durable


class GroupRecorder:
    """Rows of many runs from the event loop to the writer, one append (one fsync) per batch: group commit.

    Each caller waits until its rows are on disk, as with `record`; rows that arrive while a batch is being written
    form the next batch. A thread per caller (asyncio.to_thread) would cap SCHED at the thread pool's size per fsync
    (a few hundred runs/s on a busy disk) and hold the next runs' ends back behind it.

    The appends run on a thread of the recorder's own: in asyncio's shared pool they waited behind whatever else
    held its threads (questions to a database that is away), and then no run could end.
    """

    def __init__(self, writer: RowWriter, ticks: LoggedTicks | None = None) -> None:
        self.writer = writer
        self.ticks = ticks
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sched-runlog")
        self._rows: list[LogRow] = []
        self._waiters: list[asyncio.Future[bool]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def record(self, rows: list[LogRow]) -> bool:
        """True once `rows` are on disk, False when held in memory (the spool failed); never raises for the rows."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._rows.extend(rows)
        self._waiters.append(done)
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return await asyncio.shield(done)  # a caller cancelled (stopping) leaves its rows to the batch

    async def flushed(self) -> None:
        """Return when every row handed over so far is with the writer (before the writer stops)."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    def close(self) -> None:
        """End the recorder's thread (after `flushed`: nothing is left to write)."""
        self._thread.shutdown(wait=True)

    async def _flush(self) -> None:
        try:
            while self._waiters:
                rows, waiters = self._rows, self._waiters
                self._rows, self._waiters = [], []
                try:
                    durable = await asyncio.wrap_future(self._thread.submit(record, self.writer, rows, self.ticks))
                except BaseException as exc:  # record never fails for the rows; a cancel at the end may
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                    raise
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(durable)
        finally:
            self._flushing = None


def _convert_old_spool(spool: Path) -> None:
    """Rewrite a spool of `{"schema", "table", "values"}` lines (before the shared writer) in the writer's format."""
    if not spool.exists():
        return
    lines = spool.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not _old_format(lines[0]):
        return
    converted = []
    for seq, line in enumerate(lines, start=1):
        try:
            row = LogRow.from_json(line)
        except (ValueError, KeyError):
            log.error("run log: unreadable line in the old spool %s skipped: %.200s", spool, line)
            continue
        entry = {"seq": seq, "at": spool.stat().st_mtime, "table": row.qualified_table, "row": row.values}
        converted.append(json.dumps(entry, default=str) + "\n")
    temporary = spool.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.writelines(converted)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(spool)
    log.info("run log: %d row(s) of the old spool %s converted to the current format", len(converted), spool)


def _old_format(line: str) -> bool:
    try:
        first = json.loads(line)
    except ValueError:
        return False
    return isinstance(first, dict) and "values" in first and "seq" not in first
