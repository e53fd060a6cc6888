"""Retention of the database's logs, against the embedded database: old rows go in bounded batches, rows that
still mean something stay, and each table's removal is logged."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.config import Secret, parse_config, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.db.retention import purge_expired_rows
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.devdb.testing import InProcessDevDb
from redpss.jmon.housekeeping import Housekeeping

NOW = dt.datetime(2026, 6, 15, 12, 0, 0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcessDevDb]:
    devdb = InProcessDevDb(tmp_path / "devdb", port=free_port())
    devdb.start()
    yield devdb
    devdb.stop()


@pytest.fixture
def db(server: InProcessDevDb) -> Iterator[DbSession]:
    session = DbSession(DbSettings(dsn=server.dsn, user="sys", password=Secret("exasol"), encryption=False))
    install(session, ["APP1"])
    yield session
    session.close()


def _ago(days: float) -> str:
    return (NOW - dt.timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


def _insert(db: DbSession, table: str, columns: str, rows: list[str]) -> None:
    for values in rows:
        db.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})")
    db.commit()


def _count(db: DbSession, table: str) -> int:
    return int(db.fetchall(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_rows_older_than_the_retention_go_in_bounded_batches_and_live_ones_stay(
    db: DbSession, caplog: pytest.LogCaptureFixture
) -> None:
    job_log = "RUN_ID, JOB_ID, STATUS, SCHEDULED_AT, STARTED_AT, ENDED_AT"
    old_runs = [f"'old{n}', 1, 'OK', '{_ago(40 + n)}', '{_ago(40 + n)}', '{_ago(40 + n)}'" for n in range(5)]
    _insert(db, "APP1.ADM_JOB_LOG", job_log, old_runs)
    _insert(db, "APP1.ADM_JOB_LOG", job_log, [f"'young', 1, 'OK', '{_ago(29)}', '{_ago(29)}', '{_ago(29)}'"])
    _insert(db, "APP1.ADM_JOB_LOG", job_log, [f"'running', 1, 'RUNNING', '{_ago(60)}', '{_ago(60)}', NULL"])
    _insert(db, "APP1.ADM_JOB_LOG", job_log, [f"'skipped', 1, 'SKIPPED', '{_ago(31)}', NULL, NULL"])
    _insert(db, "APP1.ADM_WATCHER_LOG", "RUN_ID, WATCHER_ID, STATUS, ENDED_AT", [f"'w', 1, 'OK', '{_ago(45)}'"])
    errors = "WATCHER_ID, ERROR_AT, RESET_AT"
    _insert(db, "APP1.ADM_WATCHER_EXEC_ERROR", errors, [f"1, '{_ago(50)}', '{_ago(49)}'", f"2, '{_ago(50)}', NULL"])
    _insert(db, "APP1.LOG_MESSAGES", "LOG_TIME, LOG_LEVEL", [f"'{_ago(31)}', 'ERROR'", f"'{_ago(1)}', 'ALERT'"])
    _insert(db, "REDSYS.ADM_JMON_LOAD", "LOG_TIME, POOL", [f"'{_ago(d)}', 'DEFAULT'" for d in (90, 35, 30.5, 2)])
    _insert(
        db,
        "REDSYS.ADM_JMON_JOBLOG",
        "LOG_TIME, SCHEMA_NAME, KIND, ID, RUN_ID, STATUS",
        [f"'{_ago(33)}', 'APP1', 'JOB', 1, 'r', 'OK'"],
    )

    with caplog.at_level(logging.INFO, logger="redpss.core.db.retention"):
        report = purge_expired_rows(db, 30, now=NOW.timestamp(), batch=2)

    assert report.removed == {
        "APP1.ADM_JOB_LOG": 6,
        "APP1.ADM_WATCHER_LOG": 1,
        "APP1.ADM_WATCHER_EXEC_ERROR": 1,
        "APP1.LOG_MESSAGES": 1,
        "REDSYS.ADM_JMON_LOAD": 3,
        "REDSYS.ADM_JMON_JOBLOG": 1,
    }
    ids = {r[0] for r in db.fetchall("SELECT RUN_ID FROM APP1.ADM_JOB_LOG")}
    assert ids == {"young", "running"}  # a run still RUNNING is kept at any age
    assert db.fetchall("SELECT WATCHER_ID FROM APP1.ADM_WATCHER_EXEC_ERROR") == [(2,)]  # not reset: still blocks
    assert _count(db, "APP1.LOG_MESSAGES") == 1
    assert _count(db, "REDSYS.ADM_JMON_LOAD") == 1
    assert report.largest_batch == 2  # never more than a batch at once
    assert report.batches >= 4  # the 6 job-log rows alone take three batches and one that finds nothing more
    messages = [r.getMessage() for r in caplog.records]
    assert "removed 6 row(s) older than 30 days (before 2026-05-16 12:00:00) from APP1.ADM_JOB_LOG" in messages
    assert "removed 3 row(s) older than 30 days (before 2026-05-16 12:00:00) from REDSYS.ADM_JMON_LOAD" in messages
    assert len(messages) == 6
    again = purge_expired_rows(db, 30, now=NOW.timestamp(), batch=2)
    assert again.removed == {}


def test_retention_zero_keeps_everything(db: DbSession) -> None:
    _insert(db, "APP1.LOG_MESSAGES", "LOG_TIME, LOG_LEVEL", [f"'{_ago(3000)}', 'ERROR'"])
    assert purge_expired_rows(db, 0, now=NOW.timestamp()).removed == {}
    assert _count(db, "APP1.LOG_MESSAGES") == 1


def test_jmon_housekeeping_purges_once_a_day_and_keeps_the_daemon_rows(
    server: InProcessDevDb, db: DbSession, instance: InstancePaths
) -> None:
    config = parse_config(
        render_config(
            {
                "DEFAULT": {
                    "exa_connection": server.dsn,
                    "exa_username": "sys",
                    "exa_password": "exasol",
                    "exa_dbname": "DEVDB",
                }
            }
        ).replace("#exa_encryption = true", "exa_encryption = false"),
        "c",
    )
    _insert(db, "APP1.LOG_MESSAGES", "LOG_TIME, LOG_LEVEL", [f"'{_ago(31)}', 'ERROR'", f"'{_ago(29)}', 'ERROR'"])

    async def two_ticks_and_stop() -> Housekeeping:
        housekeeping = Housekeeping(config, instance)
        housekeeping.tick(NOW.timestamp(), config, "3 definitions, 0 running")
        assert housekeeping.retention.task is not None and housekeeping.daemon_status.task is not None
        first = housekeeping.retention.task
        await asyncio.gather(housekeeping.retention.task, housekeeping.daemon_status.task)
        _insert(db, "APP1.LOG_MESSAGES", "LOG_TIME, LOG_LEVEL", [f"'{_ago(40)}', 'ERROR'"])
        housekeeping.tick(NOW.timestamp() + 3600, config, "3 definitions, 1 running")  # the same day: no purge
        assert housekeeping.retention.task is first
        await housekeeping.daemon_status.task
        rows = {r[0]: r[1:] for r in db.fetchall('SELECT DAEMON, "STATE", STATUS_TEXT FROM REDSYS.DAEMON_STATUS')}
        assert rows.pop("jmon") == ("RUNNING", "3 definitions, 1 running")
        assert rows.pop("sched")[0] == "NOT_RUNNING"  # nothing runs but JMON's housekeeping here
        assert all(state == "NOT_RUNNING" and text for state, text in rows.values())  # any other daemon alike
        await housekeeping.close()
        return housekeeping

    housekeeping = asyncio.run(two_ticks_and_stop())
    assert _count(db, "APP1.LOG_MESSAGES") == 2  # the 31-day-old row went at the first tick, not the newer one
    assert housekeeping.retention.next_run == NOW.timestamp() + 86400
    assert db.fetchall("""SELECT "STATE" FROM REDSYS.DAEMON_STATUS WHERE DAEMON = 'jmon'""") == [("STOPPED",)]
