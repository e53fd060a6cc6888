"""One call per process sets up where its log records go.

Under systemd (JOURNAL_STREAM set, the journal socket present) records go to journald with structured fields and
nothing is written to stderr, because systemd would put stderr into the journal a second time. Elsewhere (the demo,
`redctl start_trace`, a terminal) they go to stderr in journald-like lines. With a log file, records also go there:
to the file of the record's day, `log_file` being the link to today's (see daily.py).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from redpss.core.logging.daily import DailyFileHandler
from redpss.core.logging.formatting import ConsoleFormatter, FileFormatter
from redpss.core.logging.journal import DEFAULT_JOURNAL_SOCKET, JournalHandler
from redpss.core.logging.levels import level_from_name

# Lets a test or an alternative journald namespace point the handler at another socket.
JOURNAL_SOCKET_ENV = "REDPSS_JOURNAL_SOCKET"


@dataclass(frozen=True)
class LogContext:
    """The fields every record of one process carries."""

    service: str  # e.g. "sched": REDPSS_SERVICE, and SYSLOG_IDENTIFIER redpss-sched
    instance: str | None = None  # REDENV, e.g. TST1

    @property
    def identifier(self) -> str:
        return f"redpss-{self.service}"

    def journal_fields(self) -> dict[str, str]:
        fields = {"SYSLOG_IDENTIFIER": self.identifier, "REDPSS_SERVICE": self.service}
        if self.instance:
            fields["REDENV"] = self.instance
        return fields


def journal_socket_path() -> str | None:
    """The journald socket to use, or None when records should go to stderr instead."""
    override = os.environ.get(JOURNAL_SOCKET_ENV)
    if override:
        return override
    if os.environ.get("JOURNAL_STREAM") and Path(DEFAULT_JOURNAL_SOCKET).exists():
        return DEFAULT_JOURNAL_SOCKET
    return None


def setup_logging(
    service: str,
    *,
    instance: str | None = None,
    level: str = "INFO",
    log_file: Path | None = None,
    stream: TextIO | None = None,
) -> LogContext:
    """Route the root logger's records to journald or stderr, and to `log_file`; return the context used."""
    context = LogContext(service=service, instance=instance)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level_from_name(level))

    socket_path = journal_socket_path()
    if socket_path is not None:
        root.addHandler(JournalHandler(context.journal_fields(), socket_path))
    else:
        console = logging.StreamHandler(stream if stream is not None else sys.stderr)
        console.setFormatter(ConsoleFormatter(context.identifier, instance))
        root.addHandler(console)

    if log_file is not None:
        file_handler = DailyFileHandler(log_file)  # log_file links to today's dated file
        file_handler.setFormatter(FileFormatter())
        root.addHandler(file_handler)
    logging.captureWarnings(True)
    return context
