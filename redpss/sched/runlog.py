"""Writes the run log: ADM_JOB_LOG, ADM_WATCHER_LOG and ADM_WATCHER_EXEC_ERROR of each run's schema.

Rows are spooled to a file before anything else, then written to the database in batches by one thread with its
own session. When the database is away, rows wait in the spool and are written when it is back, also after a
restart; so no run is ever unlogged. Delivery is at-least-once: a crash between a commit and the spool rewrite
writes the last batch again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpss.core.db import DatabaseError, DatabaseQueryError, DbSession
from redpss.core.db.sqltext import insert_statement, timestamp
from redpss.sched.runs import SKIPPED, RunRequest, RunResult

log = logging.getLogger("redpss.sched.runlog")

BATCH_ROWS = 1000
FLUSH_INTERVAL = 0.5  # seconds between writes when rows are waiting
TABLES = ("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_WATCHER_EXEC_ERROR")


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
    kind: str, schema: str, id_: int, name: str, *, scheduled_at: float, reason: str, message: str, run_id: str
) -> LogRow:
    """The row of a tick that started no run, with the reason (SUSPENDED, OVERLAP, POOL_FULL, BLOCKED, MISSED)."""
    values: dict[str, Any] = {
        "RUN_ID": run_id,
        "SCHEDULED_AT": timestamp(scheduled_at),
        "STATUS": SKIPPED,
        "SKIP_REASON": reason,
        "MESSAGE": message[:2000],
    }
    if kind == "JOB":
        return LogRow(schema, "ADM_JOB_LOG", {**values, "JOB_ID": id_, "JOB_NAME": name, "RUN_TRIGGER": "SCHEDULE"})
    return LogRow(schema, "ADM_WATCHER_LOG", {**values, "WATCHER_ID": id_, "WATCHER_NAME": name})


class RunLogWriter:
    """Spool + batch writer; `record` never blocks on the database."""

    def __init__(self, spool: Path, session: DbSession) -> None:
        self.spool = spool
        self.rejected = spool.with_suffix(".rejected")
        self.session = session
        self._lock = threading.Lock()
        self._pending: list[LogRow] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self._load_spool()

    def _load_spool(self) -> None:
        if not self.spool.exists():
            return
        bad = 0
        for line in self.spool.read_text(encoding="utf-8").splitlines():
            try:
                self._pending.append(LogRow.from_json(line))
            except (ValueError, KeyError):
                bad += 1
        if self._pending:
            log.info("run log: %d row(s) from the spool %s wait to be written", len(self._pending), self.spool)
        if bad:
            log.error("run log: %d unreadable line(s) in %s were skipped", bad, self.spool)

    @property
    def backlog(self) -> int:
        with self._lock:
            return len(self._pending)

    def record(self, rows: list[LogRow]) -> None:
        with self._lock:
            with self.spool.open("a", encoding="utf-8") as handle:
                handle.writelines(row.to_json() + "\n" for row in rows)
            self._pending.extend(rows)
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="sched-runlog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what can be written within `timeout`; the rest stays in the spool for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.backlog:
            log.warning("run log: %d row(s) stay in %s until the next start", self.backlog, self.spool)
        self.session.close()

    def _loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            while self.backlog:
                if not self._flush_batch():
                    break
            if self._stop.is_set():
                return

    def _flush_batch(self) -> bool:
        """Write up to BATCH_ROWS rows, one INSERT per (schema, table); False when the database is away."""
        with self._lock:
            batch = self._pending[:BATCH_ROWS]
        if not self.session.wait_connected(self._stop, timeout=2.0 if self._stop.is_set() else None):
            return False
        groups: dict[tuple[str, str], list[LogRow]] = defaultdict(list)
        for row in batch:
            groups[(row.schema, row.table)].append(row)
        done: set[int] = set()
        reachable = True
        for (schema, table), rows in groups.items():
            try:
                self.session.execute(insert_statement(f"{schema}.{table}", [r.values for r in rows]))
            except DatabaseQueryError as exc:
                self._reject(rows, str(exc))  # the same rows would fail forever: set them aside, keep the rest moving
            except DatabaseError as exc:
                log.warning("run log: database unavailable, %d row(s) wait in the spool: %s", self.backlog, exc)
                reachable = False
                break
            done.update(id(r) for r in rows)
        with self._lock:
            self._pending = [r for r in self._pending if id(r) not in done]
            self._rewrite_spool()
        self.written += len(done)
        return reachable

    def _reject(self, rows: list[LogRow], reason: str) -> None:
        log.error(
            "run log: %d row(s) for %s.%s refused by the database, kept in %s: %s",
            len(rows),
            rows[0].schema,
            rows[0].table,
            self.rejected,
            reason,
        )
        with self.rejected.open("a", encoding="utf-8") as handle:
            handle.writelines(json.dumps({"reason": reason, "row": json.loads(r.to_json())}) + "\n" for r in rows)

    def _rewrite_spool(self) -> None:
        """Keep only unwritten rows in the spool (atomic replace); called with the lock held."""
        temporary = self.spool.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.writelines(row.to_json() + "\n" for row in self._pending)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.spool)
