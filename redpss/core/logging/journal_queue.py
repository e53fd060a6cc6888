"""Entries for journald sent by a thread of their own, so that a daemon's event loop never waits for journald.

journald takes about 27k entries per second (docs: shared performance notes) and, when its queue is full, a send
waits (JournalHandler gives up after 0.2 s). Lines that come faster than that (DBLS's ERROR lines from the database,
the output of JEXEC's actions) are queued here and sent by a thread; when the queue is full they are counted as
dropped and the count is logged once per burst. They are kept elsewhere all the same (log/DB, log/JEXEC). The
queue is bounded by entries and by bytes (each item's `size`): a script printing a binary file without line breaks
makes entries of a hundred KiB each, and 20,000 of them held JEXEC at 2 GB while journald was slow.

The thread is woken at most once per PACING seconds and then sends everything queued: a thread woken for every line
takes the GIL from the event loop at each of the loop's system calls, and with the cores busy it may be descheduled
holding it, so one ERROR line in 10,000 cost DBLS a fifth of its throughput. An entry reaches journald at most
PACING seconds after it was submitted.

Outside systemd (the demo, a terminal) there is no journald: entries go to `fallback` (a logger, and with it to the
daemon's own log), or nowhere when it is None.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from redpss.core.logging.journal import JournalHandler
from redpss.core.logging.setup import LogContext, journal_socket_path

T = TypeVar("T")
QUEUE_SIZE = 20000
QUEUE_BYTES = 16 * 1024 * 1024  # text queued at most, by the items' `size`
PACING = 0.1  # seconds the thread waits after a wake-up, so that what comes meanwhile goes in the same burst
REPORT_EVERY = 10.0  # seconds between two counts of dropped entries while a burst lasts


class JournalQueue(Generic[T]):
    """Items (`render` makes each a LogRecord, in the thread) queued for journald."""

    def __init__(
        self,
        context: LogContext,
        render: Callable[[T], logging.LogRecord],
        *,
        fallback: logging.Logger | None,
        note: logging.Logger,
        what: str,
        kept: str,
        size: Callable[[T], int],
        queue_size: int = QUEUE_SIZE,
        queue_bytes: int = QUEUE_BYTES,
    ) -> None:
        """Entries dropped are counted in a WARNING to `note`: "<n> <what> were not sent to journald ...; <kept>"."""
        socket_path = journal_socket_path()
        self.handler: logging.Handler | None = None
        if socket_path is not None:
            self.handler = JournalHandler(context.journal_fields(), socket_path)
        self.render = render
        self.fallback = fallback
        self.note, self.what, self.kept = note, what, kept
        self.size = size
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.dropped = 0  # entries the queue had no room for (counted by the submitting thread)
        self.unmade = 0  # entries that could not be made into a record (counted by the sending thread)
        self.queued_bytes = 0  # the `size` of what is queued
        self._lock = threading.Lock()  # the queue and queued_bytes change together, from both threads
        self._queue: collections.deque[tuple[T, int]] = collections.deque()  # appended by the loop, taken by the thread
        self._wake = threading.Event()  # set when items wait and the thread has not been told yet
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{context.service}-journal", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T]) -> None:
        taken = 0
        with self._lock:
            for item in items:
                size = self.size(item)
                if len(self._queue) >= self.queue_size or self.queued_bytes + size > self.queue_bytes:
                    self.dropped += 1
                    continue
                self._queue.append((item, size))
                self.queued_bytes += size
                taken += 1
        if taken and not self._wake.is_set():
            self._wake.set()

    def _take(self) -> T | None:
        with self._lock:
            if not self._queue:
                return None
            item, size = self._queue.popleft()
            self.queued_bytes -= size
            return item

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (within `timeout`: journald may be stuck), then stop the thread."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # still waiting for journald: what is left is not sent
            with self._lock:
                left = len(self._queue)
                self._queue.clear()
                self.queued_bytes = 0
            self.note.warning(
                "%d %s were not sent to journald before the stop (it did not keep up); %s", left, self.what, self.kept
            )
        elif self.handler is not None:
            self.handler.close()

    def _run(self) -> None:
        self._reported, self._reported_at = 0, 0.0
        while True:
            self._wake.wait()
            self._closing.wait(PACING)  # pacing: items submitted meanwhile go out in this burst (returns at close)
            self._wake.clear()
            self._reported_at = time.monotonic()  # a burst says its count at its end, or after REPORT_EVERY
            while (item := self._take()) is not None:
                self._emit(item)
                self._report_dropped(final=False)
            self._report_dropped(final=True)
            if self._closing.is_set():
                return

    def _report_dropped(self, final: bool) -> None:
        """Say how many entries were dropped since the last time: at the end of a burst, and during a long one
        (journald taking little) at most every REPORT_EVERY seconds."""
        if self.dropped == self._reported or not (final or time.monotonic() - self._reported_at >= REPORT_EVERY):
            return
        self.note.warning(
            "%d %s were not sent to journald (it did not keep up); %s",
            self.dropped - self._reported,
            self.what,
            self.kept,
        )
        self._reported, self._reported_at = self.dropped, time.monotonic()

    def _emit(self, item: T) -> None:
        try:
            if self.handler is not None:
                self.handler.handle(self.render(item))
            elif self.fallback is not None:
                self.fallback.handle(self.render(item))
        except Exception:  # one entry that cannot be made must not end the thread (and with it all forwarding)
            self.unmade += 1  # the thread's own count: `dropped` is the loop's
            if self.unmade == 1:
                self.note.exception("an entry for journald could not be made; it and any like it are left out")
