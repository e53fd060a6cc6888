"""Two small network facts RED-PSS asks in several places: a free loopback port, and whether a TCP port answers."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for the demo, tests and free-standing devdb)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tcp_reachable(host: str, port: int, timeout: float) -> tuple[bool, str]:
    """(True, "") when a TCP connect to host:port succeeds within `timeout`, else (False, why)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, exc.strerror or str(exc) or type(exc).__name__
