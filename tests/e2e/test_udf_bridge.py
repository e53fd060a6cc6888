"""The database side of RED-PSS end to end: `redctl db_register` creates REDSYS.PSS_LOG and PSS_EXEC, and SQL sent
through the real pyexasol driver to devdb runs them, reaching the real DBLS and JEXEC daemons (separate processes,
as under systemd) with the secret read from the CONNECTION objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyexasol
import pytest

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.sql.udf.pss_client import PssClient, PssError
from tests.support.daemon_set import DaemonSet
from tests.support.instance_runner import instance_config
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def daemons(instance: InstancePaths, tmp_path: Path) -> Iterator[DaemonSet]:
    """devdb, DBLS and JEXEC running, APP1 registered (and with it the connections and scripts)."""
    instance.config_file.write_text(instance_config())
    daemons = DaemonSet(instance, tmp_path)
    try:
        daemons.start("devdb")
        daemons.inst.redctl("db_register", "APP1")
        daemons.start("dbls")
        daemons.start("jexec")
        yield daemons
    finally:
        daemons.close()


def _sql(daemons: DaemonSet) -> Any:
    """The pyexasol connection of the test's database session."""
    return daemons.inst.db().connection()


def _db_lines(paths: InstancePaths, schema: str) -> str:
    return "".join(p.read_text() for p in sorted((paths.log_db / schema).glob(f"{schema}-*.log")) if not p.is_symlink())


def test_pss_log_writes_durably_before_the_statement_returns_and_errors_reach_log_messages(
    daemons: DaemonSet,
) -> None:
    sql = _sql(daemons)
    assert sql.execute("SELECT REDSYS.PSS_LOG('APP1', 'ERROR', 'order 17 has no customer')").fetchval() == 1
    # cleanup() flushed and DBLS acknowledged the line as durable before the statement ended: no waiting here
    assert "ERROR" in _db_lines(daemons.paths, "APP1") and "order 17 has no customer" in _db_lines(
        daemons.paths, "APP1"
    )

    sql.execute("CREATE TABLE APP1.EVENTS (LVL VARCHAR(10), TXT VARCHAR(100))")
    sql.execute(
        "INSERT INTO APP1.EVENTS VALUES ('info', 'load started'), ('WARN', 'slow file'), ('ALERT', 'disk full')"
    )
    assert int(sql.execute("SELECT SUM(REDSYS.PSS_LOG('APP1', LVL, TXT)) FROM APP1.EVENTS").fetchval()) == 3
    lines = _db_lines(daemons.paths, "APP1")
    for level, text in (("INFO", "load started"), ("WARN", "slow file"), ("ALERT", "disk full")):
        assert any(level in line and text in line for line in lines.splitlines()), (level, lines)

    def errors() -> list[dict[str, Any]]:
        rows = daemons.inst.rows("SELECT LOG_LEVEL, MESSAGE FROM REDSYS.ALL_LOG_MESSAGES WHERE SCHEMA_NAME = 'APP1'")
        return rows if len(rows) >= 2 else []

    found = wait_for(errors, 30, interval=0.2, what="the ERROR and ALERT lines in LOG_MESSAGES")
    assert sorted((r["LOG_LEVEL"], r["MESSAGE"]) for r in found) == [
        ("ALERT", "disk full"),
        ("ERROR", "order 17 has no customer"),
    ]
    secret = instance_secret(daemons.paths, create=False)
    bodies = daemons.inst.rows("SELECT SCRIPT_TEXT FROM EXA_ALL_SCRIPTS WHERE SCRIPT_SCHEMA = 'REDSYS'")
    assert len(bodies) >= 2 and all(secret not in row["SCRIPT_TEXT"] for row in bodies)


def test_pss_log_refuses_a_bad_level_and_fails_when_dbls_is_down(daemons: DaemonSet) -> None:
    sql = _sql(daemons)
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        sql.execute("SELECT REDSYS.PSS_LOG('APP1', 'LOUD', 'x')")
    assert "REDSYS.PSS_LOG: run() failed" in caught.value.message
    assert "log level 'LOUD' is not one of DEBUG, INFO, WARN, ERROR, ALERT" in caught.value.message

    daemons.procs["dbls"].stop()
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        sql.execute("SELECT REDSYS.PSS_LOG('APP1', 'ERROR', 'nobody listens')")
    assert f"cannot connect to 127.0.0.1:{daemons.inst.config.redctl.dbls_port}" in caught.value.message


