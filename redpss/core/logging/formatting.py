"""How log lines look on a terminal (start_trace, the demo) and in the files under $REDENV_HOME/log.

Both carry the structured fields at the end of the line, so what journald shows as fields is visible where there is
no journald, and a file can be grepped for JOB_ID=7 like the journal can be queried for it.
"""

from __future__ import annotations

import logging
import os
import time

from redpss.core.logging.journal import structured_extras


def _fields_suffix(record: logging.LogRecord) -> str:
    extras = structured_extras(record)
    if not extras:
        return ""
    return " {" + " ".join(f"{key}={value}" for key, value in sorted(extras.items())) + "}"


def _line(record: logging.Formatter, log_record: logging.LogRecord, head: str) -> str:
    """`<time>.<ms> <head> <message> {fields}`, and the traceback on the following lines."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(log_record.created))
    line = f"{stamp}.{int(log_record.msecs):03d} {head} {log_record.getMessage()}{_fields_suffix(log_record)}"
    if log_record.exc_info:
        line += "\n" + record.formatException(log_record.exc_info)
    return line


class ConsoleFormatter(logging.Formatter):
    """journald-like lines: time, instance, identifier[pid], level, message, {fields}."""

    def __init__(self, identifier: str, instance: str | None) -> None:
        super().__init__()
        self.identifier = identifier
        self.instance = instance or "-"

    def format(self, record: logging.LogRecord) -> str:
        return _line(self, record, f"{self.instance} {self.identifier}[{os.getpid()}] {record.levelname}:")


class FileFormatter(logging.Formatter):
    """One line per record in the service's log file; the logger name says which part of the daemon spoke."""

    def format(self, record: logging.LogRecord) -> str:
        return _line(self, record, f"{record.levelname:<5} [{record.name}]")
