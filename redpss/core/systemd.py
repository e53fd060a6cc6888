"""sd_notify for the daemons: READY, STATUS, WATCHDOG, STOPPING, RELOADING.

Outside systemd (no NOTIFY_SOCKET) every call does nothing, so the same daemon runs under `redctl start_trace`, in
tests and under systemd. The sending is sdnotify's; this module decides what is sent and when the watchdog is due.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import sdnotify


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec=), or None when systemd does not watch this process.

    WATCHDOG_PID, when set, names the process systemd watches; a child that inherited the variables must not ping.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000 / 2


class Notifier:
    """The notifications one daemon sends; a no-op when NOTIFY_SOCKET is not set."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))  # sdnotify reads the address from the environment
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        sock = getattr(self._notifier, "socket", None)
        if sock is not None:
            # A receiver that stops reading (a stuck supervisor) must never block the daemon's loop, and with it
            # signal handling: when its queue is full, the notification is dropped (sdnotify ignores the error).
            sock.setblocking(False)

    def _send(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))

    def ready(self, status: str = "") -> None:
        self._send("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        self._send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        self._send("RELOADING=1")

    def close(self) -> None:
        sock = getattr(self._notifier, "socket", None)
        if sock is not None:
            sock.close()
        self._notifier = None
