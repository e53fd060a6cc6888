"""Logging: journald's native protocol with structured fields, the ALERT level, files, and retention."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.logging import ALERT, LogContext, level_from_name, remove_expired_logs, setup_logging
from redpss.core.logging.journal import JournalHandler
from tests.support.journal import JournalListener


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[JournalListener]:
    listener = JournalListener(tmp_path / "journal.socket")
    yield listener
    listener.close()


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def _logger_to(journal: JournalListener, context: LogContext) -> tuple[logging.Logger, JournalHandler]:
    handler = JournalHandler(context.journal_fields(), str(journal.path))
    logger = logging.getLogger(f"redpss.test.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, handler


def test_structured_fields_reach_journald(journal: JournalListener) -> None:
    logger, handler = _logger_to(journal, LogContext(service="sched", instance="TST1"))
    try:
        logger.warning("job %s late", "LOAD_ORDERS", extra={"SCHEMA": "APP1", "JOB_ID": 7})
        entry = journal.receive()
    finally:
        handler.close()
    assert entry["MESSAGE"] == "job LOAD_ORDERS late"
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "redpss-sched"
    assert entry["REDENV"] == "TST1"
    assert entry["REDPSS_SERVICE"] == "sched"
    assert entry["SCHEMA"] == "APP1"
    assert entry["JOB_ID"] == "7"
    assert entry["REDPSS_LEVEL"] == "WARNING"
    assert entry["CODE_FUNC"] == "test_structured_fields_reach_journald"


def test_alert_is_a_level_above_error_with_syslog_priority_alert(journal: JournalListener) -> None:
    assert logging.CRITICAL < ALERT == level_from_name("alert")
    assert level_from_name("WARN") == logging.WARNING
    with pytest.raises(ValueError, match="allowed: DEBUG, INFO, WARN, ERROR, ALERT"):
        level_from_name("LOUD")
    logger, handler = _logger_to(journal, LogContext(service="dbls"))
    try:
        logger.log(ALERT, "disk full")
        entry = journal.receive()
    finally:
        handler.close()
    assert (entry["PRIORITY"], entry["REDPSS_LEVEL"]) == ("1", "ALERT")
    assert "REDENV" not in entry


def test_multiline_messages_and_tracebacks_keep_their_lines(journal: JournalListener) -> None:
    logger, handler = _logger_to(journal, LogContext(service="jexec", instance="DEV1"))
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("script failed\nsecond line")
        entry = journal.receive()
    finally:
        handler.close()
    assert entry["MESSAGE"].startswith("script failed\nsecond line\nTraceback")
    assert "RuntimeError: boom" in entry["MESSAGE"]
    assert entry["PRIORITY"] == "3"


def test_an_entry_larger_than_a_datagram_travels_in_a_memfd(journal: JournalListener) -> None:
    logger, handler = _logger_to(journal, LogContext(service="dbls", instance="TST1"))
    big = "x" * (1024 * 1024)  # far above the datagram limit of a unix socket
    try:
        logger.info("buffer %s", big)
        entry = journal.receive()
    finally:
        handler.close()
    assert entry["MESSAGE"] == f"buffer {big}"
    assert entry["REDENV"] == "TST1"


def test_setup_logging_writes_console_lines_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("REDPSS_JOURNAL_SOCKET", raising=False)
    stream = io.StringIO()
    log_file = tmp_path / "log" / "sched.log"
    setup_logging("sched", instance="TST1", level="WARN", log_file=log_file, stream=stream)
    logger = logging.getLogger("redpss.sched.pool")
    logger.info("not shown at WARN")
    logger.error("worker died", extra={"JOB_ID": 3})
    console = stream.getvalue()
    assert "not shown" not in console
    assert "TST1 redpss-sched[" in console
    assert "ERROR: worker died {JOB_ID=3}" in console
    written = log_file.read_text()
    assert "ERROR [redpss.sched.pool] worker died {JOB_ID=3}" in written
    assert "not shown" not in written


def test_setup_logging_uses_the_journal_when_its_socket_is_given(
    journal: JournalListener, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    monkeypatch.setenv("REDPSS_JOURNAL_SOCKET", str(journal.path))
    stream = io.StringIO()
    setup_logging("jmon", instance="TST1", level="DEBUG", stream=stream)
    logging.getLogger("redpss.jmon").debug("polled 3 jobs", extra={"SCHEMA": "APP1"})
    entry = journal.receive()
    assert (entry["MESSAGE"], entry["SCHEMA"], entry["REDPSS_SERVICE"]) == ("polled 3 jobs", "APP1", "jmon")
    assert stream.getvalue() == ""  # under journald nothing is written twice


def test_retention_removes_old_files_including_db_logs_and_keeps_folders(tmp_path: Path) -> None:
    now = time.time()
    log_root = tmp_path / "log"
    old = [log_root / "sched.log.1", log_root / "DB" / "APP1" / "load.log", log_root / "REST" / "access.log"]
    young = [log_root / "sched.log", log_root / "DB" / "APP1" / "today.log"]
    for path in old + young:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for path in old:
        os.utime(path, (now - 31 * 86400, now - 31 * 86400))
    os.utime(young[1], (now - 29 * 86400, now - 29 * 86400))
    removed = remove_expired_logs(log_root, 30, now=now)
    assert sorted(removed) == sorted(old)
    assert all(p.exists() for p in young)
    assert (log_root / "DB" / "APP1").is_dir()
    assert remove_expired_logs(log_root, 0, now=now + 999 * 86400) == []
    assert remove_expired_logs(tmp_path / "missing", 30) == []
