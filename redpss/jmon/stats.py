"""JMON's statistics: what happened since the last row, turned into ADM_JMON_LOAD and ADM_JMON_JOBLOG rows.

Collecting is cheap and in memory; writing happens in a thread with its own session. When the database is away the
rows wait (up to MAX_WAITING) and are written once it is back, so scheduling never waits for statistics.
"""

from __future__ import annotations

import itertools
import logging
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from redpss.core.db import DatabaseError, DbSession
from redpss.core.db.sqltext import insert_statement, timestamp

log = logging.getLogger("redpss.jmon.stats")

LOAD_TABLE = "REDSYS.ADM_JMON_LOAD"
JOBLOG_TABLE = "REDSYS.ADM_JMON_JOBLOG"
BATCH_ROWS = 1000
MAX_WAITING = 100_000  # stat rows kept while the database is away; the oldest go first beyond that
RECENT = 100_000  # dispatches `redctl show` summarises


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
                "LOG_TIME": timestamp(now),
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
                "LOG_TIME": timestamp(now),
                "SCHEMA_NAME": e["schema"],
                "KIND": e["kind"],
                "ID": e["id"],
                "NAME": e["name"],
                "RUN_ID": e["run_id"],
                "STATUS": e["status"],
                "SCHEDULED_AT": timestamp(e.get("scheduled_at")),
                "STARTED_AT": timestamp(e.get("started_at")),
                "ENDED_AT": timestamp(e.get("ended_at")),
                "LATENESS_MS": round(max(0.0, (e.get("started_at") or 0) - (e.get("scheduled_at") or 0)) * 1000, 3)
                if e.get("started_at") and e.get("scheduled_at")
                else None,
            }
            for e in self.finished
        ]
        self.lateness_ms, self.started, self.skipped, self.finished = [], 0, 0, []
        return load, joblog


class StatsWriter:
    """Writes statistics rows with its own session, called from a thread; rows wait (the newest MAX_WAITING per
    table) while the database is away and go with the next interval. One caller at a time (JMON runs one write
    per interval)."""

    def __init__(self, session: DbSession) -> None:
        self.session = session
        self.waiting: dict[str, deque[dict[str, Any]]] = {
            LOAD_TABLE: deque(maxlen=MAX_WAITING),
            JOBLOG_TABLE: deque(maxlen=MAX_WAITING),
        }

    def add(self, load: list[dict[str, Any]], joblog: list[dict[str, Any]]) -> None:
        self.waiting[LOAD_TABLE].extend(load)
        self.waiting[JOBLOG_TABLE].extend(joblog)

    @property
    def backlog(self) -> int:
        return sum(len(rows) for rows in self.waiting.values())

    def flush(self) -> None:
        """Write what waits, batch by batch; each written batch leaves the queue, so nothing is written twice."""
        try:
            for table, rows in self.waiting.items():
                while rows:
                    batch = list(itertools.islice(rows, BATCH_ROWS))
                    self.session.execute(insert_statement(table, batch))
                    for _ in batch:
                        rows.popleft()
        except DatabaseError as exc:
            log.warning("statistics not written (%d row(s) wait for the next interval): %s", self.backlog, exc)

    def close(self) -> None:
        self.session.close()
