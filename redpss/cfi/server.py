"""The FTPS listeners and pyftpdlib's IO loop, run in a thread of their own beside the daemon's asyncio loop.

pyftpdlib's loop is not thread-safe, so the daemon never touches it directly: it queues a request (stop accepting,
close) that the loop's own heartbeat picks up. The heartbeat also stamps the time, so `healthy()` notices a loop
that is stuck (a read on a hung file system, a bug spinning in a handler) and the watchdog restarts the daemon.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from redpss.cfi.handlers import CfiHandler, Counters, ImplicitCfiHandler, ListenerSettings, handler_class
from redpss.core.errors import StartupError

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

log = logging.getLogger("redpss.cfi")

HEARTBEAT = 0.5  # seconds between the loop's time stamps (and its look at queued requests)
STALLED_AFTER = 10.0  # seconds without a stamp after which the loop counts as stuck


@dataclass(frozen=True)
class Listener:
    host: str
    port: int  # 0: switched off
    implicit: bool
    keys: str  # the config keys that set it, for the error an operator reads


class CfiServer:
    """Both listeners on one pyftpdlib IO loop, started by start() and served by run() in its own thread."""

    def __init__(
        self, listeners: list[Listener], settings: ListenerSettings, stalled_after: float = STALLED_AFTER
    ) -> None:
        self.stalled_after = stalled_after
        self.listeners = [listener for listener in listeners if listener.port]
        self.settings = settings
        self.counters: Counters = settings.counters
        self.ioloop = IOLoop()
        self.servers: list[FTPServer] = []
        self.requests: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.last_beat = time.monotonic()
        self.accepting = False
        self.addresses: list[tuple[str, int]] = []

    def start(self) -> None:
        """Bind every listener; StartupError (exit 3) naming the config keys of a port that cannot be had."""
        for listener in self.listeners:
            base: type[CfiHandler] = ImplicitCfiHandler if listener.implicit else CfiHandler
            handler = handler_class(base, self.settings)
            try:
                server = FTPServer((listener.host, listener.port), handler, ioloop=self.ioloop, backlog=128)
            except OSError as exc:
                self.ioloop.close()
                raise StartupError(
                    f"cannot listen on {listener.host}:{listener.port} ({listener.keys}): {exc.strerror or exc}"
                ) from exc
            server.max_cons = 256
            server.max_cons_per_ip = 0  # the database's nodes may open many connections from one address
            self.servers.append(server)
            self.addresses.append(server.address)
        self.accepting = True
        self.ioloop.call_every(HEARTBEAT, self._beat)

    def run(self) -> None:
        """Serve until close() is handled by the loop (blocks: run it in a thread)."""
        self.last_beat = time.monotonic()
        try:
            self.ioloop.loop(timeout=HEARTBEAT, blocking=True)  # a poll never waits longer than one heartbeat
        finally:
            self.ioloop.close()  # the loop also ends when the last listener and session close: free its poller

    def _beat(self) -> None:
        self.last_beat = time.monotonic()
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            request()

    def healthy(self) -> bool:
        """False once the loop has not stamped its heartbeat for `stalled_after` seconds."""
        return time.monotonic() - self.last_beat < self.stalled_after

    def stalled_for(self) -> float:
        return max(0.0, time.monotonic() - self.last_beat)

    def submit(self, request: Callable[[], None]) -> None:
        """Run `request` on the loop's thread at its next heartbeat."""
        self.requests.put(request)

    def stop_accepting(self) -> None:
        """New control connections are refused; running sessions go on (queued to the loop)."""
        self.submit(self._close_listeners)

    def _close_listeners(self) -> None:
        for server in self.servers:
            server.close()
        self.accepting = False

    def sessions(self) -> int:
        """Control connections open now (read from another thread: a snapshot)."""
        return sum(1 for handler in list(self.ioloop.socket_map.values()) if isinstance(handler, CfiHandler))

    def transfers(self) -> int:
        """Control connections with a data transfer under way (a snapshot)."""
        return sum(
            1
            for handler in list(self.ioloop.socket_map.values())
            if isinstance(handler, CfiHandler) and handler.data_channel is not None
        )

    def close(self) -> None:
        """Close every listener and connection; run() returns soon after (queued to the loop)."""
        self.submit(self.ioloop.close)

    def close_unstarted(self) -> None:
        """Free the listeners of a server whose loop never ran."""
        self.ioloop.close()


def serve_in_thread(server: CfiServer) -> threading.Thread:
    """Run `server` in a daemon thread (tests and the benchmark; the daemon runs it through asyncio.to_thread)."""
    thread = threading.Thread(target=server.run, name="cfi-ioloop", daemon=True)
    thread.start()
    return thread
