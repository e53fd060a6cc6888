"""ERROR and ALERT lines from the database to journald, with SCHEMA and PRIORITY, never holding up DBLS.

DBLS takes far more lines than journald does entries, so they go through a JournalQueue (its own thread, a bounded
queue, an overflow counted and said: the lines are in the files and in LOG_MESSAGES all the same). Outside systemd
(the demo, a terminal) the lines go to the daemon's own log instead.
"""

from __future__ import annotations

import logging

from redpss.core.logging.journal_queue import QUEUE_SIZE, JournalQueue
from redpss.core.logging.levels import ALERT
from redpss.core.logging.setup import LogContext
from redpss.dbls.batch import DbLine

log = logging.getLogger("redpss.dbls.database")
_LEVELS = {"ERROR": logging.ERROR, "ALERT": ALERT}


def journal_forwarder(instance: str, queue_size: int = QUEUE_SIZE) -> JournalQueue[DbLine]:
    """The queue DBLS hands its ERROR/ALERT lines to."""
    return JournalQueue(
        LogContext("dbls", instance),
        _record,
        fallback=log,
        note=log,
        what="ERROR/ALERT line(s) from the database",
        kept="they are in log/DB and LOG_MESSAGES",
        size=lambda line: len(line.text),
        queue_size=queue_size,
    )


def _record(line: DbLine) -> logging.LogRecord:
    return log.makeRecord(
        log.name,
        _LEVELS[line.level],
        "(database)",
        0,
        "%s: %s",
        (line.source or line.schema, line.text),
        None,
        func="(database)",
        extra={"SCHEMA": line.schema, "DB_SOURCE": line.source, "DB_TIMESTAMP": line.timestamp},
    )
