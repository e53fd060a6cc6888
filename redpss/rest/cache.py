"""A value computed in a thread at most once per period, shared by the concurrent requests of one worker.

Once there is a value, a request never waits for the next one: past its period the old value is answered while one
refresh runs in the background (so /health and the job lists keep their latency while JMON is asked or the
database read). drop() forgets the value, and the next request waits for a fresh one: a change made through this
worker is visible in its next answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
log = logging.getLogger("redpss.rest.cache")


class Cached(Generic[T]):
    def __init__(self, seconds: float, compute: Callable[[], T]) -> None:
        self.seconds = seconds
        self.compute = compute
        self._value: T | None = None
        self._until = 0.0
        self._generation = 0  # bumped by drop(): a refresh begun before it must not store its older value
        self._refresh: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        value = self._value
        if value is not None:
            if time.monotonic() >= self._until and self._refresh is None:
                self._refresh = asyncio.create_task(self._refresh_in_background())
            return value
        async with self._lock:  # no value yet: one computation for all who wait
            if self._value is None:
                generation = self._generation
                computed = await run_in_threadpool(self.compute)
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
