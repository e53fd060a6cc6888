"""What an unauthenticated peer may cost devdb: how many may wait at once, how fast one address may guess passwords,
and how often refusals reach the log.

A local user shares 127.0.0.1 with the legitimate clients, so refusing *new* connections at a cap would let anyone
holding that many idle sockets lock everybody out; the cap on connections that have not logged in therefore cuts
the *oldest* one, which an attacker must keep replacing while a real client logs in within milliseconds. Failed
logins are slowed down per client address once a burst starts, so a guesser gets a few tries per second at most
while a client at another address logs in as usual.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_UNAUTHENTICATED = 64  # connections that have not logged in yet; beyond it the oldest one is cut
LOGIN_TIMEOUT = 10.0  # seconds from accept to a completed login (TLS, WebSocket upgrade and both login messages)
LOG_INTERVAL = 10.0  # seconds between two log lines about the same kind of refusal
FREE_FAILED_LOGINS = 5  # failed logins per address before further ones are slowed down
FAILED_LOGIN_WINDOW = 60.0  # seconds without a failed login that end an address's burst
FIRST_LOGIN_DELAY = 0.25  # seconds between attempts once slowed down, doubling with each failure ...
MAX_LOGIN_DELAY = 4.0  # ... up to this
MAX_TRACKED_ADDRESSES = 10_000  # addresses remembered by the throttle; the stalest are forgotten first


class RateLimitedLog:
    """One WARNING per interval for a kind of refusal, saying how many were not logged since the last line.

    A flood of refusals must not become a flood of log lines (which would be a second denial of service, on the disk
    and the journal), yet the operator must see that refusals happen and roughly how many.
    """

    def __init__(self, logger: logging.Logger, interval: float = LOG_INTERVAL) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last = -interval
        self._unlogged = 0
        self._latest: tuple[str, tuple[object, ...]] = ("", ())

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                self._unlogged += 1
                self._latest = (message, args)
                return
            unlogged, self._unlogged, self._last = self._unlogged, 0, now
        self._emit(message, args, unlogged)

    def flush(self) -> None:
        """Log the latest unlogged event once the interval is over, so the count of a flood that stopped is seen."""
        now = time.monotonic()
        with self._lock:
            if not self._unlogged or now - self._last < self._interval:
                return
            unlogged, self._unlogged, self._last = self._unlogged - 1, 0, now
            message, args = self._latest
        self._emit(message, args, unlogged)

    def _emit(self, message: str, args: tuple[object, ...], unlogged: int) -> None:
        if unlogged:
            message += f" ({unlogged} more like this in the last {self._interval:.0f} s not logged)"
        self._logger.warning(message, *args)


class Admission:
    """The connections that have not logged in yet; admitting one over the cap cuts the oldest."""

    def __init__(self, cap: int, logger: logging.Logger) -> None:
        self.cap = cap
        self._lock = threading.Lock()
        self._waiting: OrderedDict[int, Callable[[], None]] = OrderedDict()
        self._log = RateLimitedLog(logger)

    def admit(self, key: int, cut: Callable[[], None], peer: str) -> None:
        with self._lock:
            self._waiting[key] = cut
            evicted = self._waiting.popitem(last=False) if len(self._waiting) > self.cap else None
        if evicted is not None:
            self._log.warning(
                "devdb: more than %d connections have not logged in; cut the oldest (newest from %s)", self.cap, peer
            )
            evicted[1]()

    def release(self, key: int) -> None:
        """The connection logged in, became a transport tunnel, or ended."""
        with self._lock:
            self._waiting.pop(key, None)

    def count(self) -> int:
        with self._lock:
            return len(self._waiting)

    def flush_log(self) -> None:
        self._log.flush()

    def cut_all(self) -> None:
        with self._lock:
            waiting = list(self._waiting.values())
            self._waiting.clear()
        for cut in waiting:
            cut()


@dataclass
class _Burst:
    failures: int = 0
    refused: int = 0
    last_failure: float = 0.0
    next_slot: float = 0.0


class LoginThrottle:
    """Failed logins per client address: the first few are free, then attempts are spaced further and further apart.

    `admit()` is asked before the credentials are checked (also for a correct password, or the spacing would tell a
    guesser which reply to wait for); it answers how long to wait, or None when the wait would not fit the login
    deadline, so the attempt is refused at once. A burst is logged when it starts and summed up when it ends.
    """

    def __init__(
        self, logger: logging.Logger, free: int = FREE_FAILED_LOGINS, window: float = FAILED_LOGIN_WINDOW
    ) -> None:
        self._logger = logger
        self._free = free
        self._window = window
        self._lock = threading.Lock()
        self._bursts: OrderedDict[str, _Burst] = OrderedDict()

    def admit(self, address: str, time_left: float) -> float | None:
        now = time.monotonic()
        with self._lock:
            burst = self._current(address, now)
            if burst is None or burst.failures < self._free:
                return 0.0
            allowed_at = max(now, burst.next_slot)
            if allowed_at - now > time_left:
                burst.refused += 1
                return None
            delay = min(MAX_LOGIN_DELAY, FIRST_LOGIN_DELAY * 2 ** (burst.failures - self._free))
            burst.next_slot = allowed_at + delay
            return allowed_at - now

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            burst = self._current(address, now)
            if burst is None:
                burst = self._bursts[address] = _Burst()
                self._forget_stalest()
            burst.failures += 1
            burst.last_failure = now
            self._bursts.move_to_end(address)
            starts = burst.failures == self._free
        if starts:
            self._logger.warning(
                "devdb: %d failed logins from %s; its further logins are slowed down (up to %.0f s apart) until it "
                "has had none for %.0f s",
                self._free,
                address,
                MAX_LOGIN_DELAY,
                self._window,
            )

    def succeeded(self, address: str) -> None:
        with self._lock:
            burst = self._bursts.pop(address, None)
        if burst is not None:
            self._ended(address, burst)

    def expire(self) -> None:
        """End (and sum up) the bursts of addresses that have had no failed login for the window."""
        now = time.monotonic()
        with self._lock:
            for address in [a for a, burst in self._bursts.items() if now - burst.last_failure > self._window]:
                self._ended(address, self._bursts.pop(address))

    def throttled(self, address: str) -> bool:
        with self._lock:
            burst = self._current(address, time.monotonic())
            return burst is not None and burst.failures >= self._free

    def _current(self, address: str, now: float) -> _Burst | None:
        burst = self._bursts.get(address)
        if burst is not None and now - burst.last_failure > self._window:
            del self._bursts[address]
            self._ended(address, burst)
            return None
        return burst

    def _forget_stalest(self) -> None:
        while len(self._bursts) > MAX_TRACKED_ADDRESSES:
            address, burst = self._bursts.popitem(last=False)
            self._ended(address, burst)

    def _ended(self, address: str, burst: _Burst) -> None:
        if burst.failures >= self._free:
            self._logger.warning(
                "devdb: the burst of failed logins from %s is over: %d failed, %d refused without a check",
                address,
                burst.failures,
                burst.refused,
            )
