"""sd_notify helpers: the watchdog interval and the no-op outside systemd."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from redpss.core.systemd import Notifier, watchdog_interval
from tests.support.notify import NotifyListener
from tests.support.wait import wait_for


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None


def test_notifier_does_nothing_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("x")
    notifier.watchdog()
    notifier.close()


def test_notifier_sends_state_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = NotifyListener(tmp_path / "notify.socket")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    notifier = Notifier()
    try:
        notifier.ready("serving")
        notifier.status("3 jobs running")
        notifier.stopping("draining")
        ready = listener.wait_for("READY", "1")
        assert ready["STATUS"] == "serving"
        assert ready["MAINPID"] == str(os.getpid())
        assert listener.wait_for("STATUS", "3 jobs running")
        assert listener.wait_for("STOPPING", "1")["STATUS"] == "draining"
    finally:
        notifier.close()
        listener.close()


def test_a_receiver_that_stops_reading_never_blocks_the_sender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = NotifyListener(tmp_path / "notify.socket")  # bound, but nobody reads it while the sender runs
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    notifier = Notifier()
    sent = 5000  # far more than a unix datagram queue holds

    def send_all() -> None:
        for number in range(sent):
            notifier.status(f"status {number} " + "x" * 200)
        notifier.status("last")

    sender = threading.Thread(target=send_all, daemon=True)
    try:
        sender.start()
        # A blocking send would hang on the full queue: the sender would never finish.
        wait_for(lambda: not sender.is_alive(), 30, what="the sender to get through all notifications")
        queued = _drain(listener)
    finally:
        notifier.close()
        listener.close()
        sender.join(timeout=30)  # only while failing: the thread ends once the socket is closed
    assert queued[0].startswith("status 0 ")  # what was queued before the queue filled arrives intact
    assert len(queued) < sent, "the queue never filled, so the test did not exercise a stalled receiver"


def _drain(listener: NotifyListener) -> list[str]:
    """The STATUS texts waiting in the listener's queue, in order."""
    listener.sock.setblocking(False)
    texts: list[str] = []
    while True:
        try:
            data = listener.sock.recv(65536)
        except BlockingIOError:
            return texts
        texts += [line.split("=", 1)[1] for line in data.decode().splitlines() if line.startswith("STATUS=")]
