"""The asyncio side of the wire: the JSON-line server every daemon serves on and the client that also receives pushed
events (JMON -> SCHED). Imported only by what runs an event loop; `redpss.core.wire` loads it on first use.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import hmac
import logging
import socket
import ssl
import struct
import termios
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

from redpss.core.errors import RedpssError
from redpss.core.net import explain_bind_error, notice_dead_peer
from redpss.core.wire.framing import (
    MAX_LINE,
    PAYLOAD_VERSION,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Code,
    Limits,
    Message,
    RequestError,
    WireError,
    decode,
    encode,
    hello_message,
    refusal_error,
)

log = logging.getLogger("redpss.core.wire")  # one logger for the whole protocol, whichever module logs

CLOSE_GRACE = 2.0  # seconds close() lets requests in progress finish before cancelling them
# ... and the longer time it gives a request whose handler marked it committed (its effect is made, its reply is all
# that is left: cut off, the client would send it again and the effect would happen twice)
COMMITTED_GRACE = 5.0
LINGER_SECONDS = 1.0  # after a refusal, input is read and discarded this long so the reply is not lost to a reset
# seconds a closing connection has to finish its close before it is cut off: a TLS close waits for the peer's
# close_notify (asyncio gives it 30 s) and a plain one for a peer that reads nothing to take what is left; such a
# peer, uncounted once its connection is closing, would hold a descriptor that long
CLOSE_WITHIN = 2.0
READ_CHUNK = 256 * 1024  # bytes one read of a connection takes (asyncio's own size)
LINE_CHUNK = 16 * 1024  # the same for a server whose requests carry payloads, while it reads a request line


class _Refused(WireError):
    """A protocol-level refusal by the server: reply with the code, log one WARNING line, close."""

    code: Code

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message, code)


async def read_message(reader: asyncio.StreamReader, limit: int = MAX_LINE) -> Message | None:
    """The next message, or None at end of stream; `limit` only names the reader's limit in the error."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise WireError(f"message longer than {limit} bytes", Code.TOO_LARGE) from exc
    if not line:
        return None
    return decode(line)


class _LineReader(asyncio.StreamReader):
    """A StreamReader whose line limit (and so its buffer) is small until the peer has authenticated."""

    def set_limit(self, limit: int) -> None:
        self._limit = limit

    def buffered(self) -> int:
        """How many bytes are read and not taken yet."""
        return len(self._buffer)  # type: ignore[attr-defined]  # StreamReader's own, not in typeshed

    def take_into(self, target: memoryview) -> int:
        """Move what is buffered already (at most len(target) bytes) into `target`; how many bytes that was."""
        buffer: bytearray = self._buffer  # type: ignore[attr-defined]  # StreamReader's own, not in typeshed
        count = min(len(buffer), len(target))
        if count:
            target[:count] = memoryview(buffer)[:count]
            del buffer[:count]
            self._maybe_resume_transport()  # type: ignore[attr-defined]
        return count


