"""The REDSYS contract installed into the embedded database: versioned, idempotent, views over the registered
schemas, downgrades refused. The SQL files are the ones shipped for Exasol, unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.clone.identity import database_identity
from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import (
    UNION_VIEWS,
    ContractError,
    current_version,
    install,
    split_statements,
    sql_files,
)
from redpss.core.db.errors import DatabaseQueryError
from redpss.core.exitcodes import ExitCode
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.devdb.testing import InProcessDevDb

# One row for each application table the ALL_* views unite (ADM_JOBS gets its rows in the test itself).
ONE_ROW = {
    "ADM_WATCHER": "(WATCHER_ID, WATCHER_NAME, CONDITION_TEXT, TARGET_JOB_ID) VALUES ({n}, 'W', 'SELECT 1', 1)",
    "ADM_JOB_LOG": "(RUN_ID, JOB_ID, STATUS) VALUES ('r{n}', {n}, 'OK')",
    "ADM_WATCHER_LOG": "(RUN_ID, WATCHER_ID, STATUS) VALUES ('w{n}', {n}, 'OK')",
    "ADM_WATCHER_EXEC_ERROR": "(WATCHER_ID, ERROR_AT) VALUES ({n}, CURRENT_TIMESTAMP)",
    "LOG_MESSAGES": "(LOG_TIME, LOG_LEVEL, MESSAGE) VALUES (CURRENT_TIMESTAMP, 'ERROR', 'm{n}')",
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DbSession]:
    server = InProcessDevDb(tmp_path / "devdb", port=free_port())
    server.start()
    session = DbSession(DbSettings(dsn=server.dsn, user="sys", password=Secret("exasol"), encryption=False))
    yield session
    session.close()
    server.stop()


def test_only_a_missing_object_reads_as_nothing_installed(db: DbSession) -> None:
    """An empty database has no REDSYS: version 0, no identity. Other failures must not read so: with a clone
    pending, "no identity" restores the saved state over the database (core.db.errors.missing_object)."""
    assert current_version(db, "REDSYS") == 0 and database_identity(db) is None
    with pytest.raises(DatabaseQueryError) as missing:
        db.fetchall("SELECT VERSION FROM REDSYS.SCHEMA_VERSION")
    assert missing.value.missing_object
    db.execute('CREATE USER NOBODY IDENTIFIED BY "pw"')
    db.execute("GRANT CREATE SESSION TO NOBODY")
    db.commit()
    nobody = DbSession(DbSettings(dsn=db.settings.dsn, user="NOBODY", password=Secret("pw"), encryption=False))
    try:
        with pytest.raises(DatabaseQueryError) as refused:
            nobody.execute('CREATE USER OTHER IDENTIFIED BY "x"')
    finally:
        nobody.close()
    assert "insufficient privileges" in refused.value.reason and not refused.value.missing_object
    timed_out = DatabaseQueryError("statement timed out", reason="object X not found in a text", timeout=True)
    assert not timed_out.missing_object


def test_first_install_applies_every_file_and_a_second_is_a_no_op(db: DbSession) -> None:
    report = install(db)
    assert report.applied == [
        "REDSYS 001_redsys_core.sql",
        "REDSYS 002_daemon_status.sql",
        "REDSYS 003_run_commit.sql",
        "REDSYS 004_load_files.sql",
        "REDSYS 006_instance_identity.sql",
        "APP:REDSYS 001_app_schema.sql",
        "APP:REDSYS 002_rows_loaded.sql",
        "APP:REDSYS 003_job_alert_mail.sql",
        "APP:REDSYS 004_log_message_key.sql",
    ]
    assert report.schemas == ["REDSYS"]
    versions = db.fetchall('SELECT COMPONENT, VERSION, "SCRIPT" FROM REDSYS.SCHEMA_VERSION ORDER BY COMPONENT, VERSION')
    assert versions == [
        ("APP:REDSYS", 1, "001_app_schema.sql"),
        ("APP:REDSYS", 2, "002_rows_loaded.sql"),
        ("APP:REDSYS", 3, "003_job_alert_mail.sql"),
        ("APP:REDSYS", 4, "004_log_message_key.sql"),
        ("REDSYS", 1, "001_redsys_core.sql"),
        ("REDSYS", 2, "002_daemon_status.sql"),
        ("REDSYS", 3, "003_run_commit.sql"),
        ("REDSYS", 4, "004_load_files.sql"),
        ("REDSYS", 6, "006_instance_identity.sql"),
    ]
    again = install(db)
    assert again.applied == [] and again.registered == []
    assert again.summary() == "REDSYS is up to date; application schemas: REDSYS"
    assert len(db.fetchall("SELECT * FROM REDSYS.SCHEMA_VERSION")) == 9


def test_registered_schemas_get_their_tables_and_are_united_in_the_views(db: DbSession) -> None:
    report = install(db, ["app1", "APP2"])
    assert report.registered == ["APP1", "APP2"]
    assert "registered schema APP1" in report.summary()
    for schema, job_id in (("APP1", 1), ("APP2", 2)):
        db.execute(
            f"INSERT INTO {schema}.ADM_JOBS (JOB_ID, JOB_NAME, COMMAND, INTERVAL_SECONDS) "
            f"VALUES ({job_id}, 'J{job_id}', 'SELECT 1', 60)"
        )
    rows = db.fetchall("SELECT SCHEMA_NAME, JOB_ID, POOL, ACTIVE FROM REDSYS.ALL_ADM_JOBS ORDER BY JOB_ID")
    assert rows == [("APP1", 1, "DEFAULT", True), ("APP2", 2, "DEFAULT", True)]  # column defaults apply
    for table, values in ONE_ROW.items():
        for schema, number in (("APP1", 1), ("APP2", 2)):
            db.execute(f"INSERT INTO {schema}.{table} {values.format(n=number)}")
    for view, table in UNION_VIEWS.items():  # each view holds exactly the rows of every schema's table
        counts = db.fetchall(f"SELECT SCHEMA_NAME, COUNT(*) FROM REDSYS.{view} GROUP BY SCHEMA_NAME ORDER BY 1")
        assert counts == [("APP1", 1), ("APP2", 1)], view
        assert db.fetchall(f"SELECT COUNT(*) FROM REDSYS.{view} WHERE SCHEMA_NAME = 'APP2'") == [(1,)], table
    # registering again changes nothing; a new schema joins the views
    assert install(db, ["APP1"]).registered == []
    install(db, ["APP3"])
    assert {r[0] for r in db.fetchall("SELECT DISTINCT SCHEMA_NAME FROM REDSYS.ALL_ADM_JOBS")} == {"APP1", "APP2"}
    assert db.fetchall("SELECT COUNT(*) FROM REDSYS.APP_SCHEMAS")[0][0] == 4


def test_a_database_newer_than_this_redpss_is_refused(db: DbSession) -> None:
    install(db)
    db.execute(
        """INSERT INTO REDSYS.SCHEMA_VERSION (COMPONENT, VERSION, "SCRIPT") VALUES ('REDSYS', 7, '007_future.sql')"""
    )
    with pytest.raises(ContractError) as caught:
        install(db)
    assert "REDSYS is at schema version 7, newer than RED-PSS" in str(caught.value)
    assert "a downgrade is refused" in str(caught.value)


def test_an_interrupted_file_simply_runs_again(db: DbSession) -> None:
    first = sql_files("redsys")[0]
    for statement in first.statements()[:3]:  # as if the install stopped halfway
        db.execute(statement)
    assert "REDSYS 001_redsys_core.sql" in install(db).applied


def test_bad_schema_names_are_refused_before_anything_runs(db: DbSession) -> None:
    with pytest.raises(ContractError, match="schema name 'app-1' is not valid"):
        install(db, ["app-1"])


def test_statements_are_split_at_line_ending_semicolons_and_comments_dropped() -> None:
    text = "-- a comment\nCREATE TABLE A (X INT);\n\nINSERT INTO A\n  VALUES (1);\nSELECT 'a;b' FROM DUAL;\n"
    assert split_statements(text) == ["CREATE TABLE A (X INT)", "INSERT INTO A\n  VALUES (1)", "SELECT 'a;b' FROM DUAL"]


def test_every_shipped_file_is_versioned_in_order() -> None:
    for component in ("redsys", "app"):
        versions = [f.version for f in sql_files(component)]
        # numbers are reserved ahead (docs/db-contract.md), so one may be missing until its file ships
        assert versions == sorted(set(versions)) and versions[0] == 1, component


def test_a_file_shipped_below_the_installed_version_is_applied_once(db: DbSession) -> None:
    install(db)
    db.execute("DELETE FROM REDSYS.SCHEMA_VERSION WHERE COMPONENT = 'REDSYS' AND VERSION = 4")  # not shipped then
    db.commit()
    assert install(db).applied == ["REDSYS 004_load_files.sql"]
    assert install(db).applied == []


def test_db_register_with_a_bad_name_is_a_usage_error_before_the_database_is_reached(instance: InstancePaths) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redpss.cli.redctl.main", "-i", "TST1", "db_register", "APP1", "app-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "schema name 'app-1' is not valid: use letters, digits and _" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_daemon_status_view_calls_a_row_not_rewritten_for_30_s_unknown(db: DbSession) -> None:
    install(db)
    insert = (
        'INSERT INTO REDSYS.ADM_DAEMON_STATUS ("INSTANCE", DAEMON, "STATE", PID, UPDATED_AT) '
        "VALUES ('TST1', '{daemon}', 'RUNNING', 42, ADD_SECONDS(CURRENT_TIMESTAMP, {age}))"
    )
    db.execute(insert.format(daemon="jmon", age=-2))
    db.execute(insert.format(daemon="sched", age=-31))
    rows = db.fetchall('SELECT DAEMON, "STATE", PID FROM REDSYS.DAEMON_STATUS ORDER BY DAEMON')
    assert rows == [("jmon", "RUNNING", 42), ("sched", "UNKNOWN", 42)]
