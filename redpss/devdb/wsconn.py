"""A WebSocket server connection over a blocking socket (plain or TLS), with websockets' sans-I/O protocol.

Exasol does not ping, so no keepalive runs. Message sizes are capped by stage: before login a message may hold a
login command and no more (`PRE_LOGIN_MAX_MESSAGE`), so a peer that announces a 2 GiB frame is closed (1009) before
devdb buffers any of it; after login the cap (`AUTHENTICATED_MAX_MESSAGE`) fits any statement pyexasol sends. One
thread reads (and may be waiting for data) while another sends replies; because a TLS connection must never be
read and written at the same time, the socket is non-blocking and every read or write happens under one lock.
Waiting uses poll(), which, unlike select(), works for any file descriptor number.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
import zlib
from collections import deque

from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

READ_SIZE = 1 << 20
PRE_LOGIN_MAX_MESSAGE = 64 * 1024  # a login command with its attributes is well under 4 KiB
AUTHENTICATED_MAX_MESSAGE = 512 * 1024 * 1024  # one statement text (pyexasol sends SQL as one frame), uncompressed
POLL_INTERVAL = 0.5  # seconds; a waiting reader re-checks whether the connection was closed this often


class _NoTracebacks(logging.Filter):
    """websockets logs unexpected parser errors with a traceback; a peer's bytes must never put one in the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


_QUIET = logging.getLogger("redpss.devdb.websocket")
_QUIET.setLevel(logging.WARNING)  # websockets logs every connection at INFO; devdb logs sessions itself
_QUIET.addFilter(_NoTracebacks())


class MessageTooBig(Exception):
    """A compressed message that inflates beyond the size allowed."""


class WebSocketChannel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._protocol = ServerProtocol(max_size=PRE_LOGIN_MAX_MESSAGE, logger=_QUIET)
        self._lock = threading.Lock()
        self._messages: deque[bytes | str] = deque()
        self._parts: list[bytes] = []
        self._text = False
        self._closed = False
        self._readable = select.poll()
        self._writable = select.poll()
        self.close_reason = ""  # why the connection ended from devdb's side, for the log line

    @property
    def max_message_size(self) -> int:
        size = self._protocol.max_message_size
        assert size is not None
        return size

    def authenticated(self) -> None:
        """Allow messages of the size a logged-in client may send."""
        self._protocol.max_message_size = AUTHENTICATED_MAX_MESSAGE

    def inflate(self, data: bytes) -> bytes:
        """A zlib-compressed message, inflated to at most the message size allowed."""
        inflater = zlib.decompressobj()
        plain = inflater.decompress(data, self.max_message_size)
        if inflater.unconsumed_tail:
            raise MessageTooBig(f"a compressed message inflates beyond {self.max_message_size} bytes")
        return plain

    def handshake(self, deadline: float) -> bool:
        """Complete the HTTP upgrade by deadline (time.monotonic()); False if the peer is not a WebSocket client."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close_reason = "no WebSocket upgrade before the login deadline"
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                self.close_reason = "no WebSocket upgrade before the login deadline"
                return False
            if not data:
                return False
            self._protocol.receive_data(data)
            events = self._protocol.events_received()
            if self._protocol.handshake_exc is not None:
                return self._refuse_upgrade(f"malformed WebSocket upgrade: {self._protocol.handshake_exc}")
            for event in events:
                if isinstance(event, Request):
                    return self._answer_upgrade(event)

    def _answer_upgrade(self, request: Request) -> bool:
        try:
            response = self._protocol.accept(request)
            self._protocol.send_response(response)
        except Exception as exc:  # whatever a peer's request does to the parser, it is refused
            return self._refuse_upgrade(f"malformed WebSocket upgrade ({type(exc).__name__})")
        if response.status_code != 101:
            return self._refuse_upgrade(f"not a WebSocket upgrade (answered HTTP {response.status_code})")
        for chunk in self._protocol.data_to_send():
            self.sock.sendall(chunk)
        self.sock.setblocking(False)
        self._readable.register(self.sock, select.POLLIN)
        self._writable.register(self.sock, select.POLLOUT)
        return True

    def _refuse_upgrade(self, reason: str) -> bool:
        """Send the HTTP refusal websockets prepared (if any) and say why; always False."""
        for chunk in self._protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
        self.close_reason = reason
        return False

    def recv(self, deadline: float | None = None) -> bytes | str | None:
        """The next message, or None once the connection is closed or deadline (time.monotonic()) has passed."""
        while not self._messages:
            if self._closed:
                return None
            if deadline is not None and time.monotonic() >= deadline:
                self.close_reason = "login not completed before the login deadline"
                return None
            if not self._wait(readable=True):
                continue
            with self._lock:
                eof = self._read_available()
                events = self._protocol.events_received()
                self._flush()
            for event in events:
                if isinstance(event, Frame):
                    self._take(event)
            if self._protocol.parser_exc is not None and not self.close_reason:
                self.close_reason = f"WebSocket protocol error: {self._protocol.parser_exc}"
            if eof and not self._messages:
                self._closed = True
        return self._messages.popleft()

    def _read_available(self) -> bool:
        """Feed everything readable now to the protocol; True at end of stream."""
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                return False
            except ssl.SSLWantWriteError:
                return False
            except OSError:
                self._protocol.receive_eof()
                return True
            if not data:
                self._protocol.receive_eof()
                return True
            self._protocol.receive_data(data)

    def _take(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._parts = [bytes(frame.data)]
            self._text = frame.opcode == Opcode.TEXT
        elif frame.opcode == Opcode.CONT:
            self._parts.append(bytes(frame.data))
        elif frame.opcode == Opcode.CLOSE:
            self._closed = True
            return
        else:
            return
        if frame.fin:
            data = b"".join(self._parts)
            self._parts = []
            if self._text:
                try:
                    self._messages.append(data.decode())
                except UnicodeDecodeError:
                    self._messages.append(data)  # left as bytes: the protocol reports it as not UTF-8
            else:
                self._messages.append(data)

    def send(self, data: bytes, *, binary: bool) -> None:
        with self._lock:
            try:
                if binary:
                    self._protocol.send_binary(data)
                else:
                    self._protocol.send_text(data)
            except InvalidState as exc:  # the peer closed (e.g. an aborted import callback): an OSError like any
                raise ConnectionResetError(f"the WebSocket connection is closing ({exc})") from exc
            self._flush()

    def _flush(self) -> None:
        for chunk in self._protocol.data_to_send():
            if chunk:
                self._send_all(chunk)

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                self._wait(readable=False)
                continue
            view = view[sent:]

    def _wait(self, *, readable: bool) -> bool:
        if readable and isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        poller = self._readable if readable else self._writable
        try:
            return bool(poller.poll(POLL_INTERVAL * 1000))
        except (OSError, ValueError):
            self._closed = True
            return False

    def close(self) -> None:
        """Send a close frame (best effort) and shut the socket, which also ends a waiting recv()."""
        with self._lock, contextlib.suppress(Exception):  # the peer may be gone; closing must not fail
            self._protocol.send_close()
            self._flush()
        self.abort()

    def abort(self) -> None:
        """Drop the connection without a close frame (as when the server fails)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
