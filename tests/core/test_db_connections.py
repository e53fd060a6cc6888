"""The CONNECTION objects `redctl db_install` creates for the database's scripts: the address from
db_callback_host, each service's port, the instance's name and the service's own secret, and no secret in a log line
or error text.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.cli.redctl.main import main as redctl
from redpss.core.config import Secret
from redpss.core.config.sample import render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import ContractError, ServiceConnection, install
from redpss.core.db.errors import DatabaseQueryError, mask_secrets
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret, service_secret
from redpss.devdb.testing import InProcessDevDb

CALLBACK_HOST = "10.20.30.40"


@pytest.fixture
def devdb(tmp_path: Path) -> Iterator[InProcessDevDb]:
    server = InProcessDevDb(tmp_path / "devdb").start()
    yield server
    server.stop()


def _session(server: InProcessDevDb) -> DbSession:
    return DbSession(DbSettings(dsn=server.dsn, user=server.user, password=Secret(server.password), encryption=False))


def _connections(server: InProcessDevDb) -> dict[str, tuple[str, str, str]]:
    session = _session(server)
    try:
        rows = session.fetchall("SELECT NAME, ADDRESS, USER_NAME, PASSWORD FROM REDPSS_DEVDB.CONNECTIONS")
    finally:
        session.close()
    return {str(name): (str(address), str(user), str(password)) for name, address, user, password in rows}


def test_db_install_creates_the_connections_and_logs_no_secret(
    instance: InstancePaths,
    devdb: InProcessDevDb,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = {
        "DEFAULT": {
            "exa_password": devdb.password,
            "exa_username": devdb.user,
            "exa_connection": devdb.dsn,
            "exa_encryption": "false",
            "exa_dbname": "",
            "log_level": "DEBUG",
        },
        "redctl": {
            "db_callback_host": CALLBACK_HOST,
            "dbls_port": "17402",
            "jexec_port": "17403",
            "sendmail_port": "17404",
            "sendfile_port": "17405",
        },
    }
    instance.config_file.write_text(render_config(config))
    caplog.set_level(logging.DEBUG)  # the client (redpss.core.db, pyexasol) and devdb, both in this process
    assert redctl(["-D", "-i", "TST1", "db_install"]) == 0
    assert redctl(["-D", "-i", "TST1", "db_install"]) == 0  # replaced, not refused, on the second run
    secret = instance_secret(instance, create=False)
    own = {service: service_secret(secret, service) for service in ("DBLS", "JEXEC", "SENDMAIL", "SENDFILE")}
    assert _connections(devdb) == {
        "REDSYS_DBLS": (f"{CALLBACK_HOST}:17402", "TST1", own["DBLS"]),
        "REDSYS_JEXEC": (f"{CALLBACK_HOST}:17403", "TST1", own["JEXEC"]),
        "REDSYS_SENDMAIL": (f"{CALLBACK_HOST}:17404", "TST1", own["SENDMAIL"]),
        "REDSYS_SENDFILE": (f"{CALLBACK_HOST}:17405", "TST1", own["SENDFILE"]),
    }
    assert len({secret, *own.values()}) == 5 and all(len(value) == 64 for value in own.values())
    out, err = capsys.readouterr()
    assert f"connection REDSYS_DBLS to {CALLBACK_HOST}:17402" in out
    for name in ("redpss.core.db", "redpss.devdb", "redpss.cli"):  # DEBUG was on for the client and the server
        assert logging.getLogger(name).isEnabledFor(logging.DEBUG)
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for value in (secret, *own.values()):
        assert value not in logged and value not in out and value not in err
        for log_file in instance.log.rglob("*"):  # redctl.log and any other file the commands wrote
            assert not log_file.is_file() or value not in log_file.read_text(errors="replace"), log_file


def test_a_failing_create_connection_shows_no_secret(devdb: InProcessDevDb, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-" + "x" * 40
    caplog.set_level(logging.DEBUG)
    session = _session(devdb)
    try:
        session.execute("CREATE CONNECTION REDSYS_DBLS TO 'h:1' USER 'TST1' IDENTIFIED BY 'old'")
        # Without OR REPLACE the object exists already: the database refuses, and the error quotes the statement.
        with pytest.raises(DatabaseQueryError) as query_error:
            session.execute(f"CREATE CONNECTION REDSYS_DBLS TO 'h:1' USER 'TST1' IDENTIFIED BY '{secret}'")
        assert "CREATE CONNECTION REDSYS_DBLS" in str(query_error.value)
        assert secret not in str(query_error.value) and secret not in query_error.value.sql
        # A connection that cannot be created (here: a name the database refuses) names itself, never the secret.
        broken = ServiceConnection("REDSYS DBLS", "h", 1, "TST1", Secret(secret))
        with pytest.raises(ContractError, match="creating CONNECTION REDSYS DBLS to h:1 failed") as contract_error:
            install(session, connections=[broken])
        assert contract_error.value.__cause__ is None and contract_error.value.__suppress_context__
        assert secret not in str(contract_error.value)
    finally:
        session.close()
    assert secret not in caplog.text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("CREATE CONNECTION C TO 'a' IDENTIFIED BY 'p''x' -- y", "CREATE CONNECTION C TO 'a' IDENTIFIED BY '***' -- y"),
        ('alter user u identified by "p w"', "alter user u identified by '***'"),
        ("... IDENTIFIED BY 'cut off at 200 charac ...", "... IDENTIFIED BY '***'"),
        ("SELECT 'IDENTIFIED' FROM T", "SELECT 'IDENTIFIED' FROM T"),
    ],
)
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
