"""Faults and lifecycle: dropped sessions, restart on the same port with data kept, the daemon under SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import pyexasol
import pytest

from redpss.core.config import load_config, render_config
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.devdb.testing import DevDbProcess, InProcessDevDb
from tests.support.daemons import DaemonProcess
from tests.support.wait import wait_for


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


def _instance_config(port: int, **redctl: str) -> str:
    return render_config(
        {"DEFAULT": {"exa_connection": f"127.0.0.1:{port}", "exa_password": "secret-pw"}, "redctl": redctl}
    )


def test_sighup_applies_the_log_level_and_names_what_needs_a_restart(instance: InstancePaths, tmp_path: Path) -> None:
    """SIGHUP used to log "reloaded" and re-read nothing."""
    port = free_port()
    instance.config_file.write_text(_instance_config(port, log_level="INFO"))
    user = load_config(instance.config_file).default.exa_username
    daemon = DaemonProcess("redpss.devdb", instance, tmp_path / "run")
    try:
        daemon.wait_ready()
        instance.config_file.write_text(
            _instance_config(free_port(), log_level="DEBUG").replace("secret-pw", "other-secret")
        )
        daemon.process.send_signal(signal.SIGHUP)
        daemon.wait_log("reload: log level DEBUG (applied)")
        daemon.wait_log("reload: port")
        daemon.wait_log("reload: password changed: takes effect only after a restart")
        assert "other-secret" not in daemon.log
        with pyexasol.connect(dsn=f"127.0.0.1:{port}", user=user, password="secret-pw", encryption=False) as conn:
            assert conn.execute("SELECT 1").fetchval() == 1  # still the settings it started with
    finally:
        daemon.stop()
        daemon.close()


def test_sighup_with_command_line_settings_says_they_cannot_be_re_read(tmp_path: Path) -> None:
    process = DevDbProcess(tmp_path / "db")
    process.start()
    try:
        assert process.process is not None
        process.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "cannot be re-read" in process.log_file.read_text(), what="the reload's answer in the log")
        with process.connect() as connection:
            assert connection.execute("SELECT 1").fetchval() == 1
    finally:
        process.stop()
