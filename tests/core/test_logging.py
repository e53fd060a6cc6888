"""Logging: journald's native protocol with structured fields, the ALERT level, files, and retention."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.logging import ALERT, LogContext, level_from_name, remove_expired_logs, setup_logging
from redpss.core.logging.journal import JournalHandler
from redpss.core.paths import InstancePaths
from tests.support.daemons import DaemonProcess
from tests.support.journal import JournalListener
from tests.support.wait import wait_for


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


def _at(day: dt.date, hour: int = 12) -> float:
    """A local time on `day`: the clock a record is stamped with."""
    return dt.datetime.combine(day, dt.time(hour)).timestamp()


def _log_at(created: float, message: str) -> None:
    """Log through the root logger as if the clock said `created`."""
    record = logging.makeLogRecord(
        {"name": "redpss.test", "levelno": logging.INFO, "levelname": "INFO", "msg": message, "created": created}
    )
    logging.getLogger().handle(record)


@pytest.fixture
def to_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None) -> Path:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("REDPSS_JOURNAL_SOCKET", raising=False)
    log_file = tmp_path / "log" / "sched.log"
    setup_logging("sched", instance="TST1", log_file=log_file, stream=io.StringIO())
    return log_file


def test_each_day_gets_its_own_file_and_the_service_log_links_to_the_newest(to_file: Path) -> None:
    first = dt.date(2026, 3, 28)
    for offset in range(3):
        _log_at(_at(first + dt.timedelta(days=offset), hour=23), f"line of day {offset}")
    _log_at(_at(first + dt.timedelta(days=1)), "late line of day 1")  # an earlier day's record: its own file
    folder = to_file.parent
    assert sorted(p.name for p in folder.iterdir()) == [
        "sched-2026-03-28.log",
        "sched-2026-03-29.log",
        "sched-2026-03-30.log",
        "sched.log",
    ]
    assert "line of day 0" in (folder / "sched-2026-03-28.log").read_text()
    day1 = (folder / "sched-2026-03-29.log").read_text().splitlines()
    assert [line.split("] ")[1] for line in day1] == ["line of day 1", "late line of day 1"]
    assert to_file.is_symlink() and to_file.readlink() == Path("sched-2026-03-30.log")
    assert to_file.read_text().endswith("line of day 2\n")


def test_a_log_file_from_before_daily_files_is_kept_as_the_file_of_its_day(to_file: Path) -> None:
    logging.getLogger().handlers[-1].close()  # as if the daemon was not yet running
    for path in to_file.parent.iterdir():
        path.unlink()
    to_file.write_text("old line\n")
    old = _at(dt.date(2026, 1, 5))
    os.utime(to_file, (old, old))
    setup_logging("sched", log_file=to_file, stream=io.StringIO())
    _log_at(_at(dt.date(2026, 1, 9)), "new line")
    assert (to_file.parent / "sched-2026-01-05.log").read_text() == "old line\n"
    assert to_file.readlink() == Path("sched-2026-01-09.log")


def test_processes_writing_one_log_at_once_lose_and_mix_no_line(tmp_path: Path) -> None:
    log_file = tmp_path / "log" / "redctl.log"
    writer = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from redpss.core.logging import setup_logging\n"
        "setup_logging('jmon', log_file=Path(sys.argv[1]))\n"
        "for n in range(300):\n"
        "    logging.getLogger('redpss.w').warning('writer %s line %d ' + 'x' * 500, sys.argv[2], n)\n"
    )
    env = {**os.environ, "REDPSS_JOURNAL_SOCKET": str(tmp_path / "nobody-listens")}
    processes = [
        subprocess.Popen([sys.executable, "-c", writer, str(log_file), name], env=env, stderr=subprocess.DEVNULL)
        for name in ("a", "b", "c")
    ]
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    lines = log_file.read_text().splitlines()
    assert len(lines) == 900
    for name in ("a", "b", "c"):
        numbers = [int(line.split(" line ")[1].split()[0]) for line in lines if f"writer {name} line" in line]
        assert numbers == list(range(300))
    assert all(line.endswith("x" * 500) for line in lines)


def test_retention_removes_whole_days_after_log_retention_days_and_keeps_the_link(to_file: Path) -> None:
    first = dt.date(2026, 1, 1)
    for offset in range(40):  # 40 days of a daemon's log, written under an injected clock
        _log_at(_at(first + dt.timedelta(days=offset)), f"day {offset}")
    db_log = to_file.parent / "DB" / "APP1" / "load.log"
    db_log.parent.mkdir(parents=True)
    db_log.write_text("x")
    now = _at(first + dt.timedelta(days=39))
    os.utime(db_log, (now - 31 * 86400, now - 31 * 86400))
    removed = remove_expired_logs(to_file.parent, 30, now=now)
    expected = [to_file.with_name(f"sched-{first + dt.timedelta(days=d)}.log") for d in range(9)]
    assert sorted(removed) == sorted([*expected, db_log])
    assert to_file.with_name("sched-2026-01-10.log").exists()  # ended 29.5 days ago: kept
    assert to_file.with_name("sched-2026-02-09.log").read_text().endswith("] day 39\n")
    assert to_file.is_symlink() and to_file.exists()  # links to today's file, where retention logged its removals
    assert (to_file.parent / "DB" / "APP1").is_dir()


def test_redctl_actions_are_logged_with_who_and_when_and_looking_is_not(instance: InstancePaths) -> None:
    env = {**os.environ, **instance.environment(), "SUDO_USER": "alice"}

    def redctl(*args: str) -> int:
        command = [sys.executable, "-m", "redpss.cli.redctl.main", *args]
        return subprocess.run(command, env=env, capture_output=True, timeout=60, check=False).returncode

    before = time.time()
    assert redctl("suspend") == 0
    assert redctl("version") == 0
    assert redctl("resume") == 0
    assert redctl("db_register", "bad-name") == 2
    lines = instance.log_file("redctl").read_text().splitlines()
    me = pwd.getpwuid(os.getuid()).pw_name
    assert [line.split("] ", 1)[1].rsplit(" (", 1)[0] for line in lines] == [
        f"alice (via sudo as {me}): redctl suspend -> exit 0",
        f"alice (via sudo as {me}): redctl resume -> exit 0",
        f"alice (via sudo as {me}): redctl db_register bad-name -> exit 2",
    ]
    assert [line.split()[2] for line in lines] == ["INFO", "INFO", "WARNING"]
    stamp = dt.datetime.strptime(lines[0][:19], "%Y-%m-%d %H:%M:%S").timestamp()
    assert before - 1 <= stamp <= time.time()


def test_a_daemon_removes_its_expired_day_files_and_writes_today_s(instance: InstancePaths, tmp_path: Path) -> None:
    today = dt.date.today()
    expired = instance.log / f"heartbeat-{today - dt.timedelta(days=32)}.log"  # retention 30: gone at start
    kept = instance.log / f"heartbeat-{today - dt.timedelta(days=29)}.log"
    for path in (expired, kept):
        path.write_text("old line\n")
    daemon = DaemonProcess("redpss.demo.heartbeat", instance, tmp_path / "heartbeat", log_name="heartbeat")
    try:
        daemon.wait_ready()
        wait_for(lambda: not expired.exists(), 30, what=f"{expired.name} removed by the daemon's retention")
        daemon.wait_log("ready")
    finally:
        assert daemon.stop() == 0
        daemon.close()
    assert kept.exists()
    link = instance.log_file("heartbeat")
    assert link.readlink() == Path(f"heartbeat-{today}.log")
    assert f"removed 1 log file(s) older than 30 days below {instance.log}" in link.read_text()