class _WireProtocol(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """A connection's protocol: lines go through its StreamReader, a payload goes straight into a buffer of its own.

    The socket is read with recv_into: into the server's scratch buffer (`chunk`, shared by its connections: it is
    copied to the StreamReader before the callback returns) while lines are read, and into the payload's own buffer
    while a payload is read. So a payload is neither allocated per recv as new bytes objects nor copied through the
    StreamReader's buffer (only what came in the same read as its request line is), and the task waiting for it
    wakes once, when it is complete.
    """

    def __init__(
        self, reader: _LineReader, connected: Any, chunk: memoryview, limits: Limits, tls_first: bool = False
    ) -> None:
        super().__init__(reader, connected)
        self._line_reader = reader
        self._chunk = chunk
        self._dead_peer_timeout = limits.dead_peer_timeout
        self._tls_first = tls_first  # nothing is read until the connection's task starts TLS on it
        self._payload: memoryview | None = None  # the payload being read, and how much of it is in
        self._filled = 0
        self._payload_done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # a connection reset before this point ends in its task anyway
                notice_dead_peer(sock, self._dead_peer_timeout)
        if self._tls_first:  # the client's first TLS bytes must reach the TLS layer, not the line reader
            transport.pause_reading()  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._payload is not None:
            return self._payload[self._filled :]
        return self._chunk

    def buffer_updated(self, nbytes: int) -> None:
        if self._payload is None:
            # the StreamReader copies it (any bytes-like will do), so the chunk can be reused
            self.data_received(self._chunk[:nbytes])  # type: ignore[arg-type]
            return
        self._filled += nbytes
        if self._filled >= len(self._payload) and self._payload_done is not None:
            self._payload = None
            if not self._payload_done.done():
                self._payload_done.set_result(None)

    def eof_received(self) -> bool:
        self._fail_payload()
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_payload()
        super().connection_lost(exc)

    def _fail_payload(self) -> None:
        self._payload = None
        if self._payload_done is not None and not self._payload_done.done():
            self._payload_done.set_exception(ConnectionResetError("closed within a payload"))

    async def read_payload(self, size: int) -> bytearray:
        """The next `size` bytes of the connection; ConnectionResetError when the stream ends first."""
        payload = bytearray(size)
        target = memoryview(payload)
        filled = self._line_reader.take_into(target)
        if filled < size:
            reader = self._line_reader
            if reader.at_eof() or reader.exception() is not None:
                raise ConnectionResetError("closed within a payload")
            self._payload, self._filled = target, filled
            self._payload_done = asyncio.get_running_loop().create_future()
            try:
                await self._payload_done
            finally:
                self._payload, self._payload_done = None, None
        return payload


def _one_of(secret: bytes, accepted: tuple[bytes, ...]) -> int | None:
    """The index of `secret` among `accepted`, compared in constant time with each (no early stop that would tell
    which one came close); None when it is none of them."""
    matches = [hmac.compare_digest(secret, each) for each in accepted]
    return matches.index(True) if any(matches) else None


def _address_of(writer: asyncio.StreamWriter) -> str:
    """The peer's address without its port (what a flood from one machine has in common)."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def _from_elsewhere(writer: asyncio.StreamWriter) -> str | None:
    """The peer's address when it is not this server's own: a client on this machine connects to the address the
    server listens on and the kernel gives it that address as its source, so a different one is another machine
    (the database's nodes). None for such a local client or a unix socket."""
    peer, own = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
    if not (isinstance(peer, tuple) and isinstance(own, tuple)) or peer[0] == own[0]:
        return None
    return str(peer[0])


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


class _PayloadBudget:
    """The bytes of payloads a server reads or handles at once, all connections together, kept within `limit`.

    A payload's buffer is allocated when its request line is read; without a bound, authenticated clients declaring
    large payloads on many connections would cost that much memory at once. A request whose payload does not fit
    waits (its connection is not read meanwhile) until others are answered; one payload alone always fits.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.waiting = 0
        self._freed = asyncio.Event()

    async def take(self, size: int) -> None:
        while self.used and self.used + size > self.limit:
            self.waiting += 1
            self._freed.clear()
            try:
                await self._freed.wait()
            finally:
                self.waiting -= 1
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size
        self._freed.set()


class Connection:
    """One authenticated client of a JsonLineServer; `send` pushes an event to it."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        client: str,
        peer: str = "",
        version: int = PROTOCOL_VERSION,
        send_timeout: float = Limits.send_timeout,
        *,
        fold_wait: float = Limits.fold_wait,
    ) -> None:
        self.writer = writer
        self.client = client
        self.peer = peer
        self.version = version
        self.subscribed = False
        self.send_timeout = send_timeout
        self.busy = False  # a request of it is being handled or answered: close() lets its reply go out first
        # set by a handler once the request's effect is made (DBLS: the lines are in the files): close() then waits
        # up to COMMITTED_GRACE for its reply; cleared when the reply is sent
        self.committed = False
        self.folds_acks = False  # its hello said `"fold_acks": true`: one reply may answer several requests
        # its hello carried the instance secret (RED-PSS's own clients: SCHED, redctl), not a service's own secret
        # (the database's scripts), where a server accepts both
        self.own_client = False
        self.held: Message | None = None  # the durable reply held back to be folded into the next, and how many
        self.held_acks = 0  # requests it answers
        self._held_timer: asyncio.TimerHandle | None = None  # sends it if the next reply does not come soon
        self.fold_wait = fold_wait

    async def send(self, message: Message) -> None:
        """Write one message; ConnectionResetError (the connection closed, with a WARNING) when the client has read
        nothing for `send_timeout` seconds while its buffers are full.

        Without that bound, a client that keeps its connection open but stops reading would hold whoever sends to it
        for good: a reply's task, or JEXEC's run of an action whose heartbeat cannot be delivered (and with it a
        graceful stop, which waits for that run).
        """
        self.writer.write(encode(message))
        transport = self.writer.transport
        if not transport.get_write_buffer_size() and not transport.is_closing():
            return  # the kernel took it all: nothing to wait for (the usual case, without a timer per reply)
        try:
            async with asyncio.timeout(self.send_timeout):
                await self.writer.drain()
        except TimeoutError:
            log.warning(
                "%s at %s has read nothing for %g s; its connection was closed",
                self.client,
                self.peer,
                self.send_timeout,
            )
            self.writer.transport.abort()
            raise ConnectionResetError(f"{self.client} read nothing for {self.send_timeout:g} s") from None

    def hold(self, reply: Message) -> None:
        """Hold a durable reply back to fold it into the next; it goes out on its own after `fold_wait` at the latest
        (the next request may be slow to arrive or to answer, or the bytes seen were no request)."""
        self.held, self.held_acks = reply, self.held_acks + 1
        if self._held_timer is None:
            self._held_timer = asyncio.get_running_loop().call_later(self.fold_wait, self.write_held)

    def take_held(self) -> Message | None:
        """The held reply with the number of requests it answers (`acks`), no longer held; None when none is."""
        if self._held_timer is not None:
            self._held_timer.cancel()
            self._held_timer = None
        reply, self.held = self.held, None
        if reply is not None:
            reply["acks"], self.held_acks = self.held_acks, 0
        return reply

    def write_held(self) -> None:
        """Send the held reply now, without waiting: while a reply is held the connection's task writes nothing
        else (any reply of it takes the held one first), so this cannot cut into another message."""
        held = self.take_held()
        if held is not None and not self.writer.transport.is_closing():
            with contextlib.suppress(Exception):  # a transport that fails here fails its task's next step too
                self.writer.write(encode(held))


def _bytes_waiting(reader: _LineReader, writer: asyncio.StreamWriter) -> bool:
    """Whether the client has sent more already: read and not taken, or still in the socket (its next request)."""
    if reader.buffered():
        return True
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    count = array.array("i", [0])
    with contextlib.suppress(OSError):
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    return count[0] > 0


Handler = Callable[[Message, Connection], Awaitable[Message]]


class JsonLineServer:
    """Serves authenticated JSON-line requests on TCP (host, port), optionally over TLS, or on a unix socket path.

    A hello must carry `secret`, or one of them when several are given (core.secret.accepted_secrets).
    `durable_ops` names the ops whose ok means "the data is safe": their handlers must answer with `durable(...)`.
    `versions` are the protocol versions spoken (a hello with another is refused, with `version_hint` saying what to
    do about it); from version 2 the requests of `payload_ops` may carry a raw payload after their line, which the
    handler finds as a bytearray in `request["payload"]` (bulk data without JSON escaping; DBLS's log blocks).
    The durable replies of `foldable_ops` to a client whose hello asks for it are folded while its next request is
    already arriving: one reply (with `"acks": N`) answers N requests in a row (docs/protocols.md).
    """

    def __init__(
        self,
        handler: Handler,
        secret: str | Collection[str],
        name: str,
        limits: Limits | None = None,
        durable_ops: Collection[str] = (),
        *,
        versions: Collection[int] = SUPPORTED_VERSIONS,
        version_hint: str = "",
        payload_ops: Collection[str] = (),
        foldable_ops: Collection[str] = (),
    ) -> None:
        self.handler = handler
        # every secret a hello may carry (a database-facing service: the instance's and its own, core.secret)
        accepted = [secret] if isinstance(secret, str) else list(secret)
        self.secrets = tuple(each.encode("utf-8", "surrogatepass") for each in accepted)
        self.name = name
        own = f" or {name}'s own (the password `redctl db_install` gives its CONNECTION object)"
        self._secret_wanted = "the instance secret" + (own if len(accepted) > 1 else "")
        self._warned_addresses: set[str] = set()  # of peers elsewhere that used the instance secret (told once each)
        self.limits = limits or Limits()
        self.durable_ops = frozenset(durable_ops)
        self.versions = frozenset(versions)
        self.version_hint = version_hint
        self.payload_ops = frozenset(payload_ops)
        self.foldable_ops = frozenset(foldable_ops) & self.durable_ops
        self.connections: set[Connection] = set()
        self.refusals = _RefusalLog(name)
        # connections without hello, oldest first, with the peer's description and when they were accepted
        self._unauthenticated: dict[asyncio.StreamWriter, tuple[str, float, str]] = {}  # peer, accepted, address
        self._tasks: set[asyncio.Task[None]] = set()  # one per connection, awaited by close()
        self._server: asyncio.Server | None = None
        self._closing = False  # close() was called: no new request is started, a reply under way still goes out
        self.payloads = _PayloadBudget(self.limits.payload_budget)
        self._tls: ssl.SSLContext | None = None  # set by start_tcp: every connection starts with a TLS handshake
        # what one read of a connection takes while it reads lines: with payloads, little, so that a payload's
        # bytes mostly go straight into its own buffer, not through the line reader (see _WireProtocol)
        self._chunk = memoryview(bytearray(LINE_CHUNK if self.payload_ops else READ_CHUNK))

    async def start_tcp(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen on host:port; with `ssl_context`, each connection's TLS handshake is started by its own task once
        the connection is counted among those without hello, so a flood of handshakes meets the same cap."""
        loop = asyncio.get_running_loop()
        self._tls = ssl_context
        try:
            self._server = await loop.create_server(self._protocol, host, port, reuse_address=True)
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
        """Stop listening and end every connection. A connection whose request is being handled is closed once its
        reply is sent (within `CLOSE_GRACE` seconds, then cancelled): a handler that made data durable must be able
        to say so, or the client sends it again to the next server and it is there twice. A request read but not
        yet started is not started; its client gets no reply and sends it again."""
        self._closing = True
        if self._server is not None:
            self._server.close()
            # a connection with a held reply is not idle: the reply goes out now, whatever its task waits for, and
            # the task ends the connection with its linger (closed at once, unread input would reset it)
            idle = [c.writer for c in self.connections if not c.busy and c.held is None]
            for connection in self.connections:
                connection.write_held()
            for writer in [*self._unauthenticated, *idle]:
                close_within(writer, CLOSE_WITHIN)
            if self._tasks:
                _, running = await asyncio.wait(self._tasks, timeout=CLOSE_GRACE)
                if running and any(c.committed for c in self.connections):
                    _, running = await asyncio.wait(running, timeout=COMMITTED_GRACE - CLOSE_GRACE)
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

    def _protocol(self) -> _WireProtocol:
        reader = _LineReader(limit=self.limits.hello_line)
        return _WireProtocol(reader, self._accepted, self._chunk, self.limits, tls_first=self._tls is not None)

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
            if self._tls is not None:
                await self._start_tls(writer)
            connection = await self._authenticate(reader, writer, peer)
            self._unauthenticated.pop(writer, None)
            reader.set_limit(self.limits.max_message)
            self.connections.add(connection)
            welcome: Message = {"ok": True, "server": self.name, "version": connection.version}
            if connection.folds_acks and self.foldable_ops:
                welcome["fold_acks"] = sorted(self.foldable_ops)
            await connection.send(welcome)
            while not self._closing and (request := await self._read(reader, self.limits.max_message)) is not None:
                if self._closing:
                    break  # read while close() ran: not started, so its client sends it again elsewhere
                connection.busy = True
                await self._handle(reader, request, connection)
                connection.busy = connection.committed = False
            if self._closing:
                connection.write_held()
                await self._linger(reader, writer)  # so the last reply is not lost to a reset
        except _Refused as exc:
            self.refusals.warn(exc.code, peer if connection is None else f"{connection.client} at {peer}", str(exc))
            if connection is not None:
                connection.write_held()  # the requests before the bad one were answered
            await self._refuse(reader, writer, exc)
        except (ConnectionError, OSError) as exc:
            log.debug("%s: connection of %s ended: %s", self.name, peer, exc)
        except Exception:
            log.exception("%s: serving %s failed; connection closed", self.name, peer)
        finally:
            self._unauthenticated.pop(writer, None)
            if connection is not None:
                connection.write_held()  # e.g. the client half-closed within its next request: it may still read
                self.connections.discard(connection)
            close_within(writer, CLOSE_WITHIN)
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, request: Message, connection: Connection) -> None:
        """Read the request's payload, if it has one, and answer it; the payload's bytes go back to the budget once
        it is answered (the handler is done with the buffer)."""
        if "payload" not in request:
            await self._reply(reader, request, await self._answer(request, connection), connection)
            return
        payload = request["payload"] = await self._read_payload(reader, request, connection)
        try:
            await self._reply(reader, request, await self._answer(request, connection), connection)
        finally:
            self.payloads.give(len(payload))

    async def _reply(
        self, reader: asyncio.StreamReader, request: Message, reply: Message, connection: Connection
    ) -> None:
        """Send the reply, or hold it back: a durable ok of a foldable op, to a client that folds acknowledgements,
        while its next request is already arriving (the next reply then answers both, and a client sending a stream
        of buffers wakes once per few of them instead of once per buffer). Any other reply first sends a held one."""
        if (
            connection.folds_acks
            and reply.get("durable") is True
            and request.get("op") in self.foldable_ops
            and "seq" not in request  # a client matching replies by seq would miss the folded ones
        ):
            connection.hold(reply)
            assert isinstance(reader, _LineReader)
            if _bytes_waiting(reader, connection.writer):
                return
            reply = connection.take_held() or reply
        else:
            connection.write_held()  # in order, before this reply, whose send waits for both to go out
        await connection.send(reply)

    async def _start_tls(self, writer: asyncio.StreamWriter) -> None:
        """The server side of the TLS handshake, within the hello deadline; _Refused when it fails or takes longer
        (logged like any refusal: a plain client on a TLS port is named, not silently dropped)."""
        assert self._tls is not None
        timeout = self.limits.hello_timeout
        try:
            await writer.start_tls(self._tls, ssl_handshake_timeout=timeout)
        except TimeoutError:
            raise _Refused(Code.TIMEOUT, f"no TLS handshake within {timeout:g} s") from None
        except (ssl.SSLError, ConnectionError) as exc:
            raise _Refused(Code.BAD_FRAME, f"TLS handshake failed ({exc}); is the client using TLS?") from None

    def _admit_unauthenticated(self, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Count a new connection; at the cap the oldest one without hello makes room for it.

        A connection younger than `eviction_grace` is not dropped, so a client that says hello at once is not lost
        to a burst of connects; when the one to drop is that young, the new connection is refused instead. One
        address holding more than half of the cap (a flood) gives up its own connections to a newcomer from
        elsewhere (a database node) however young they are, and drops another address's only once it is older than
        `foreign_grace` (see `_eviction_candidate`).
        """
        now = time.monotonic()
        address = _address_of(writer)
        if len(self._unauthenticated) >= self.limits.max_unauthenticated:
            oldest, grace = self._eviction_candidate(address)
            oldest_peer, accepted, _ = self._unauthenticated[oldest]
            if now - accepted < grace:
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
            close_within(victim, CLOSE_WITHIN)  # over TLS, a close alone neither ends its task's read nor its socket
            if not admitted:
                return False
        self._unauthenticated[writer] = (peer, now, address)
        return True

    def _eviction_candidate(self, newcomer: str) -> tuple[asyncio.StreamWriter, float]:
        """The connection without hello to drop for a newcomer from address `newcomer`, and for how long after its
        accept it is safe from that. Usually the oldest of all, safe for `eviction_grace`. While one address holds
        more than half of the cap (a flood): for a newcomer from elsewhere, that address's oldest, not safe at all;
        for one of its own, the oldest of all, safe for `foreign_grace` when it is another address's (a client whose
        TLS handshake crosses a network must not lose its place to a flood, an idle peer still does)."""
        counts = Counter(address for _, _, address in self._unauthenticated.values())
        hog, most = counts.most_common(1)[0]
        oldest, (_, _, address) = next(iter(self._unauthenticated.items()))
        if most * 2 <= self.limits.max_unauthenticated:
            return oldest, self.limits.eviction_grace
        if newcomer != hog:
            return next(w for w, (_, _, where) in self._unauthenticated.items() if where == hog), 0.0
        return oldest, self.limits.eviction_grace if address == hog else self.limits.foreign_grace

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
        if type(version) is not int or version not in self.versions:
            spoken = ", ".join(str(v) for v in sorted(self.versions))
            hint = f"; {self.version_hint}" if self.version_hint else ""
            raise _Refused(
                Code.VERSION_UNSUPPORTED, f"protocol version {version!r:.20} is not spoken here ({spoken}){hint}"
            )
        secret = hello.get("secret")
        which = _one_of(secret.encode("utf-8", "surrogatepass"), self.secrets) if isinstance(secret, str) else None
        if which is None:
            raise _Refused(Code.AUTH_FAILED, f"authentication failed: the hello must carry {self._secret_wanted}")
        if which == 0 and len(self.secrets) > 1:
            self._instance_secret_from_elsewhere(writer)
        if len(self.connections) >= self.limits.max_clients:
            raise _Refused(Code.TOO_MANY_CONNECTIONS, f"{self.limits.max_clients} clients connected already")
        client = hello.get("client")
        name = client[:100] if isinstance(client, str) else "?"
        connection = Connection(writer, name, peer, version, self.limits.send_timeout, fold_wait=self.limits.fold_wait)
        connection.folds_acks = hello.get("fold_acks") is True
        connection.own_client = which == 0
        return connection

    def _instance_secret_from_elsewhere(self, writer: asyncio.StreamWriter) -> None:
        """A WARNING, once per address, when another machine opens a database-facing service with the instance
        secret: only RED-PSS's own clients on this server should hold it, so the database's CONNECTION object still
        carries it (made before each service had a secret of its own) or somebody copied it from one."""
        address = _from_elsewhere(writer)
        if address is None or address in self._warned_addresses or len(self._warned_addresses) >= 100:
            return
        self._warned_addresses.add(address)
        log.warning(
            "%s: %s opened a connection with the instance secret, which only RED-PSS's own clients on this server "
            "should hold: the database's CONNECTION objects still carry it (made before each service had a secret "
            "of its own), or it was copied from one. Run `redctl db_install`, then renew the instance secret "
            '(docs/operations.md, "The instance secret")',
            self.name,
            address,
        )

    async def _read_payload(self, reader: asyncio.StreamReader, request: Message, connection: Connection) -> bytearray:
        """The raw bytes a request declared with `"payload": N`; a refusal that closes when it cannot be read."""
        op, size = request.get("op"), request["payload"]
        if connection.version < PAYLOAD_VERSION or op not in self.payload_ops:
            takes = f" (only {', '.join(sorted(self.payload_ops))})" if self.payload_ops else ""
            raise _Refused(
                Code.BAD_FRAME,
                f"request {op!r:.40} cannot carry a payload with protocol version {connection.version}{takes}",
            )
        if type(size) is not int or size < 0:
            raise _Refused(Code.BAD_FRAME, '"payload" must be the number of bytes that follow the request line')
        if size > self.limits.max_message:
            raise _Refused(Code.TOO_LARGE, f"a payload is limited to {self.limits.max_message} bytes here")
        protocol = connection.writer.transport.get_protocol()
        assert isinstance(protocol, _WireProtocol)
        timeout = self.limits.payload_timeout
        await self.payloads.take(size)  # given back once the request is answered (_serve)
        try:
            async with asyncio.timeout(timeout):  # a client that declares much and sends little holds no buffer long
                return await protocol.read_payload(size)
        except TimeoutError:
            self.payloads.give(size)
            raise _Refused(Code.TIMEOUT, f"a payload of {size} bytes did not arrive within {timeout:g} s") from None
        except BaseException:
            self.payloads.give(size)
            raise

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
        """Send the refusal, then linger so the peer sees the reply rather than a reset."""
        with contextlib.suppress(Exception):
            writer.write(encode({"ok": False, "code": refusal.code, "error": f"{self.name}: {refusal}"}))
        await self._linger(reader, writer)

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """End our side, then read and discard for a moment: closing a socket with input still unread (a client's
        next requests) makes the kernel send a reset, which throws away what is still queued for the peer."""
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while await reader.read(65536):
                    pass


def close_within(writer: asyncio.StreamWriter, seconds: float) -> None:
    """Close the connection, and cut it off (no TLS close_notify, unsent bytes dropped) if the close has not ended
    within `seconds`: a peer that never answers the close must not hold the descriptor for asyncio's 30 s."""
    transport = writer.transport
    if not transport.is_closing():  # a TLS transport closed twice forgets its connection: the abort would do nothing
        writer.close()
    asyncio.get_running_loop().call_later(seconds, transport.abort)  # nothing when closed by then


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
                writer.write(encode(hello_message(*credentials)))
                await writer.drain()
                reply = await read_message(reader, max_message)
        except (OSError, TimeoutError, WireError) as exc:
            writer.close()
            raise WireError(f"{peer} did not answer the hello: {str(exc) or 'timed out'}") from exc
        if not reply or not reply.get("ok"):
            writer.close()
            raise refusal_error(reply, f"{peer} closed the connection")
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
            raise refusal_error(reply, f"{op} failed")
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
