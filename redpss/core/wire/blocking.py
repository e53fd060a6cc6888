"""The blocking wire client of command-line tools and threads: connect, hello, then request/reply; no asyncio."""

from __future__ import annotations

import collections
import socket
import time
from pathlib import Path

from redpss.core.wire.framing import (
    MAX_LINE,
    Code,
    Message,
    WireError,
    decode,
    encode,
    hello_message,
    is_shedding,
    refusal_error,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    import ssl
    from typing import Any

HELD_EVENTS = 1000  # events kept for next_event() that arrived while a reply was awaited
SHED_RETRY_PAUSE = 0.2  # a client refused for a connection cap tries again after this, within its timeout


class BlockingClient:
    """A synchronous client for CLIs: connect (optionally over TLS), hello, then request/reply."""

    def __init__(
        self,
        address: tuple[str, int] | Path,
        secret: str,
        client: str,
        timeout: float = 10.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_message: int = MAX_LINE,
    ) -> None:
        self.address = address
        self.max_message = max_message
        # pushed events that arrived while waiting for replies, the latest HELD_EVENTS: a SCHED worker waiting days
        # for an ACTION run's reply gets JEXEC's "running" events all along and reads none of them
        self.events: collections.deque[Message] = collections.deque(maxlen=HELD_EVENTS)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._open(secret, client, timeout, ssl_context)
                return
            except WireError as exc:
                if not is_shedding(exc) or time.monotonic() + SHED_RETRY_PAUSE > deadline:
                    raise
            time.sleep(SHED_RETRY_PAUSE)  # pacing: the server is shedding a flood of connections

    def _open(self, secret: str, client: str, timeout: float, ssl_context: ssl.SSLContext | None) -> None:
        if isinstance(self.address, Path):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = str(self.address)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = self.address
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(target)
            if ssl_context is not None:
                host = None if isinstance(self.address, Path) else self.address[0]
                self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host)
        except OSError as exc:
            self.sock.close()
            raise WireError(f"cannot connect to {self.describe()}: {exc.strerror or exc}") from exc
        self.file = self.sock.makefile("rb")
        try:
            reply = self._exchange(hello_message(secret, client))
        except WireError:
            self.close()
            raise
        if not reply.get("ok"):
            self.close()
            raise refusal_error(reply, "refused")

    def describe(self) -> str:
        return str(self.address) if isinstance(self.address, Path) else "{}:{}".format(*self.address)

    def _readline(self) -> bytes:
        line = self.file.readline(self.max_message + 1)
        if not line:
            raise WireError(f"{self.describe()} closed the connection")
        if not line.endswith(b"\n"):
            raise WireError(f"{self.describe()} sent a message longer than {self.max_message} bytes", Code.TOO_LARGE)
        return line

    def _exchange(self, message: Message) -> Message:
        try:
            self.sock.sendall(encode(message))
            while True:
                reply = decode(self._readline())
                if "event" not in reply:
                    return reply
                self.events.append(reply)
        except OSError as exc:
            raise WireError(f"{self.describe()}: {exc}") from exc

    def next_event(self, timeout: float) -> Message:
        """The next pushed event (after `subscribe`); WireError when none arrives within `timeout` seconds."""
        if self.events:
            return self.events.popleft()
        previous = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            line = self._readline()
        except TimeoutError as exc:
            raise WireError(f"no event from {self.describe()} within {timeout} s") from exc
        finally:
            self.sock.settimeout(previous)
        return decode(line)

    def request(self, op: str, **fields: Any) -> Message:
        """Send one request; WireError when the peer answers ok=false (its error text is the message)."""
        reply = self._exchange({"op": op, **fields})
        if not reply.get("ok"):
            raise refusal_error(reply, f"{op} failed")
        return reply

    def request_durable(self, op: str, **fields: Any) -> Message:
        """Like `request`, and WireError unless the server said the data is safe."""
        reply = self.request(op, **fields)
        if reply.get("durable") is not True:
            raise WireError(f"{self.describe()} acknowledged {op} without saying it is durable")
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
