"""Framing and authentication of RED-PSS's own TCP and unix-socket services: JSON, one message per line.

A client's first message is `{"op": "hello", "secret": ..., "client": ...}`; the server answers `{"ok": true}` or
`{"ok": false, "error": ...}` and closes. After that every request gets exactly one reply (`{"ok": true, ...}` or
`{"ok": false, "error": "..."}`; a request's optional "seq" is echoed so a client can match replies, leaving
"id" free for the request's own fields), and a server may push messages that carry an "event" key to clients that asked
for them. Lines are capped so a confused peer cannot make a daemon buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redpss.core.errors import RedpssError
from redpss.core.net import explain_bind_error

log = logging.getLogger("redpss.core.wire")

MAX_LINE = 16 * 1024 * 1024
Message = dict[str, Any]


class WireError(RedpssError):
    """The peer broke the protocol, refused us, or is not there."""


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> Message:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise WireError(f"not a JSON message: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise WireError(f"a message must be a JSON object, got {type(message).__name__}")
    return message


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next message, or None at end of stream."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise WireError(f"message longer than {MAX_LINE} bytes") from exc
    if not line:
        return None
    return decode(line)


class Connection:
    """One authenticated client of a JsonLineServer; `send` pushes an event to it."""

    def __init__(self, writer: asyncio.StreamWriter, client: str) -> None:
        self.writer = writer
        self.client = client
        self.subscribed = False

    async def send(self, message: Message) -> None:
        self.writer.write(encode(message))
        await self.writer.drain()


Handler = Callable[[Message, Connection], Awaitable[Message]]


class JsonLineServer:
    """Serves authenticated JSON-line requests on TCP (host, port) or a unix socket path."""

    def __init__(self, handler: Handler, secret: str, name: str) -> None:
        self.handler = handler
        self.secret = secret
        self.name = name
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    async def start_tcp(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE, reuse_address=True)
        except OSError as exc:
            raise explain_bind_error(exc, host, port) from exc  # names the process holding the port

    async def start_unix(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, str(path), limit=MAX_LINE)
        path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                connection.writer.close()
            await self._server.wait_closed()
            self._server = None

    async def broadcast(self, event: Message) -> None:
        """Push an event to every subscribed client; a client that went away is dropped."""
        for connection in list(self.connections):
            if connection.subscribed:
                try:
                    await connection.send(event)
                except (ConnectionError, RuntimeError):
                    self.connections.discard(connection)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection: Connection | None = None
        try:
            hello = await read_message(reader)
            if hello is None:
                return
            if hello.get("op") != "hello" or not hmac.compare_digest(str(hello.get("secret", "")), self.secret):
                writer.write(encode({"ok": False, "error": f"{self.name}: authentication failed"}))
                await writer.drain()
                log.warning("%s: refused a client that did not present the instance secret", self.name)
                return
            connection = Connection(writer, str(hello.get("client", "?")))
            self.connections.add(connection)
            await connection.send({"ok": True, "server": self.name})
            while (request := await read_message(reader)) is not None:
                try:
                    reply = await self.handler(request, connection)
                except RedpssError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except Exception as exc:
                    log.exception("%s: request %s failed", self.name, request.get("op"))
                    reply = {"ok": False, "error": f"internal error: {exc}"}
                if "seq" in request:
                    reply["seq"] = request["seq"]
                await connection.send(reply)
        except (WireError, ConnectionError) as exc:
            log.debug("%s: client connection ended: %s", self.name, exc)
        finally:
            if connection is not None:
                self.connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class BlockingClient:
    """A synchronous client for CLIs: connect, hello, then request/reply."""

    def __init__(self, address: tuple[str, int] | Path, secret: str, client: str, timeout: float = 10.0) -> None:
        self.address = address
        if isinstance(address, Path):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = str(address)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = address
        self.sock.settimeout(timeout)
        self.events: list[Message] = []  # pushed events that arrived while waiting for replies
        try:
            self.sock.connect(target)
        except OSError as exc:
            self.sock.close()
            raise WireError(f"cannot connect to {self.describe()}: {exc.strerror or exc}") from exc
        self.file = self.sock.makefile("rb")
        reply = self._exchange({"op": "hello", "secret": secret, "client": client})
        if not reply.get("ok"):
            self.close()
            raise WireError(str(reply.get("error", "refused")))

    def describe(self) -> str:
        return str(self.address) if isinstance(self.address, Path) else "{}:{}".format(*self.address)

    def _exchange(self, message: Message) -> Message:
        try:
            self.sock.sendall(encode(message))
            while True:
                line = self.file.readline(MAX_LINE)
                if not line:
                    raise WireError(f"{self.describe()} closed the connection")
                reply = decode(line)
                if "event" not in reply:
                    return reply
                self.events.append(reply)
        except OSError as exc:
            raise WireError(f"{self.describe()}: {exc}") from exc

    def next_event(self, timeout: float) -> Message:
        """The next pushed event (after `subscribe`); WireError when none arrives within `timeout` seconds."""
        if self.events:
            return self.events.pop(0)
        previous = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            line = self.file.readline(MAX_LINE)
        except TimeoutError as exc:
            raise WireError(f"no event from {self.describe()} within {timeout} s") from exc
        finally:
            self.sock.settimeout(previous)
        if not line:
            raise WireError(f"{self.describe()} closed the connection")
        return decode(line)

    def request(self, op: str, **fields: Any) -> Message:
        """Send one request; WireError when the peer answers ok=false (its error text is the message)."""
        reply = self._exchange({"op": op, **fields})
        if not reply.get("ok"):
            raise WireError(str(reply.get("error", f"{op} failed")))
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """An asyncio client that can both request and receive pushed events (JMON -> SCHED)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self.events: asyncio.Queue[Message] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def connect_tcp(cls, host: str, port: int, secret: str, client: str) -> AsyncClient:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
        except OSError as exc:
            raise WireError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        writer.write(encode({"op": "hello", "secret": secret, "client": client}))
        await writer.drain()
        reply = await read_message(reader)
        if not reply or not reply.get("ok"):
            writer.close()
            raise WireError(str((reply or {}).get("error", f"{host}:{port} closed the connection")))
        self = cls(reader, writer)
        self._reader_task = asyncio.create_task(self._read_loop())
        return self

    async def _read_loop(self) -> None:
        try:
            while (message := await read_message(self.reader)) is not None:
                if "event" in message:
                    await self.events.put(message)
                elif (future := self._pending.pop(int(message.get("seq", -1)), None)) is not None:
                    future.set_result(message)
        except (WireError, ConnectionError) as exc:
            log.debug("connection ended: %s", exc)
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WireError("connection closed"))
            self._pending.clear()

    async def request(self, op: str, timeout: float = 30.0, **fields: Any) -> Message:
        if self.closed.is_set():
            raise WireError("connection closed")
        self._next_id += 1
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        self.writer.write(encode({**fields, "op": op, "seq": self._next_id}))
        await self.writer.drain()
        return await asyncio.wait_for(future, timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
