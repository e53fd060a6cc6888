"""The scheduled ticks SCHED has logged, so that a tick handed over again is not run twice.

JMON continues each schedule after a restart from the newest SCHEDULED_AT of the run logs in the database
(`jmon.definitions.read_last_scheduled`). A row SCHED has logged but the run-log writer has not yet inserted (the
database away or slow, SCHED's spool not drained) is not there, so a restarted JMON finds that tick due again and
hands it over a second time; `_run_of_tick` catches it only while the run is still in flight. SCHED therefore keeps,
per job and watcher, the newest tick among the rows it logged, counted as JMON's read counts them (job rows of any
trigger but MANUAL and WATCHER, every watcher row), from every append and, at start, from the rows still waiting in
the spool. A submit of that same tick is answered "already logged", as if JMON had read the row: the spool then
stands for the database. One entry per job or watcher; nothing older is needed, since JMON hands over at most the
newest tick due. An entry stays after its row reached the database: a tick that ran is not run again whatever the
database holds (a clock set back past it, a database restored from a backup; docs/decisions.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from redpss.core.db.sqltext import parse_timestamp

Key = tuple[str, str, int]  # (JOB | WATCHER, schema, id), as RunRequest.key
SAME_TICK = 0.5  # seconds within which two runs of a job are of one tick (a scheduled_at read back from the log)
_NOT_THE_SCHEDULE = frozenset({"MANUAL", "WATCHER"})  # their runs do not move a job's own timing (as JMON reads it)


class LoggedTicks:
    """The newest logged tick per job and watcher: (scheduled_at, run id, status)."""

    def __init__(self) -> None:
        self._newest: dict[Key, tuple[float, str, str]] = {}
        self._lock = threading.Lock()  # appends come from the writer's thread and from the event loop

    def note(self, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Take the ticks of run-log rows given as (SCHEMA.TABLE, values), as the writer keeps them."""
        with self._lock:
            for table, values in rows:
                tick = tick_of(table, values)
                if tick is not None and tick[1] >= self._newest.get(tick[0], (-1.0, "", ""))[0]:
                    self._newest[tick[0]] = (tick[1], str(values.get("RUN_ID") or ""), str(values.get("STATUS") or ""))

    def logs(self, table: str, values: Mapping[str, Any]) -> bool:
        """Whether a row for SCHEMA.TABLE with `values` would log a tick that is logged already."""
        tick = tick_of(table, values)
        return tick is not None and self.logged(*tick) is not None

    def logged(self, key: Key, scheduled_at: float) -> tuple[str, str] | None:
        """(run id, status) of the logged tick `scheduled_at` of `key` when it is the newest one logged; else None."""
        with self._lock:
            newest = self._newest.get(key)
        if newest is None or abs(newest[0] - scheduled_at) >= SAME_TICK:
            return None
        return newest[1], newest[2]


def tick_of(table: str, values: Mapping[str, Any]) -> tuple[Key, float] | None:
    """The job or watcher and the scheduled time a row logs, as JMON reads them; None for a row that logs no tick
    of a schedule (or lacks what would tell: a spool is read as it is, and what it holds must not stop SCHED)."""
    schema, _, name = table.partition(".")
    try:
        if name == "ADM_JOB_LOG" and str(values.get("RUN_TRIGGER") or "SCHEDULE") not in _NOT_THE_SCHEDULE:
            key: Key = ("JOB", schema, int(values["JOB_ID"]))
        elif name == "ADM_WATCHER_LOG":
            key = ("WATCHER", schema, int(values["WATCHER_ID"]))
        else:
            return None
        return key, parse_timestamp(str(values["SCHEDULED_AT"]))
    except (KeyError, TypeError, ValueError):
        return None
