"""A value computed in a thread at most once per period, shared by the concurrent requests of one worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class Cached(Generic[T]):
    def __init__(self, seconds: float, compute: Callable[[], T]) -> None:
        self.seconds = seconds
        self.compute = compute
        self._value: T | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        if self._value is not None and time.monotonic() < self._until:
            return self._value
        async with self._lock:  # one computation for all who wait; they share its result
            if self._value is None or time.monotonic() >= self._until:
                self._value = await run_in_threadpool(self.compute)
                self._until = time.monotonic() + self.seconds
            return self._value

    def drop(self) -> None:
        self._until = 0.0
