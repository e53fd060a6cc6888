"""Framing and authentication of RED-PSS's own TCP and unix-socket services: JSON, one message per line.

A client's first message is `{"op": "hello", "version": 1, "secret": ..., "client": ...}`; the server answers
`{"ok": true, "server": ..., "version": 1}` or refuses with `{"ok": false, "code": ..., "error": ...}` and closes.
After that every request gets exactly one reply (`{"ok": true, ...}` or `{"ok": false, "code": ..., "error": ...}`;
a request's optional "seq" is echoed so a client can match replies, leaving "id" free for the request's own fields),
and a server may push messages that carry an "event" key to clients that asked for them.

What an unauthenticated peer can cost is bounded per server (`Limits`): a small line, a short deadline for the hello,
a cap on connections that have not said hello (the oldest is dropped, so a flood never locks out a real client), and
a separate cap on authenticated ones. Every refusal gets a reply with a stable `Code` and one WARNING line (rate
limited under a flood), never a traceback. The codes and the durable-acknowledgement contract are documented in
docs/protocols.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import ssl
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from redpss.core.errors import RedpssError
from redpss.core.net import explain_bind_error

log = logging.getLogger("redpss.core.wire")

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
MAX_LINE = 16 * 1024 * 1024  # default size of one message after the hello
MAX_HELLO_LINE = 4096  # size of any line before the hello succeeded
CLOSE_GRACE = 2.0  # seconds close() lets requests in progress finish before cancelling them
LINGER_SECONDS = 1.0  # after a refusal, input is read and discarded this long so the reply is not lost to a reset
SHED_RETRY_PAUSE = 0.2  # a client refused for a connection cap tries again after this, within its timeout
Message = dict[str, Any]


class Code(StrEnum):
    """The stable codes of refusals and failed requests (`"code"` of an `ok: false` reply)."""

    BAD_FRAME = "BAD_FRAME"  # not one UTF-8 JSON object per line, or nested too deeply (connection closed)
    TOO_LARGE = "TOO_LARGE"  # a line longer than the limit (connection closed)
    BAD_HELLO = "BAD_HELLO"  # the first message is not a hello (connection closed)
    VERSION_UNSUPPORTED = "VERSION_UNSUPPORTED"  # the hello's version is not spoken here (connection closed)
    AUTH_FAILED = "AUTH_FAILED"  # wrong or missing instance secret (connection closed)
    TIMEOUT = "TIMEOUT"  # no complete hello within the deadline (connection closed)
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"  # a connection cap was reached (connection closed)
    BAD_REQUEST = "BAD_REQUEST"  # the request lacks "op" or has fields of the wrong type (connection stays)
    UNKNOWN_OP = "UNKNOWN_OP"  # the service has no such operation (connection stays)
    REFUSED = "REFUSED"  # the service declined the request; "error" says why (connection stays)
    INTERNAL = "INTERNAL"  # the service failed unexpectedly (connection stays)


class WireError(RedpssError):
    """The peer broke the protocol, refused us, or is not there; `code` is the peer's or our refusal code."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RequestError(RedpssError):
    """Raised by a handler to refuse a request with a given code; the connection stays open."""

    def __init__(self, message: str, code: Code = Code.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


class _Refused(WireError):
    """A protocol-level refusal by the server: reply with the code, log one WARNING line, close."""

    code: Code

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message, code)


@dataclass(frozen=True)
class Limits:
    """What one connection may cost a server, before and after its hello (a server's own tuning)."""

    max_message: int = MAX_LINE  # one line after the hello
    hello_line: int = MAX_HELLO_LINE  # one line before it
    hello_timeout: float = 5.0  # seconds from accept (or TLS handshake) to a complete hello
    max_unauthenticated: int = 64  # connections without hello; a new one beyond drops the oldest
    eviction_grace: float = 0.1  # seconds a new connection is safe from being dropped for the cap above
    max_clients: int = 256  # authenticated connections; a hello beyond is refused
    event_backlog: int = MAX_LINE  # bytes of pushed events waiting for a subscriber before it is disconnected


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> Message:
    """One message from one line; WireError (BAD_FRAME) naming what is wrong, never echoing the line itself."""
    try:
        message = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WireError(f"a message must be UTF-8 ({exc.reason} at byte {exc.start})", Code.BAD_FRAME) from None
    except RecursionError:
        raise WireError("a message is nested too deeply", Code.BAD_FRAME) from None
    except ValueError as exc:
        raise WireError(f"not a JSON message ({exc})", Code.BAD_FRAME) from None
    if not isinstance(message, dict):
        raise WireError(f"a message must be a JSON object, got {type(message).__name__}", Code.BAD_FRAME)
    return message


