"""Faults and lifecycle: dropped sessions, restart on the same port with data kept, the daemon under SIGTERM."""

from __future__ import annotations

from pathlib import Path

import pyexasol
import pytest

from redpss.devdb.testing import DevDbProcess, InProcessDevDb


def test_restart_keeps_data_and_port(tmp_path: Path) -> None:
    with InProcessDevDb(tmp_path / "db") as devdb:
        port = devdb.port
        with devdb.connect() as connection:
            connection.execute("CREATE SCHEMA keep")
            connection.execute("CREATE TABLE keep.t (name VARCHAR(30) UTF8)")
            connection.execute("INSERT INTO keep.t VALUES ('survives')")
        devdb.restart()
        assert devdb.port == port
        with devdb.connect(schema="KEEP") as connection:
            statement = connection.execute("SELECT name FROM t")
            assert statement.fetchall() == [("survives",)]
            assert statement.columns()["NAME"]["size"] == 30  # the shadow catalog survives too


def test_drop_sessions_cuts_clients_and_rolls_back(tmp_path: Path) -> None:
    with InProcessDevDb(tmp_path / "db") as devdb:
        connection = devdb.connect(autocommit=False)
        connection.execute("CREATE SCHEMA s")
        connection.commit()
        connection.execute("CREATE TABLE s.t (v DECIMAL(9,0))")
        devdb.drop_sessions()
        with pytest.raises((pyexasol.ExaCommunicationError, pyexasol.ExaRequestError)):
            connection.execute("SELECT 1 FROM DUAL")
        connection.close(disconnect=False)
        with devdb.connect() as again:
            assert (
                again.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'S'").fetchval() == 0
            )


def test_daemon_serves_until_sigterm_and_keeps_data(tmp_path: Path) -> None:
    process = DevDbProcess(tmp_path / "db")
    process.start()
    try:
        with process.connect(encryption=True) as connection:
            connection.execute("CREATE SCHEMA d")
            connection.execute("CREATE TABLE d.t (v DECIMAL(9,0))")
            connection.execute("INSERT INTO d.t VALUES (1), (2)")
        assert process.stop() == 0
        process.start()
        with process.connect() as connection:
            assert connection.execute("SELECT SUM(v) FROM d.t").fetchval() == "3"  # SUM is DECIMAL(36,0): a string
    finally:
        process.stop()
