"""A value computed in a thread at most once per period, shared by the concurrent requests of one worker.

Once there is a value, a request does not wait for the next one: past its period the old value is answered while
one refresh runs in the background (so /health and the job lists keep their latency while JMON is asked or the
database read), but only up to STALE_PERIODS periods old: a worker idle for an hour must not answer its first
request with an hour-old "ok" while a fresh one comes within STALE_WAIT seconds (after that the old value is
answered all the same: the master's probe of /health must not fail, and the watchdog restart the API, because a
daemon that /health asks is slow). drop() forgets the value, and the next request waits for a fresh one: a change made
through this worker is visible in its next answer. A computation that failed is the answer of every request that
waited for it (and of those within one period after), not one more computation each, one after the other (ten
waiters on a database that does not answer would wait ten connect timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
log = logging.getLogger("redpss.rest.cache")
STALE_PERIODS = 5  # a value older than this many periods is answered only if no fresh one comes within STALE_WAIT
STALE_WAIT = 1.0


class Cached(Generic[T]):
    def __init__(self, seconds: float, compute: Callable[[], T]) -> None:
        self.seconds = seconds
        self.compute = compute
        self._value: T | None = None
        self._until = 0.0
        self._failed: tuple[float, Exception] | None = None  # the last computation's error, and until when it holds
        self._generation = 0  # bumped by drop(): a refresh begun before it must not store its older value
        self._refresh: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        value, now = self._value, time.monotonic()
        if value is not None:
            if now >= self._until and self._refresh is None:
                self._refresh = asyncio.create_task(self._refresh_in_background())
            refresh = self._refresh
            if refresh is not None and now - self._until >= self.seconds * (STALE_PERIODS - 1):
                with contextlib.suppress(TimeoutError):  # too old: a moment for the fresh one
                    await asyncio.wait_for(asyncio.shield(refresh), STALE_WAIT)
                return self._value if self._value is not None else value
            return value
        async with self._lock:  # no value to answer: one computation for all who wait
            if self._failed is not None and time.monotonic() < self._failed[0]:
                raise self._failed[1]  # what the computation they waited for ended with
            if self._value is None:
                generation = self._generation
                try:
                    computed = await run_in_threadpool(self.compute)
                except Exception as exc:
                    self._failed = (time.monotonic() + self.seconds, exc)
                    raise
                self._failed = None
                self._store(computed, generation)
                return computed
            return self._value

    async def _refresh_in_background(self) -> None:
        generation = self._generation
        try:
            self._store(await run_in_threadpool(self.compute), generation)
        except Exception as exc:  # the next request that finds no value computes again and answers the error
            log.warning("refresh failed, answering from scratch next time: %s", exc)
            self.drop()
        finally:
            self._refresh = None

    def _store(self, value: T, generation: int) -> None:
        if generation == self._generation:
            self._value = value
            self._until = time.monotonic() + self.seconds

    def drop(self) -> None:
        self._generation += 1
        self._value = None
        self._failed = None
