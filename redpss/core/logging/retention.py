"""Removes log files older than log_retention days: service logs, REST logs and the DB logs per schema.

Daemons call this daily from their main loop (see redpss.core.daemon); it only removes files, never folders, so a
schema's log folder stays where DBLS expects it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

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
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # removed by someone else meanwhile: that is what we wanted
    if removed:
        log.info("removed %d log file(s) older than %d days below %s", len(removed), days, log_root)
    return removed
