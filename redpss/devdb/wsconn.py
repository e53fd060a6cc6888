"""A WebSocket server connection over a blocking socket (plain or TLS), with websockets' sans-I/O protocol.

Exasol neither pings nor caps message sizes, so neither does this: max_size is None and no keepalive runs. One
thread reads (and may be waiting for data) while another sends replies; because a TLS connection must never be
read and written at the same time, the socket is non-blocking and every read or write happens under one lock.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from collections import deque

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

READ_SIZE = 1 << 20
_QUIET = logging.getLogger("redpss.devdb.websocket")
_QUIET.setLevel(logging.WARNING)  # websockets logs every connection at INFO; devdb logs sessions itself
HANDSHAKE_TIMEOUT = 10.0


class WebSocketChannel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._protocol = ServerProtocol(max_size=None, logger=_QUIET)
        self._lock = threading.Lock()
        self._messages: deque[bytes | str] = deque()
        self._parts: list[bytes] = []
        self._text = False
        self._closed = False

    def handshake(self) -> bool:
        """Complete the HTTP upgrade; False if the peer is not a WebSocket client."""
        self.sock.settimeout(HANDSHAKE_TIMEOUT)
        while True:
            data = self.sock.recv(65536)
            if not data:
                return False
            self._protocol.receive_data(data)
            for event in self._protocol.events_received():
                if isinstance(event, Request):
                    response = self._protocol.accept(event)
                    self._protocol.send_response(response)
                    for chunk in self._protocol.data_to_send():
                        self.sock.sendall(chunk)
                    if response.status_code != 101:
                        return False
                    self.sock.setblocking(False)
                    return True

    def recv(self) -> bytes | str | None:
        """The next message, or None once the connection is closed."""
        while not self._messages:
            if self._closed:
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
            self._messages.append(data.decode() if self._text else data)

    def send(self, data: bytes, *, binary: bool) -> None:
        with self._lock:
            if binary:
                self._protocol.send_binary(data)
            else:
                self._protocol.send_text(data)
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
        try:
            ready = select.select([self.sock] if readable else [], [] if readable else [self.sock], [], 0.5)
        except (OSError, ValueError):
            self._closed = True
            return False
        return bool(ready[0] or ready[1])

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
