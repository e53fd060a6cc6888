"""rest/cache.py: an old value is answered only so old, and a failed computation is shared by its waiters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from redpss.rest.cache import STALE_PERIODS, STALE_WAIT, Cached

PERIOD = 0.05


def test_a_value_too_old_is_not_answered_the_request_waits_for_a_fresh_one() -> None:
    computed: list[float] = []

    def compute() -> float:
        computed.append(time.monotonic())
        return computed[-1]

    async def scenario() -> None:
        cache = Cached(PERIOD, compute)
        first = await cache.get()
        assert await cache.get() == first  # within its period: the same
        time.sleep(PERIOD * (STALE_PERIODS + 1))  # an idle worker: the time is what is tested, nothing to wait for
        assert await cache.get() > first  # not the old value while a refresh runs: a fresh one
        assert len(computed) == 2

    asyncio.run(scenario())


def test_a_too_old_value_is_answered_when_no_fresh_one_comes_in_time() -> None:
    """/health asks JMON and SCHED: one that hangs must not make the master's probe (5 s) wait for it."""
    slow = threading.Event()
    calls = 0

    def compute() -> int:
        nonlocal calls
        calls += 1
        if calls > 1:
            slow.wait(10)
        return calls

    async def scenario() -> None:
        cache = Cached(PERIOD, compute)
        assert await cache.get() == 1
        time.sleep(PERIOD * (STALE_PERIODS + 1))  # the time is what is tested, nothing to wait for
        started = time.monotonic()
        assert await cache.get() == 1  # the refresh hangs: the old value, after STALE_WAIT
        assert STALE_WAIT <= time.monotonic() - started < STALE_WAIT + 2
        slow.set()

    asyncio.run(scenario())


def test_waiters_share_one_failed_computation() -> None:
    calls = 0
    release = threading.Event()

    def compute() -> int:
        nonlocal calls
        calls += 1
        release.wait(10)
        raise ConnectionError("the database does not answer")

    async def scenario() -> None:
        cache: Cached[int] = Cached(60.0, compute)
        waiting = [asyncio.ensure_future(cache.get()) for _ in range(10)]
        await asyncio.sleep(0)  # let them all queue on the computation (scheduling, not a wait for a condition)
        release.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(o, ConnectionError) for o in outcomes), outcomes
        assert calls == 1  # not one more computation per waiter, one after the other
        with pytest.raises(ConnectionError):
            await cache.get()  # within the period after the failure: the same answer, at once
        assert calls == 1
        cache.drop()  # a change made through this worker: computed anew
        with pytest.raises(ConnectionError):
            await cache.get()
        assert calls == 2

    asyncio.run(scenario())