async def read_message(reader: asyncio.StreamReader, limit: int = MAX_LINE) -> Message | None:
    """The next message, or None at end of stream; `limit` only names the reader's limit in the error."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise WireError(f"message longer than {limit} bytes", Code.TOO_LARGE) from exc
    if not line:
        return None
    return decode(line)


def durable(**fields: Any) -> Message:
    """The reply of a handler whose data is safe (written and flushed, or committed): the only ok a durable op may send.

    A server built with `durable_ops` refuses to send `ok: true` for those ops unless the handler returned this, so a
    handler cannot acknowledge by accident before the data is safe.
    """
    return {**fields, "ok": True, "durable": True}


def unknown_op(op: object, known: Collection[str]) -> Message:
    """The reply to a request whose op the service does not have."""
    return {"ok": False, "code": Code.UNKNOWN_OP, "error": f"unknown request {op!r}; known: {', '.join(known)}"}


class _LineReader(asyncio.StreamReader):
    """A StreamReader whose line limit (and so its buffer) is small until the peer has authenticated."""

    def set_limit(self, limit: int) -> None:
        self._limit = limit


def describe_peer(writer: asyncio.StreamWriter) -> str:
    """host:port for TCP; pid and uid of the peer for a unix socket (from SO_PEERCRED)."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        with contextlib.suppress(OSError):
            pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            return f"unix peer pid {pid} uid {uid}"
    return "unknown peer"


class _RefusalLog:
    """One WARNING line per refusal, at most `per_window` per `window` seconds; the rest are counted and summarised."""

    def __init__(self, server: str, per_window: int = 10, window: float = 10.0) -> None:
        self.server = server
        self.per_window = per_window
        self.window = window
        self.started = time.monotonic()
        self.logged = 0
        self.suppressed: Counter[str] = Counter()

    def warn(self, code: Code, peer: str, detail: str) -> None:
        now = time.monotonic()
        if now - self.started >= self.window:
            self.flush()
            self.started, self.logged = now, 0
        if self.logged < self.per_window:
            self.logged += 1
            log.warning("%s: refused %s [%s]: %s", self.server, peer, code, detail, extra={"WIRE_CODE": str(code)})
        else:
            self.suppressed[code] += 1

    def flush(self) -> None:
        if self.suppressed:
            counts = ", ".join(f"{code} {count}" for code, count in self.suppressed.most_common())
            log.warning(
                "%s: %d more refusals within %.0f s were not logged one by one (%s)",
                self.server,
                sum(self.suppressed.values()),
                self.window,
                counts,
            )
            self.suppressed.clear()


class Connection:
    """One authenticated client of a JsonLineServer; `send` pushes an event to it."""

    def __init__(
        self, writer: asyncio.StreamWriter, client: str, peer: str = "", version: int = PROTOCOL_VERSION
    ) -> None:
        self.writer = writer
        self.client = client
        self.peer = peer
        self.version = version
        self.subscribed = False

    async def send(self, message: Message) -> None:
        self.writer.write(encode(message))
        await self.writer.drain()


Handler = Callable[[Message, Connection], Awaitable[Message]]


