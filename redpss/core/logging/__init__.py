"""Logging for every RED-PSS program: journald with structured fields, a file per service, and retention.

Use `setup_logging()` once per process and named loggers (`logging.getLogger("redpss.sched.pool")`) everywhere.
Structured fields go in `extra=` with upper-case names (`extra={"SCHEMA": "APP1", "JOB_ID": 7}`): those reach
journald as fields an operator can filter on (`journalctl REDENV=TST1 SCHEMA=APP1`).

The names below are imported on first use: the config loader needs only the levels, and a command-line tool that
never logs to a file or the journal should not pay for the journald handler's imports.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.core.logging.levels import ALERT, level_from_name
    from redpss.core.logging.retention import remove_expired_logs
    from redpss.core.logging.setup import LogContext, setup_logging

_WHERE = {
    "ALERT": "levels",
    "level_from_name": "levels",
    "remove_expired_logs": "retention",
    "LogContext": "setup",
    "setup_logging": "setup",
}

__all__ = ["ALERT", "LogContext", "level_from_name", "remove_expired_logs", "setup_logging"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
