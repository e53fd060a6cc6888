"""pyexasol's HTTP transport, database side.

pyexasol opens a plain TCP connection to the database port and sends a 12-byte magic packet; the database answers
with an internal address (int, port, 16-byte dotted IPv4) and keeps the socket. The client then names that address
in `EXPORT ... AT 'http(s)://ip:port'` or `IMPORT ... AT ...`, and the database speaks HTTP over the kept socket as
the HTTP *client*: PUT with a chunked body for EXPORT, GET for IMPORT. With encryption the roles of TLS are reversed
too: the pyexasol side is the TLS server (self-signed) and the database the TLS client, which checks the server's
key against PUBLIC KEY 'sha256//...' when the statement carries one.
devdb hands out ports from a counter (they only name a kept socket), keyed with the IP the client connected to.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from redpss.devdb.errors import DevDbError

MAGIC = struct.pack("iii", 0x02212102, 1, 1)
TUNNEL_MAX_AGE = 600.0  # seconds an unused tunnel is kept
IO_TIMEOUT = 120.0  # seconds without progress before a transfer fails


class Tunnels:
    """Kept tunnel sockets by the address handed to the client ("ip:port")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[socket.socket, float]] = {}
        self._ports = itertools.count(20000)

    def accept(self, sock: socket.socket) -> None:
        """Answer the magic packet (already read) and keep the socket for a later EXPORT/IMPORT."""
        ip = sock.getsockname()[0]
        with self._lock:
            port = next(self._ports)
            if port > 65000:
                self._ports = itertools.count(20000)
                port = next(self._ports)
        sock.sendall(struct.pack("ii16s", 1, port, ip.encode()))
        now = time.monotonic()
        with self._lock:
            stale = [key for key, (_, born) in self._kept.items() if now - born > TUNNEL_MAX_AGE]
            old = [self._kept.pop(key)[0] for key in stale]
            self._kept[f"{ip}:{port}"] = (sock, now)
        for item in old:
            item.close()

    def take(self, address: str) -> socket.socket:
        with self._lock:
            entry = self._kept.pop(address, None)
        if entry is None:
            raise DevDbError(f"no HTTP transport connection for {address} (it must be opened by the client first)")
        return entry[0]

    def close_all(self) -> None:
        with self._lock:
            kept = [sock for sock, _ in self._kept.values()]
            self._kept.clear()
        for sock in kept:
            sock.close()


def secure(sock: socket.socket, public_key: str | None) -> ssl.SSLSocket:
    """TLS client over the tunnel; the client's certificate is checked only against PUBLIC KEY, as Exasol does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    wrapped = context.wrap_socket(sock)
    if public_key:
        der = wrapped.getpeercert(binary_form=True)
        if der is None:
            raise DevDbError("the HTTP transport peer sent no certificate")
        spki = (
            x509.load_der_x509_certificate(der)
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        actual = "sha256//" + base64.b64encode(hashlib.sha256(spki).digest()).decode()
        if actual != public_key:
            wrapped.close()
            raise DevDbError(f"the HTTP transport peer's public key {actual} does not match PUBLIC KEY '{public_key}'")
    return wrapped


def put(sock: socket.socket, path: str, chunks: Iterable[bytes]) -> None:
    """HTTP PUT with a chunked body; the peer must answer 200."""
    sock.sendall(f"PUT /{path} HTTP/1.1\r\nHost: devdb\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    for chunk in chunks:
        if chunk:
            sock.sendall(b"%X\r\n%b\r\n" % (len(chunk), chunk))
    sock.sendall(b"0\r\n\r\n")
    with sock.makefile("rb") as reader:
        _expect_ok(reader)


def get(sock: socket.socket, path: str, out: BinaryIO) -> None:
    """HTTP GET; writes the chunked body to out. A body without its final chunk means the client gave up."""
    sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: devdb\r\n\r\n".encode())
    with sock.makefile("rb") as reader:
        headers = _expect_ok(reader)
        if "chunked" not in headers.get("transfer-encoding", ""):
            raise DevDbError("the HTTP transport answer is not chunked")
        while True:
            size_line = reader.readline()
            if not size_line:
                raise DevDbError("the client closed the HTTP transport before the end of the data (IMPORT aborted)")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                return
            data = reader.read(size)
            if len(data) != size or reader.read(2) != b"\r\n":
                raise DevDbError("the client closed the HTTP transport in the middle of a chunk (IMPORT aborted)")
            out.write(data)


def _expect_ok(reader: BinaryIO) -> dict[str, str]:
    status = reader.readline()
    if not status:
        raise DevDbError("the client closed the HTTP transport without an answer")
    parts = status.split()
    if len(parts) < 2 or parts[1] != b"200":
        raise DevDbError(f"the HTTP transport answered {status.decode(errors='replace').strip()}")
    headers: dict[str, str] = {}
    while True:
        line = reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("iso-8859-1").partition(":")
        headers[name.strip().lower()] = value.strip().lower()
