"""A real JsonLineServer in a thread of its own, for tests that talk to it with real sockets.

The handler answers a few test ops: `echo` (the request back), `push` (an event to subscribers), `subscribe`,
`fail` (an unexpected exception), `refuse` (a RequestError), `store` (a durable op answered with `durable()`),
`sloppy_store` (a durable op answered with a plain ok, which the server must not pass on), `held` (answers only when
the test calls `release()`), anything else UNKNOWN_OP. `store`'s acknowledgements are folded for a client that asks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Collection, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from redpss.core.wire import Connection, JsonLineServer, Limits, Message, RequestError, durable, unknown_op

SECRET = "s3cret-Ω-for-tests"
T = TypeVar("T")


class WireServerThread:
    def __init__(
        self,
        *,
        limits: Limits | None = None,
        unix_path: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        secret: str | Collection[str] = SECRET,
        payload_ops: Collection[str] = (),
    ) -> None:
        self.limits = limits
        self.payload_ops = payload_ops
        self.unix_path = unix_path
        self.ssl_context = ssl_context
        self.secret = secret
        self.loop = asyncio.new_event_loop()
        self.server: JsonLineServer | None = None
        self.stored: list[Message] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._release: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="wire-test-server")

    # -- the server's side ------------------------------------------------------------------------------------------
    async def handle(self, request: Message, connection: Connection) -> Message:
        ops: dict[str, Callable[[], Awaitable[Message]]] = {
            "echo": lambda: self._echo(request, connection),
            "subscribe": lambda: self._subscribe(connection),
            "push": lambda: self._push(request),
            "fail": self._fail,
            "refuse": self._refuse,
            "store": lambda: self._store(request),
            "sloppy_store": self._sloppy_store,
            "held": self._held,
        }
        op = request["op"]
        return await ops[op]() if op in ops else unknown_op(op, ops)

    async def _echo(self, request: Message, connection: Connection) -> Message:
        return {"ok": True, "echo": request, "client": connection.client}

    async def _subscribe(self, connection: Connection) -> Message:
        connection.subscribed = True
        return {"ok": True}

    async def _push(self, request: Message) -> Message:
        assert self.server is not None
        await self.server.broadcast({"event": "pushed", "n": request.get("n"), "blob": request.get("blob")})
        return {"ok": True}

    async def _fail(self) -> Message:
        raise RuntimeError("the handler broke")

    async def _refuse(self) -> Message:
        raise RequestError("field x must be a number")

    async def _store(self, request: Message) -> Message:
        self.stored.append(request)
        return durable(stored=len(self.stored))

    async def _sloppy_store(self) -> Message:
        return {"ok": True}

    async def _held(self) -> Message:
        assert self._release is not None
        await self._release.wait()
        return {"ok": True, "late": True}

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._release = asyncio.Event()
        self.server = JsonLineServer(
            self.handle,
            self.secret,
            "TEST",
            limits=self.limits,
            durable_ops={"store", "sloppy_store"},
            payload_ops=self.payload_ops,
            foldable_ops={"store"},
        )
        if self.unix_path is not None:
            await self.server.start_unix(self.unix_path)
        else:
            await self.server.start_tcp("127.0.0.1", 0, ssl_context=self.ssl_context)
        self._ready.set()
        await self._stop.wait()
        await self.server.close()

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by __enter__/__exit__
            self._error = exc
            self._ready.set()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    # -- the test's side --------------------------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int] | Path:
        if self.unix_path is not None:
            return self.unix_path
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return (host, port)

    @property
    def port(self) -> int:
        address = self.address
        assert isinstance(address, tuple)
        return address[1]

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Run a coroutine on the server's loop and return its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(make(), self.loop)
        return future.result(timeout)

    def release(self) -> None:
        """Let every `held` request answer."""
        assert self._release is not None
        self.loop.call_soon_threadsafe(self._release.set)

    def unauthenticated(self) -> int:
        async def count() -> int:
            assert self.server is not None
            return self.server.unauthenticated

        return self.run(count)

    def authenticated(self) -> int:
        async def count() -> int:
            assert self.server is not None
            return len(self.server.connections)

        return self.run(count)

    def raw(self, source: str | None = None) -> socket.socket:
        """A connected plain socket (no hello sent) with a 10 s timeout; from the loopback address `source` when
        given (127.0.0.2 stands for another machine: the server listens on 127.0.0.1)."""
        address = self.address
        family = socket.AF_UNIX if isinstance(address, Path) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(10)
        if source is not None:
            sock.bind((source, 0))
        sock.connect(str(address) if isinstance(address, Path) else address)
        return sock

    def __enter__(self) -> WireServerThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def read_reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or 10 s pass): its reply lines."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def send_and_read(sock: socket.socket, payload: bytes) -> bytes:
    """Send `payload`, end our side, and read what the server answers until it closes. A server that refuses
    mid-send may reset the connection; its reply may still be readable, so that is not an error here."""
    try:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return read_reply(sock)


def main() -> None:
    """`python -m tests.support.wire_server`: serve on a free loopback port (printed on stdout) until SIGTERM.

    A separate process, so a test can read its memory (VmRSS, VmHWM) and its log (stderr) from outside.
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with WireServerThread() as server:
        print(server.port, flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
