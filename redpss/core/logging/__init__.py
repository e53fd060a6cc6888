"""Logging for every RED-PSS program: journald with structured fields, a file per service, and retention.

Use `setup_logging()` once per process and named loggers (`logging.getLogger("redpss.sched.pool")`) everywhere.
Structured fields go in `extra=` with upper-case names (`extra={"SCHEMA": "APP1", "JOB_ID": 7}`): those reach
journald as fields an operator can filter on (`journalctl REDENV=TST1 SCHEMA=APP1`).
"""

from redpss.core.logging.levels import ALERT, level_from_name
from redpss.core.logging.retention import remove_expired_logs
from redpss.core.logging.setup import LogContext, setup_logging

__all__ = ["ALERT", "LogContext", "level_from_name", "remove_expired_logs", "setup_logging"]