def test_pss_exec_runs_a_cmd_script_through_jexec_and_returns_its_exit_code_and_output(daemons: DaemonSet) -> None:
    cmd = daemons.paths.cmd
    (cmd / "greet.sh").write_text('#!/bin/sh\necho "hello $1 ($#) in $REDENV"\necho "careful" >&2\n')
    (cmd / "greet.sh").chmod(0o750)
    (cmd / "fail.sh").write_text("#!/bin/sh\necho 'no input file'\nexit 3\n")
    (cmd / "fail.sh").chmod(0o750)
    sql = _sql(daemons)

    result = sql.execute("SELECT REDSYS.PSS_EXEC('greet.sh', '''big world'' $(reboot)')").fetchval()
    first, *output = result.split("\n")
    assert first.startswith("exit=0 status=OK seconds="), result
    assert output == ["hello big world (2) in TST1", "[stderr] careful"]

    failed = sql.execute("SELECT REDSYS.PSS_EXEC('fail.sh', NULL)").fetchval()
    assert failed.startswith("exit=3 status=FAILED seconds=") and failed.endswith("\nno input file"), failed

    with pytest.raises(pyexasol.ExaQueryError) as caught:
        sql.execute("SELECT REDSYS.PSS_EXEC('../x', NULL)")
    assert "PSS_EXEC ../x: action '../x' must be a relative path below cmd/" in caught.value.message


def test_pss_log_inside_a_writing_transaction_never_waits_on_its_own_database(daemons: DaemonSet) -> None:
    sql = _sql(daemons)
    sql.set_autocommit(False)
    sql.execute("CREATE TABLE APP1.ORDERS (ID DECIMAL(9,0))")
    sql.execute("INSERT INTO APP1.ORDERS VALUES (17)")  # this session now holds the database's write lock
    assert sql.execute("SELECT REDSYS.PSS_LOG('APP1', 'ERROR', 'inside the transaction')").fetchval() == 1
    assert "inside the transaction" in _db_lines(daemons.paths, "APP1")  # on disk while the transaction is open
    sql.commit()
    sql.set_autocommit(True)
    wait_for(
        lambda: daemons.inst.rows("SELECT MESSAGE FROM APP1.LOG_MESSAGES WHERE MESSAGE = 'inside the transaction'"),
        30,
        interval=0.2,
        what="the ERROR line in LOG_MESSAGES once the writing transaction ended",
    )


def test_a_user_who_may_log_cannot_use_the_password_he_can_read_for_jexec(daemons: DaemonSet) -> None:
    # Whoever may call PSS_LOG has ACCESS on REDSYS_DBLS, and a UDF of his can read that connection's password.
    sql = _sql(daemons)
    sql.execute(
        "CREATE PYTHON3 SCALAR SCRIPT APP1.READ_PASSWORD (name VARCHAR(128)) RETURNS VARCHAR(200) AS\n"
        "def run(ctx):\n"
        "    return exa.get_connection(ctx.name).password\n"
    )
    dbls_password = sql.execute("SELECT APP1.READ_PASSWORD('REDSYS_DBLS')").fetchval()
    jexec_password = sql.execute("SELECT APP1.READ_PASSWORD('REDSYS_JEXEC')").fetchval()
    instance = instance_secret(daemons.paths, create=False)
    assert len({dbls_password, jexec_password, instance}) == 3
    redctl = daemons.inst.config.redctl
    with PssClient("127.0.0.1", redctl.dbls_port, dbls_password, client="reader") as dbls:
        assert dbls.ping()["ok"] is True  # it opens DBLS, what it is for
    with pytest.raises(PssError) as refused:
        PssClient("127.0.0.1", redctl.jexec_port, dbls_password, client="reader").ping()
    assert refused.value.code == "AUTH_FAILED"
    assert "the hello must carry the instance secret or JEXEC's own" in str(refused.value)
    for secret in (jexec_password, instance):  # JEXEC's own CONNECTION (PSS_EXEC) and redsys's clients
        with PssClient("127.0.0.1", redctl.jexec_port, secret, client="allowed") as jexec:
            assert jexec.ping()["ok"] is True