class JsonLineServer:
    """Serves authenticated JSON-line requests on TCP (host, port), optionally over TLS, or on a unix socket path.

    `durable_ops` names the ops whose ok means "the data is safe": their handlers must answer with `durable(...)`.
    """

    def __init__(
        self,
        handler: Handler,
        secret: str,
        name: str,
        limits: Limits | None = None,
        durable_ops: Collection[str] = (),
    ) -> None:
        self.handler = handler
        self.secret = secret.encode("utf-8", "surrogatepass")
        self.name = name
        self.limits = limits or Limits()
        self.durable_ops = frozenset(durable_ops)
        self.connections: set[Connection] = set()
        self.refusals = _RefusalLog(name)
        # connections without hello, oldest first, with the peer's description and when they were accepted
        self._unauthenticated: dict[asyncio.StreamWriter, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # one per connection, awaited by close()
        self._server: asyncio.Server | None = None

    async def start_tcp(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol,
                host,
                port,
                reuse_address=True,
                ssl=ssl_context,
                ssl_handshake_timeout=self.limits.hello_timeout if ssl_context else None,
            )
        except OSError as exc:
            raise explain_bind_error(exc, host, port) from exc  # names the process holding the port

    async def start_unix(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._server = await asyncio.get_running_loop().create_unix_server(self._protocol, str(path))
        path.chmod(0o600)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    @property
    def unauthenticated(self) -> int:
        """How many connections have not (yet) said hello."""
        return len(self._unauthenticated)

    async def close(self) -> None:
        """Stop listening and end every connection (a request still being handled gets `CLOSE_GRACE` seconds)."""
        if self._server is not None:
            self._server.close()
            for writer in [*self._unauthenticated, *(c.writer for c in self.connections)]:
                writer.close()
            if self._tasks:
                _, running = await asyncio.wait(self._tasks, timeout=CLOSE_GRACE)
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
            self.refusals.flush()

    async def broadcast(self, event: Message) -> None:
        """Push an event to every subscribed client without waiting for any of them.

        A subscriber that does not read (stopped, hung) would otherwise stall the daemon that broadcasts; once
        `event_backlog` bytes wait for it, it is disconnected with a WARNING, so it reconnects and resyncs.
        """
        data = encode(event)
        for connection in list(self.connections):
            if not connection.subscribed:
                continue
            transport = connection.writer.transport
            if transport.is_closing():
                self.connections.discard(connection)
                continue
            waiting = transport.get_write_buffer_size()
            if waiting + len(data) > self.limits.event_backlog:
                log.warning(
                    "%s: %s at %s does not read its events (%d bytes waiting); disconnected so that it reconnects",
                    self.name,
                    connection.client,
                    connection.peer,
                    waiting,
                )
                self.connections.discard(connection)
                transport.abort()
                continue
            connection.writer.write(data)

    def _protocol(self) -> asyncio.StreamReaderProtocol:
        reader = _LineReader(limit=self.limits.hello_line)
        return asyncio.StreamReaderProtocol(reader, self._accepted)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve the connection in a task of our own, so close() can end it (asyncio's would log its cancellation)."""
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert isinstance(reader, _LineReader)
        peer = describe_peer(writer)
        if not self._admit_unauthenticated(writer, peer):
            return
        connection: Connection | None = None
        try:
            connection = await self._authenticate(reader, writer, peer)
            self._unauthenticated.pop(writer, None)
            reader.set_limit(self.limits.max_message)
            self.connections.add(connection)
            await connection.send({"ok": True, "server": self.name, "version": PROTOCOL_VERSION})
            while (request := await self._read(reader, self.limits.max_message)) is not None:
                await connection.send(await self._answer(request, connection))
        except _Refused as exc:
            self.refusals.warn(exc.code, peer if connection is None else f"{connection.client} at {peer}", str(exc))
            await self._refuse(reader, writer, exc)
        except (ConnectionError, OSError) as exc:
            log.debug("%s: connection of %s ended: %s", self.name, peer, exc)
        except Exception:
            log.exception("%s: serving %s failed; connection closed", self.name, peer)
        finally:
            self._unauthenticated.pop(writer, None)
            if connection is not None:
                self.connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _admit_unauthenticated(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Count a new connection; at the cap the oldest one without hello makes room for it.

        A connection younger than `eviction_grace` is never dropped, so a client that says hello at once is not lost
        to a burst of connects; when all of them are that young, the new connection is refused instead.
        """
        now = time.monotonic()
        if len(self._unauthenticated) >= self.limits.max_unauthenticated:
            oldest, (oldest_peer, accepted) = next(iter(self._unauthenticated.items()))
            if now - accepted < self.limits.eviction_grace:
                victim, victim_peer, admitted = writer, peer, False
                detail = f"{self.limits.max_unauthenticated} connections without hello; refused a new one"
            else:
                del self._unauthenticated[oldest]
                victim, victim_peer, admitted = oldest, oldest_peer, True
                detail = f"{self.limits.max_unauthenticated} connections without hello; dropped the oldest"
            self.refusals.warn(Code.TOO_MANY_CONNECTIONS, victim_peer, detail)
            with contextlib.suppress(Exception):
                refusal = {"ok": False, "code": Code.TOO_MANY_CONNECTIONS, "error": f"{self.name}: {detail}"}
                victim.write(encode(refusal))
            victim.close()
            if not admitted:
                return False
        self._unauthenticated[writer] = (peer, now)
        return True

    async def _authenticate(self, reader: _LineReader, writer: asyncio.StreamWriter, peer: str) -> Connection:
        try:
            async with asyncio.timeout(self.limits.hello_timeout):
                hello = await self._read(reader, self.limits.hello_line, before_hello=True)
        except TimeoutError:
            raise _Refused(Code.TIMEOUT, f"no hello within {self.limits.hello_timeout:g} s") from None
        if hello is None:
            raise ConnectionResetError("closed before its hello")
        if hello.get("op") != "hello":
            raise _Refused(
                Code.BAD_HELLO, 'the first message must be {"op": "hello", "version": 1, "secret": ..., "client": ...}'
            )
        version = hello.get("version", 1)
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            spoken = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
            raise _Refused(Code.VERSION_UNSUPPORTED, f"protocol version {version!r:.20} is not spoken here ({spoken})")
        secret = hello.get("secret")
        if not isinstance(secret, str) or not hmac.compare_digest(
            secret.encode("utf-8", "surrogatepass"), self.secret
        ):
            raise _Refused(Code.AUTH_FAILED, "authentication failed: the hello must carry the instance secret")
        if len(self.connections) >= self.limits.max_clients:
            raise _Refused(Code.TOO_MANY_CONNECTIONS, f"{self.limits.max_clients} clients connected already")
        client = hello.get("client")
        return Connection(writer, client[:100] if isinstance(client, str) else "?", peer, version)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, limit: int, before_hello: bool = False) -> Message | None:
        try:
            return await read_message(reader, limit)
        except WireError as exc:
            code = Code(exc.code) if exc.code else Code.BAD_FRAME
            if code is Code.TOO_LARGE:
                where = "before the hello" if before_hello else "here"
                raise _Refused(code, f"a line is limited to {limit} bytes {where}") from None
            raise _Refused(code, str(exc)) from None

    async def _answer(self, request: Message, connection: Connection) -> Message:
        op = request.get("op")
        if not isinstance(op, str):
            reply: Message = {"ok": False, "code": Code.BAD_REQUEST, "error": 'a request needs "op": "<name>"'}
        else:
            try:
                reply = dict(await self.handler(request, connection))
            except RequestError as exc:
                reply = {"ok": False, "code": exc.code, "error": str(exc)}
            except RedpssError as exc:
                reply = {"ok": False, "code": Code.REFUSED, "error": str(exc)}
            except Exception as exc:
                log.exception("%s: request %s from %s failed", self.name, op, connection.client)
                reply = {"ok": False, "code": Code.INTERNAL, "error": f"internal error: {exc}"}
            if not reply.get("ok"):
                reply.setdefault("code", Code.REFUSED)
            elif op in self.durable_ops and reply.get("durable") is not True:
                log.error("%s: the handler of %s acknowledged without saying the data is durable", self.name, op)
                reply = {"ok": False, "code": Code.INTERNAL, "error": f"{op} was not confirmed durable; retry"}
        if "seq" in request:
            reply["seq"] = request["seq"]
        return reply

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: _Refused) -> None:
        """Send the refusal, then read and discard for a moment so the peer sees the reply rather than a reset."""
        with contextlib.suppress(Exception):
            writer.write(encode({"ok": False, "code": refusal.code, "error": f"{self.name}: {refusal}"}))
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while await reader.read(65536):
                    pass


def _shedding(exc: WireError) -> bool:
    """Whether a failed hello means the server was shedding connections (worth another try in a moment)."""
    return exc.code == Code.TOO_MANY_CONNECTIONS or isinstance(exc.__cause__, ConnectionResetError)


def _hello(secret: str, client: str) -> Message:
    return {"op": "hello", "version": PROTOCOL_VERSION, "secret": secret, "client": client}


def _refusal(reply: Message | None, fallback: str) -> WireError:
    if not reply:
        return WireError(fallback)
    return WireError(str(reply.get("error", fallback)), reply.get("code"))


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
        self.events: list[Message] = []  # pushed events that arrived while waiting for replies
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._open(secret, client, timeout, ssl_context)
                return
            except WireError as exc:
                if not _shedding(exc) or time.monotonic() + SHED_RETRY_PAUSE > deadline:
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
            reply = self._exchange(_hello(secret, client))
        except WireError:
            self.close()
            raise
        if not reply.get("ok"):
            self.close()
            raise _refusal(reply, "refused")

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
            return self.events.pop(0)
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
            raise _refusal(reply, f"{op} failed")
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


class AsyncClient:
    """An asyncio client that can both request and receive pushed events (JMON -> SCHED).

    A reply is matched to its request by seq. A request that times out or is cancelled forgets its seq, so a late
    reply is logged at DEBUG and dropped. A message the client cannot use closes the connection with a log line;
    `closed` is then set and every waiting request fails, so the owner reconnects.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        peer: str = "server",
        max_message: int = MAX_LINE,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.max_message = max_message
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self.events: asyncio.Queue[Message] = asyncio.Queue()
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_reason = ""

    @classmethod
    async def connect_tcp(
        cls,
        host: str,
        port: int,
        secret: str,
        client: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        max_message: int = MAX_LINE,
    ) -> AsyncClient:
        opening = asyncio.open_connection(host, port, limit=max_message, ssl=ssl_context)
        return await cls._connect(opening, f"{host}:{port}", (secret, client), timeout=timeout, max_message=max_message)

    @classmethod
    async def connect_unix(
        cls, path: Path, secret: str, client: str, *, timeout: float = 10.0, max_message: int = MAX_LINE
    ) -> AsyncClient:
        opening = asyncio.open_unix_connection(str(path), limit=max_message)
        return await cls._connect(opening, str(path), (secret, client), timeout=timeout, max_message=max_message)

    @classmethod
    async def _connect(
        cls,
        opening: Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
        peer: str,
        credentials: tuple[str, str],
        *,
        timeout: float,
        max_message: int,
    ) -> AsyncClient:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await opening
        except (OSError, TimeoutError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or "timed out"
            raise WireError(f"cannot connect to {peer}: {why}") from exc
        try:
            async with asyncio.timeout(timeout):
                writer.write(encode(_hello(*credentials)))
                await writer.drain()
                reply = await read_message(reader, max_message)
        except (OSError, TimeoutError, WireError) as exc:
            writer.close()
            raise WireError(f"{peer} did not answer the hello: {str(exc) or 'timed out'}") from exc
        if not reply or not reply.get("ok"):
            writer.close()
            raise _refusal(reply, f"{peer} closed the connection")
        self = cls(reader, writer, peer=peer, max_message=max_message)
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"wire reader {peer}")
        return self

    async def _read_loop(self) -> None:
        reason = "closed by the server"
        try:
            while (message := await read_message(self.reader, self.max_message)) is not None:
                self._dispatch(message)
        except (WireError, ConnectionError, OSError) as exc:
            reason = str(exc)
            log.warning("connection to %s closed: %s", self.peer, reason)
        except Exception as exc:  # a bug here must not leave the owner waiting on a dead link
            reason = f"{type(exc).__name__}: {exc}"
            log.error("connection to %s closed after an unexpected error", self.peer, exc_info=True)
        finally:
            self.close_reason = self.close_reason or reason
            self.closed.set()
            self.writer.close()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(WireError(f"connection to {self.peer} closed: {self.close_reason}"))
            self._pending.clear()

    def _dispatch(self, message: Message) -> None:
        if "event" in message:
            self.events.put_nowait(message)
            return
        seq = message.get("seq")
        if type(seq) is not int:
            if message.get("ok") is False:  # the server's refusal before it closes (its reason for closing)
                self.close_reason = f"{message.get('code', '?')}: {message.get('error', '')}"
                log.warning("%s is closing the connection: %s", self.peer, self.close_reason)
                return
            raise WireError(f"{self.peer} sent a reply without a request number (seq)", Code.BAD_FRAME)
        future = self._pending.pop(seq, None)
        if future is None or future.done():
            log.debug("reply %d from %s arrived after its request gave up; ignored", seq, self.peer)
            return
        future.set_result(message)

    async def request(self, op: str, timeout: float = 30.0, **fields: Any) -> Message:
        """Send one request and return its reply (ok or not); TimeoutError after `timeout` s, WireError if closed."""
        if self.closed.is_set():
            raise WireError(f"connection to {self.peer} closed: {self.close_reason}")
        self._next_id += 1
        seq = self._next_id
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            self.writer.write(encode({**fields, "op": op, "seq": seq}))
            await self.writer.drain()
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(seq, None)

    async def request_durable(self, op: str, timeout: float = 30.0, **fields: Any) -> Message:
        """Send one request whose ok must mean "safe"; WireError when refused or not acknowledged as durable."""
        reply = await self.request(op, timeout, **fields)
        if not reply.get("ok"):
            raise _refusal(reply, f"{op} failed")
        if reply.get("durable") is not True:
            raise WireError(f"{self.peer} acknowledged {op} without saying it is durable")
        return reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
