"""ERROR and ALERT lines from the database to journald, with SCHEMA and PRIORITY, never holding up DBLS.

journald takes about 27k entries per second (docs: shared performance notes); DBLS takes far more lines. So entries
are queued and sent by a thread of their own; when the queue is full, entries are counted as dropped and the count
is logged (they are in the files and in LOG_MESSAGES all the same). Outside systemd (the demo, a terminal) the lines
go to the daemon's own log instead.

The thread is woken at most once per PACING seconds and then sends everything queued: a thread woken for every line
takes the GIL from the event loop at each of the loop's system calls, and with the cores busy it may be descheduled
holding it, so one ERROR line in 10,000 cost DBLS a fifth of its throughput. An entry reaches journald at most
PACING seconds after its line was acknowledged.
"""

from __future__ import annotations

import collections
import logging
import threading

from redpss.core.logging.journal import JournalHandler
from redpss.core.logging.levels import ALERT
from redpss.core.logging.setup import LogContext, journal_socket_path
from redpss.dbls.batch import DbLine

log = logging.getLogger("redpss.dbls.database")
QUEUE_SIZE = 20000
PACING = 0.1  # seconds the thread waits after a wake-up, so that what comes meanwhile goes in the same burst
_LEVELS = {"ERROR": logging.ERROR, "ALERT": ALERT}


class JournalForwarder:
    def __init__(self, instance: str) -> None:
        socket_path = journal_socket_path()
        self.handler: logging.Handler | None = None
        if socket_path is not None:
            self.handler = JournalHandler(LogContext("dbls", instance).journal_fields(), socket_path)
        self.dropped = 0
        self._queue: collections.deque[DbLine] = collections.deque()  # appended by the loop, taken by the thread
        self._wake = threading.Event()  # set when lines wait and the thread has not been told yet
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dbls-journal", daemon=True)
        self._thread.start()

    def submit(self, lines: list[DbLine]) -> None:
        room = QUEUE_SIZE - len(self._queue)
        if len(lines) > room:
            self.dropped += len(lines) - max(room, 0)
            lines = lines[: max(room, 0)]
        self._queue.extend(lines)
        if lines and not self._wake.is_set():
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self.handler is not None:
            self.handler.close()

    def _run(self) -> None:
        reported = 0
        while True:
            self._wake.wait()
            self._closing.wait(PACING)  # pacing: lines submitted meanwhile go out in this burst (returns at close)
            self._wake.clear()
            while self._queue:
                self._emit(self._queue.popleft())
            if self.dropped != reported:
                log.warning(
                    "%d ERROR/ALERT line(s) from the database were not sent to journald (it did not keep up); "
                    "they are in log/DB and LOG_MESSAGES",
                    self.dropped - reported,
                )
                reported = self.dropped
            if self._closing.is_set():
                return

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
