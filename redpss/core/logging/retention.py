"""Removes log files older than log_retention days: service logs, REST logs and the DB logs per schema.

Daemons call this daily from their main loop (see redpss.core.daemon); it only removes files, never folders, so a
schema's log folder stays where DBLS expects it. A dated file (`sched-2026-11-29.log`, see daily.py) holds one day
and expires when that day ended more than `days` days ago, whoever touched it since; any other file by its last
change. The `<service>.log` links are never removed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

from redpss.core.logging.daily import day_in_name

log = logging.getLogger("redpss.core.retention")


def remove_expired_logs(log_root: Path, days: int, now: float | None = None) -> list[Path]:
    """Delete regular files below `log_root` last modified more than `days` days before `now`; return them."""
    if days <= 0:
        return []
    cutoff = (time.time() if now is None else now) - days * 86400
    removed: list[Path] = []
    if not log_root.is_dir():
        return removed
    for path in sorted(log_root.rglob("*")):
        try:
            if path.is_file() and not path.is_symlink() and _last_written(path) < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # removed by someone else meanwhile: that is what we wanted
    if removed:
        log.info("removed %d log file(s) older than %d days below %s", len(removed), days, log_root)
    return removed


def _last_written(path: Path) -> float:
    """When the file was last written to: the end of its day for a dated file, else its modification time."""
    day = day_in_name(path)
    if day is None:
        return path.stat().st_mtime
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp()
