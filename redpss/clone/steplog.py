"""The restore's steps from `redctl postclone` go where JMON's would: redctl.log and the journal (the command
prints them itself)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from redpss.core.logging.daily import DailyFileHandler
from redpss.core.logging.formatting import FileFormatter
from redpss.core.logging.journal import DEFAULT_JOURNAL_SOCKET, JournalHandler
from redpss.core.logging.setup import JOURNAL_SOCKET_ENV, LogContext
from redpss.core.paths import InstancePaths

LOGGER = "redpss.clone"


@contextlib.contextmanager
def recording_steps(paths: InstancePaths) -> Iterator[None]:
    logger = logging.getLogger(LOGGER)
    handlers: list[logging.Handler] = []
    file_handler = DailyFileHandler(paths.log_file("redctl"))
    file_handler.setFormatter(FileFormatter())
    handlers.append(file_handler)
    socket_path = os.environ.get(JOURNAL_SOCKET_ENV) or DEFAULT_JOURNAL_SOCKET
    if Path(socket_path).exists():
        handlers.append(JournalHandler(LogContext("redctl", paths.redenv).journal_fields(), socket_path))
    previous = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the root's stderr handler would print each step beside the command's own output
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(previous[0])
        logger.propagate = previous[1]
