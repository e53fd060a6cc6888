"""The database pulls files from CFISRV: db_install creates REDSYS_CFI from the config, and devdb's IMPORT ... AT
REDSYS_CFI fetches over implicit FTPS, from data/input and through an sFTP user's link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.cli.redctl.main import main as redctl
from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import CFI_CONNECTION
from redpss.devdb.testing import InProcessDevDb
from tests.cfi.conftest import PASSWORD, USER, Cfi, running_cfi


@pytest.fixture
def devdb(tmp_path: Path) -> Iterator[InProcessDevDb]:
    server = InProcessDevDb(tmp_path / "devdb").start()
    yield server
    server.stop()


@pytest.fixture
def cfi_with_db(tmp_path: Path, devdb: InProcessDevDb, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cfi]:
    database = {
        "DEFAULT": {
            "exa_password": devdb.password,
            "exa_username": devdb.user,
            "exa_connection": devdb.dsn,
            "exa_encryption": "false",
            "exa_dbname": "",
        },
        "redctl": {"devdb_enabled": "false", "db_callback_host": "127.0.0.1"},
    }
    with running_cfi(tmp_path / "instance", database) as cfi:
        monkeypatch.setenv("REDHOME", str(cfi.paths.redhome))
        yield cfi


def _session(server: InProcessDevDb) -> DbSession:
    return DbSession(DbSettings(dsn=server.dsn, user=server.user, password=Secret(server.password), encryption=False))


def test_db_install_creates_redsys_cfi_and_import_pulls_through_it(cfi_with_db: Cfi, devdb: InProcessDevDb) -> None:
    cfi = cfi_with_db
    (cfi.paths.data_input / "days.csv").write_text("id,d\n1,2024-05-01\n2,2024-05-02\n")
    assert redctl(["-i", "TST1", "db_install"]) == 0
    session = _session(devdb)
    try:
        rows = session.fetchall(
            f"SELECT ADDRESS, USER_NAME, PASSWORD FROM REDPSS_DEVDB.CONNECTIONS WHERE NAME = '{CFI_CONNECTION}'"
        )
        assert [tuple(map(str, row)) for row in rows] == [(f"ftps://127.0.0.1:{cfi.implicit_port}/", USER, PASSWORD)]
        session.execute("CREATE SCHEMA ingest")
        session.execute("OPEN SCHEMA ingest")
        session.execute("CREATE TABLE days (id DECIMAL(9,0), d DATE)")
        session.execute(f"IMPORT INTO days FROM CSV AT {CFI_CONNECTION} FILE 'input/days.csv' SKIP = 1")
        session.execute("CREATE TABLE orders (id DECIMAL(9,0), name VARCHAR(40))")
        session.execute(
            f"IMPORT INTO orders FROM CSV AT {CFI_CONNECTION} FILE 'input/alice/orders.csv' COLUMN SEPARATOR = ';'"
        )
        assert session.fetchall("SELECT id, d FROM days ORDER BY id") == [(1, "2024-05-01"), (2, "2024-05-02")]
        assert session.fetchall("SELECT id, name FROM orders ORDER BY id") == [(1, "first"), (2, "second")]
        with pytest.raises(Exception, match="IMPORT from ftps://"):  # another instance's uploads stay out of reach
            session.execute(f"IMPORT INTO orders FROM CSV AT {CFI_CONNECTION} FILE 'input/mallory/secret.csv'")
    finally:
        session.close()
