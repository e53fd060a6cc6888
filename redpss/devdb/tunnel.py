"""pyexasol's HTTP transport, database side.

pyexasol opens a plain TCP connection to the database port and sends a 12-byte magic packet; the database answers
with an internal address (int, port, 16-byte dotted IPv4) and keeps the socket. The client then names that address
in `EXPORT ... AT 'http(s)://ip:port'` or `IMPORT ... AT ...`, and the database speaks HTTP over the kept socket as
the HTTP *client*: PUT with a chunked body for EXPORT, GET for IMPORT. With encryption the roles of TLS are reversed
too: the pyexasol side is the TLS server (self-signed) and the database the TLS client, which checks the server's
key against PUBLIC KEY 'sha256//...' when the statement carries one.
devdb hands out ports from a counter (they only name a kept socket), keyed with the IP the client connected to.
Unused tunnels are closed after a few seconds and capped per client address (see Tunnels).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from redpss.devdb.errors import DevDbError
from redpss.devdb.limits import RateLimitedLog

MAGIC = struct.pack("iii", 0x02212102, 1, 1)
TUNNEL_UNUSED_TIMEOUT = 5.0  # seconds a tunnel may wait for the IMPORT/EXPORT that names it (pyexasol: milliseconds)
MAX_TUNNELS_PER_ADDRESS = 16  # unused tunnels kept per client address; a new one beyond it closes the oldest
MAX_TUNNELS = 256  # unused tunnels kept in all; a new one beyond it closes the oldest
CLAIMED_TIMEOUT = 600.0  # seconds a tunnel named by a running statement is kept (the statement may wait for a lock)
IO_TIMEOUT = 120.0  # seconds without progress before a transfer fails

log = logging.getLogger("redpss.devdb.tunnel")


@dataclass
class _Kept:
    sock: socket.socket
    peer: str
    born: float
    claimed: bool = False  # a statement that names it is running (it may be waiting for the write lock)


class Tunnels:
    """Kept tunnel sockets by the address handed to the client ("ip:port").

    A tunnel costs a file descriptor until its statement takes it, and anybody who can reach the port can open one,
    so unused tunnels are closed after `unused_timeout` seconds (`expire()`, called by the server's accept loop) and
    only so many are kept per client address and in all; the oldest goes first, so a flood cannot keep a real
    client's fresh tunnel out. Closing is logged, rate-limited.
    """

    def __init__(
        self,
        unused_timeout: float = TUNNEL_UNUSED_TIMEOUT,
        per_address: int = MAX_TUNNELS_PER_ADDRESS,
        total: int = MAX_TUNNELS,
    ) -> None:
        self.unused_timeout = unused_timeout
        self.per_address = per_address
        self.total = total
        self._lock = threading.Lock()
        self._kept: dict[str, _Kept] = {}  # insertion order is age order
        self._ports = itertools.count(20000)
        self._evicted_log = RateLimitedLog(log)
        self._expired_log = RateLimitedLog(log)

    def accept(self, sock: socket.socket, peer: str) -> None:
        """Answer the magic packet (already read) and keep the socket for a later EXPORT/IMPORT."""
        ip = sock.getsockname()[0]
        with self._lock:
            port = next(self._ports)
            if port > 65000:
                self._ports = itertools.count(20000)
                port = next(self._ports)
        with self._lock:  # kept before the client learns the port: its statement may arrive at once
            self._kept[f"{ip}:{port}"] = _Kept(sock, peer, time.monotonic())
            evicted = self._over_cap(peer)
        try:
            sock.sendall(struct.pack("ii16s", 1, port, ip.encode()))
        except OSError:
            with self._lock:
                self._kept.pop(f"{ip}:{port}", None)
            raise
        finally:
            for item in evicted:
                item.sock.close()
        if evicted:
            self._evicted_log.warning(
                "devdb: too many unused HTTP transport tunnels (at most %d per client address, %d in all); "
                "closed the oldest, from %s",
                self.per_address,
                self.total,
                evicted[0].peer,
            )

    def _over_cap(self, peer: str) -> list[_Kept]:
        evicted: list[_Kept] = []
        unclaimed = [key for key, kept in self._kept.items() if not kept.claimed]
        mine = [key for key in unclaimed if self._kept[key].peer == peer]
        for key in mine[: max(0, len(mine) - self.per_address)]:
            evicted.append(self._kept.pop(key))
            unclaimed.remove(key)
        for key in unclaimed[: max(0, len(self._kept) - self.total)]:
            evicted.append(self._kept.pop(key))
        return evicted

    def flush_logs(self) -> None:
        self._evicted_log.flush()
        self._expired_log.flush()

    def claim(self, statement: str) -> None:
        """Keep the tunnels a statement names (by their "ip:port") until it takes them, however long it waits."""
        with self._lock:
            for key, kept in self._kept.items():
                if key in statement:
                    kept.claimed = True

    def expire(self) -> None:
        """Close the tunnels no statement took within unused_timeout seconds (CLAIMED_TIMEOUT once claimed)."""
        now = time.monotonic()
        with self._lock:
            stale = [
                key
                for key, kept in self._kept.items()
                if now - kept.born > (CLAIMED_TIMEOUT if kept.claimed else self.unused_timeout)
            ]
            old = [self._kept.pop(key) for key in stale]
        for item in old:
            item.sock.close()
        if old:
            self._expired_log.warning(
                "devdb: closed %d HTTP transport tunnel(s) no IMPORT/EXPORT used within %.0f s (first from %s)",
                len(old),
                self.unused_timeout,
                old[0].peer,
            )

    def count(self, *, claimed: bool | None = None) -> int:
        """Kept tunnels (only the claimed or unclaimed ones when asked)."""
        with self._lock:
            return sum(1 for kept in self._kept.values() if claimed is None or kept.claimed == claimed)

    def take(self, address: str) -> socket.socket:
        with self._lock:
            entry = self._kept.pop(address, None)
        if entry is None:
            raise DevDbError(
                f"no HTTP transport connection for {address} (the client must open it first, and devdb closes one "
                f"that no statement uses within {self.unused_timeout:.0f} s)"
            )
        return entry.sock

    def close_all(self) -> None:
        with self._lock:
            kept = [item.sock for item in self._kept.values()]
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
