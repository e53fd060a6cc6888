"""JMON's writer of REDSYS.ADM_DAEMON_STATUS against a real devdb: a round of rows is one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.config import Secret, parse_config, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.devdb.testing import InProcessDevDb
from redpss.jmon.daemon_status import RUNNING, TABLE, DaemonState, DaemonStatusWriter


@pytest.fixture
def devdb(tmp_path: Path) -> Iterator[InProcessDevDb]:
    server = InProcessDevDb(tmp_path / "devdb", port=free_port())
    server.start()
    session = DbSession(DbSettings(dsn=server.dsn, user="sys", password=Secret("exasol"), encryption=False))
    install(session)
    session.close()
    yield server
    server.stop()


def test_a_round_that_fails_midway_leaves_no_row_of_it(devdb: InProcessDevDb, tmp_path: Path) -> None:
    """Readers see a whole round or the one before: a round whose second row cannot be written leaves not even its
    first one (STATE is NOT NULL)."""
    text = render_config(
        {
            "DEFAULT": {
                "exa_username": "sys",
                "exa_password": "exasol",
                "exa_connection": devdb.dsn,
                "exa_encryption": "false",
                "exa_dbname": "DEVDB",
            }
        }
    )
    config = parse_config(text, "red_params.conf")
    writer = DaemonStatusWriter.for_instance(config, InstancePaths.for_instance("TST1", tmp_path / "redsys"))
    reader = DbSession(DbSettings(dsn=devdb.dsn, user="sys", password=Secret("exasol"), encryption=False))
    try:
        assert not writer.write([DaemonState("devdb", RUNNING), DaemonState("sched", None)])  # type: ignore[arg-type]
        assert reader.fetchall(f"SELECT DAEMON FROM {TABLE}") == []
        assert writer.write([DaemonState("devdb", RUNNING), DaemonState("sched", RUNNING)])
        assert sorted(reader.fetchall(f"SELECT DAEMON FROM {TABLE}")) == [("devdb",), ("sched",)]
    finally:
        reader.close()
        if writer.session is not None:
            writer.session.close()
