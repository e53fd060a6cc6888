"""sd_notify helpers: the watchdog interval and the no-op outside systemd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from redpss.core.systemd import Notifier, watchdog_interval
from tests.support.notify import NotifyListener


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
    listener = NotifyListener(tmp_path / "notify.socket")  # bound, but nobody reads it
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    notifier = Notifier()
    try:
        for number in range(5000):  # far more than a unix datagram queue holds
            notifier.status(f"status {number} " + "x" * 200)
    finally:
        notifier.close()
        listener.close()
