"""Commit, rollback, failed transactions, serialized writers, abort and timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb


def test_commit_and_rollback(devdb: InProcessDevDb, conn: Any, schema: str) -> None:
    conn.execute("CREATE TABLE t (v DECIMAL(9,0))")
    conn.set_autocommit(False)
    conn.execute("INSERT INTO t VALUES (1)")
    with devdb.connect(schema=schema) as other:
        assert other.execute("SELECT COUNT(*) FROM t").fetchval() == 0  # not committed yet
        conn.commit()
        assert other.execute("SELECT COUNT(*) FROM t").fetchval() == 1
    conn.execute("INSERT INTO t VALUES (2)")
    conn.rollback()
    assert conn.execute("SELECT COUNT(*) FROM t").fetchval() == 1
    conn.commit()
    conn.commit()  # COMMIT with no open transaction is fine


def test_commit_after_failed_statement_is_an_error(conn: Any) -> None:
    conn.execute("CREATE TABLE t (v DECIMAL(9,0))")
    conn.set_autocommit(False)
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(pyexasol.ExaQueryError):
        conn.execute("INSERT INTO t VALUES ('not a number')")
    with pytest.raises(pyexasol.ExaQueryError, match="rolled back after an earlier error"):
        conn.execute("SELECT COUNT(*) FROM t")
    with pytest.raises(pyexasol.ExaQueryError, match="COMMIT failed"):
        conn.commit()
    assert conn.execute("SELECT COUNT(*) FROM t").fetchval() == 0
    conn.commit()


def test_two_sessions_write_concurrently_without_conflict(devdb: InProcessDevDb, conn: Any, schema: str) -> None:
    conn.execute("CREATE TABLE counter (id DECIMAL(9,0), n DECIMAL(18,0))")
    conn.execute("INSERT INTO counter VALUES (1, 0)")
    failures: list[BaseException] = []

    def bump(times: int) -> None:
        try:
            with devdb.connect(schema=schema, autocommit=False) as connection:
                for _ in range(times):
                    connection.execute("SELECT n FROM counter WHERE id = 1")  # a snapshot taken before writing
                    connection.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                    connection.commit()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert conn.execute("SELECT n FROM counter").fetchval() == 50


def test_abort_query(devdb: InProcessDevDb) -> None:
    with devdb.connect() as connection:
        started = time.monotonic()
        timer = threading.Timer(0.3, connection.abort_query)
        timer.start()
        try:
            with pytest.raises(pyexasol.ExaQueryAbortError):
                connection.execute("EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(30)")
        finally:
            timer.join()
        assert time.monotonic() - started < 10
        assert connection.execute("SELECT 1 FROM DUAL").fetchval() == 1  # the session lives on


def test_query_timeout(devdb: InProcessDevDb) -> None:
    with devdb.connect(query_timeout=1) as connection:
        with pytest.raises(pyexasol.ExaQueryTimeoutError):
            connection.execute("EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(30)")
        with pytest.raises(pyexasol.ExaQueryTimeoutError):
            connection.execute('SELECT SUM(a."RANGE" * b."RANGE") FROM range(1000000) a, range(1000000) b')
        assert connection.execute("SELECT 1 FROM DUAL").fetchval() == 1
