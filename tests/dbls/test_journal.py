"""DBLS's journald forwarder: lines go out in order, in bursts, from its own thread; an overflow is counted and said.

Outside systemd the forwarder hands the lines to the daemon's own log, which is what these tests read."""

from __future__ import annotations

import logging

import pytest

from redpss.core.logging.setup import JOURNAL_SOCKET_ENV
from redpss.dbls.batch import DbLine
from redpss.dbls.journal import journal_forwarder
from tests.support.wait import wait_for

STAMP = "2026-11-30 01:02:03.456789"


@pytest.fixture
def forwarded(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.delenv(JOURNAL_SOCKET_ENV, raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    caplog.set_level(logging.INFO, logger="redpss.dbls.database")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "redpss.dbls.database"]


def lines(*texts: str) -> list[DbLine]:
    return [DbLine("APP1", "ERROR", STAMP, "APP1.JOB", text) for text in texts]


def test_lines_submitted_after_a_burst_wake_the_thread_again(forwarded: pytest.LogCaptureFixture) -> None:
    forwarder = journal_forwarder("TST")
    try:
        forwarder.submit(lines("first", "second"))
        wait_for(lambda: len(messages(forwarded)) == 2, what="the first burst in the log")
        forwarder.submit(lines("third"))
        wait_for(lambda: len(messages(forwarded)) == 3, what="the line submitted after the burst")
    finally:
        forwarder.close()
    assert messages(forwarded) == ["APP1.JOB: first", "APP1.JOB: second", "APP1.JOB: third"]
    assert all(r.levelno == logging.ERROR for r in forwarded.records)


def test_lines_beyond_the_queue_are_counted_and_reported_once(forwarded: pytest.LogCaptureFixture) -> None:
    forwarder = journal_forwarder("TST", queue_size=3)
    forwarder.submit(lines(*(f"line {n}" for n in range(5))))
    forwarder.close()  # sends what is queued before it returns
    assert forwarder.dropped == 2
    said = messages(forwarded)
    assert said[:3] == ["APP1.JOB: line 0", "APP1.JOB: line 1", "APP1.JOB: line 2"]
    assert len(said) == 4 and said[3].startswith("2 ERROR/ALERT line(s) from the database were not sent to journald")
