"""A NOTIFY_SOCKET bound by the test, standing where systemd would: collects what sd_notify sends."""

from __future__ import annotations

import socket
import time
from pathlib import Path


class NotifyListener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 15.0, nth: int = 1) -> dict[str, str]:
        """The `nth` message (received so far or arriving within `timeout`) with `key` (= `value`)."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [m for m in self.messages if key in m and (value is None or m[key] == value)]
            if len(matching) >= nth:
                return matching[nth - 1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"notification {key}={value or '*'} #{nth} not received within {timeout} s: {self.messages}"
                )
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def drain(self) -> None:
        """Read every notification sent so far, so `count` covers them all."""
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536)
                self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def count(self, key: str, value: str | None = None) -> int:
        return sum(1 for m in self.messages if key in m and (value is None or m[key] == value))

    def close(self) -> None:
        self.sock.close()
