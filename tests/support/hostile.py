"""A hostile peer for devdb: raw WebSocket handshakes and frames, pyexasol's tunnel packet, logins by hand.

Real clients (pyexasol) never send what these helpers can: frames that announce gigabytes, malformed upgrades,
JSON that is not a login. The helpers speak just enough of RFC 6455 to say it on a plain socket.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import resource
import socket
import struct
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from redpss.devdb.tunnel import MAGIC

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8
UPGRADE = (
    "GET / HTTP/1.1\r\nHost: devdb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def connect(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A TCP connection to devdb on 127.0.0.1 from the given loopback source address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def upgrade(sock: socket.socket) -> int:
    """Send a WebSocket upgrade request; the HTTP status of the answer (0 when the connection closed)."""
    sock.sendall(UPGRADE.format(key=base64.b64encode(os.urandom(16)).decode()).encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(4096)
        if not data:
            return 0
        answer += data
    return int(answer.split(b" ", 2)[1])


def frame(opcode: int, payload: bytes, *, announced: int | None = None, fin: bool = True) -> bytes:
    """A masked client frame; `announced` claims another payload length than the bytes given."""
    length = len(payload) if announced is None else announced
    head = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """(opcode, payload) of the next server frame; None once the server closed the connection."""
    head = _exactly(sock, 2)
    if head is None:
        return None
    length = head[1] & 0x7F
    if length == 126:
        extended = _exactly(sock, 2)
        length = struct.unpack("!H", extended)[0] if extended else 0
    elif length == 127:
        extended = _exactly(sock, 8)
        length = struct.unpack("!Q", extended)[0] if extended else 0
    payload = _exactly(sock, length) if length else b""
    return (head[0] & 0x0F, payload or b"")


def replies(sock: socket.socket) -> tuple[list[dict[str, Any]], int | None]:
    """Every JSON reply until the server closes, and the close code it sent (None: closed without a close frame)."""
    answers: list[dict[str, Any]] = []
    while True:
        try:
            got = read_frame(sock)
        except OSError:
            return answers, None
        if got is None:
            return answers, None
        opcode, payload = got
        if opcode == CLOSE:
            return answers, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        answers.append(json.loads(payload))


def send_json(sock: socket.socket, message: object) -> None:
    sock.sendall(frame(TEXT, json.dumps(message).encode()))


def reply(sock: socket.socket) -> dict[str, Any]:
    got = read_frame(sock)
    assert got is not None and got[0] == TEXT, f"expected a JSON reply, got {got!r}"
    return dict(json.loads(got[1]))


def login(port: int, password: str, source: str = "127.0.0.1", user: str = "sys") -> dict[str, Any]:
    """A whole login by hand (password RSA-encrypted as pyexasol does); the reply to the credentials."""
    with connect(port, source, timeout=15.0) as sock:
        return login_on(sock, password, user)


def login_on(sock: socket.socket, password: str, user: str = "sys") -> dict[str, Any]:
    """Upgrade sock and log in on it; the reply to the credentials (the session stays open on sock)."""
    assert upgrade(sock) == 101
    send_json(sock, {"command": "login", "protocolVersion": 3})
    key = reply(sock)["responseData"]["publicKeyPem"]
    public = serialization.load_pem_public_key(key.encode())
    assert isinstance(public, rsa.RSAPublicKey)
    secret = base64.b64encode(public.encrypt(password.encode(), padding.PKCS1v15())).decode()
    send_json(sock, {"username": user, "password": secret, "useCompression": False})
    return reply(sock)


def open_tunnel(port: int, source: str = "127.0.0.1") -> socket.socket:
    """pyexasol's HTTP transport opening: the magic packet, then the address devdb hands out."""
    sock = connect(port, source)
    sock.sendall(MAGIC)
    answer = _exactly(sock, 24)
    assert answer is not None, "devdb closed the tunnel instead of answering the magic packet"
    return sock


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@contextlib.contextmanager
def raised_fd_limit(wanted: int) -> Iterator[int]:
    """Raise this process's soft RLIMIT_NOFILE towards wanted (never above the hard limit); restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    if soft == infinite or (soft >= wanted):
        yield wanted if soft == infinite else soft
        return
    raised = wanted if hard == infinite else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
    try:
        yield raised
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
