"""ERROR and ALERT lines from the database to journald, with SCHEMA and PRIORITY, never holding up DBLS.

journald takes about 27k entries per second (docs: shared performance notes); DBLS takes far more lines. So entries
are queued and sent by a thread of their own; when the queue is full, entries are counted as dropped and the count
is logged (they are in the files and in LOG_MESSAGES all the same). Outside systemd (the demo, a terminal) the lines
go to the daemon's own log instead.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading

from redpss.core.logging.journal import JournalHandler
from redpss.core.logging.levels import ALERT
from redpss.core.logging.setup import LogContext, journal_socket_path
from redpss.dbls.batch import DbLine

log = logging.getLogger("redpss.dbls.database")
QUEUE_SIZE = 20000
_LEVELS = {"ERROR": logging.ERROR, "ALERT": ALERT}


class JournalForwarder:
    def __init__(self, instance: str) -> None:
        socket_path = journal_socket_path()
        self.handler: logging.Handler | None = None
        if socket_path is not None:
            self.handler = JournalHandler(LogContext("dbls", instance).journal_fields(), socket_path)
        self.dropped = 0
        self._queue: queue.Queue[DbLine | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="dbls-journal", daemon=True)
        self._thread.start()

    def submit(self, lines: list[DbLine]) -> None:
        for line in lines:
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        if self.handler is not None:
            self.handler.close()

    def _run(self) -> None:
        reported = 0
        while (line := self._queue.get()) is not None:
            self._emit(line)
            if self.dropped != reported and self._queue.empty():
                log.warning(
                    "%d ERROR/ALERT line(s) from the database were not sent to journald (it did not keep up); "
                    "they are in log/DB and LOG_MESSAGES",
                    self.dropped - reported,
                )
                reported = self.dropped

    def _emit(self, line: DbLine) -> None:
        record = log.makeRecord(
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
        if self.handler is not None:
            self.handler.handle(record)
        else:
            log.handle(record)
