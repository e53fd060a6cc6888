"""JMON's statistics: what happened since the last row, turned into ADM_JMON_LOAD and ADM_JMON_JOBLOG rows.

Collecting is cheap and in memory; the rows go through the durable row writer, whose thread writes them with its own
session. When the database is away the rows wait in the spool and are written once it is back, so scheduling never
waits for statistics.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redpss.core.db import DbSession
from redpss.core.db.rowwriter import RowWriter
from redpss.core.db.sqltext import timestamp

log = logging.getLogger("redpss.jmon.stats")

LOAD_TABLE = "REDSYS.ADM_JMON_LOAD"
JOBLOG_TABLE = "REDSYS.ADM_JMON_JOBLOG"
# What identifies a row, so a batch the writer sends again (its commit's answer lost) replaces its earlier copy: a
# pool's row of one interval; a run's end (a retry shares the run id with the attempt before it, not its end)
KEYS = {"ADM_JMON_LOAD": ("LOG_TIME", "POOL"), "ADM_JMON_JOBLOG": ("RUN_ID", "ENDED_AT")}
RECENT = 100_000  # dispatches `redctl show` summarises


def key_time(epoch: float | None) -> str | None:
    """A TIMESTAMP of a key column, to the millisecond: what Exasol's TIMESTAMP keeps, so the DELETE of a batch sent
    again compares the very value stored, however the database would round a microsecond."""
    text = timestamp(epoch)
    return text[:23] if text else None


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the sorted values lie (nearest rank)."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class StatsCollector:
    lateness_ms: list[float] = field(default_factory=list)
    started: int = 0
    skipped: int = 0
    finished: list[dict[str, Any]] = field(default_factory=list)
    recent_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def dispatched(self, lateness_seconds: float) -> None:
        self.started += 1
        lateness = max(0.0, lateness_seconds * 1000)
        self.lateness_ms.append(lateness)
        self.recent_ms.append(lateness)

    def lateness_summary(self) -> dict[str, float | int | None]:
        """Dispatch lateness of the most recent dispatches, in milliseconds."""
        values = sorted(self.recent_ms)
        if not values:
            return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
        return {
            "count": len(values),
            "p50_ms": percentile(values, 0.5),
            "p99_ms": percentile(values, 0.99),
            "max_ms": values[-1],
        }

    def skip(self) -> None:
        self.skipped += 1

    def run_finished(self, event: dict[str, Any]) -> None:
        self.finished.append(event)

    def rows(
        self, now: float, pools: list[dict[str, Any]], last_poll_ok: float | None, suspended: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(ADM_JMON_LOAD rows, ADM_JMON_JOBLOG rows) for the interval that ends `now`; resets the collector."""
        p50 = statistics.median(self.lateness_ms) if self.lateness_ms else None
        worst = max(self.lateness_ms) if self.lateness_ms else None
        load = [
            {
                "LOG_TIME": key_time(now),
                "POOL": pool["pool"],
                "POOL_SIZE": pool["size"],
                "BUSY": pool["busy"],
                "QUEUED": pool["queued"],
                "RUNS_STARTED": self.started,
                "RUNS_SKIPPED": self.skipped,
                "LATENESS_P50_MS": None if p50 is None else round(p50, 3),
                "LATENESS_MAX_MS": None if worst is None else round(worst, 3),
                "LAST_POLL_OK": timestamp(last_poll_ok),
                "SUSPENDED": suspended,
            }
            for pool in pools
        ]
        joblog = [
            {
                "LOG_TIME": key_time(now),
                "SCHEMA_NAME": e["schema"],
                "KIND": e["kind"],
                "ID": e["id"],
                "NAME": e["name"],
                "RUN_ID": e["run_id"],
                "STATUS": e["status"],
                "SCHEDULED_AT": timestamp(e.get("scheduled_at")),
                "STARTED_AT": timestamp(e.get("started_at")),
                "ENDED_AT": key_time(e.get("ended_at")),
                "LATENESS_MS": round(max(0.0, (e.get("started_at") or 0) - (e.get("scheduled_at") or 0)) * 1000, 3)
                if e.get("started_at") and e.get("scheduled_at")
                else None,
            }
            for e in self.finished
        ]
        self.lateness_ms, self.started, self.skipped, self.finished = [], 0, 0, []
        return load, joblog


class StatsWriter:
    """Statistics rows through the project's durable row writer (redpss.core.db.rowwriter): spooled in tmp/, written
    by the writer's thread with its own session, kept while the database is away (also across restarts)."""

    def __init__(self, session: DbSession, spool: Path) -> None:
        # statistics from before a clone belong to the database that was replaced (redpss.clone)
        self.writer = RowWriter("statistics", spool, session, keys=KEYS)
        self._started = False

    def add(self, load: list[dict[str, Any]], joblog: list[dict[str, Any]]) -> None:
        self._start()
        self.writer.append(LOAD_TABLE, load)
        self.writer.append(JOBLOG_TABLE, joblog)

    @property
    def backlog(self) -> int:
        return self.writer.backlog().rows

    def flush(self) -> None:
        """Ask for a write now; the writer's thread does it (this never waits for the database)."""
        self._start()
        self.writer.flush_now()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self.writer.start()

    def close(self) -> None:
        self.writer.stop(timeout=5.0)
