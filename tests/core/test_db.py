"""The DB layer against the embedded database through the real pyexasol driver: sessions, error mapping an operator
can act on, and reconnecting with capped backoff after the database went away (logged once, not per attempt).
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.config import Secret
from redpss.core.db import (
    Backoff,
    DatabaseAuthError,
    DatabaseConfigMismatch,
    DatabaseDsnError,
    DatabaseNameMismatch,
    DatabaseQueryError,
    DatabaseUnavailable,
    DbSession,
    DbSettings,
)
from redpss.core.net import free_port
from redpss.devdb.limits import FREE_FAILED_LOGINS
from redpss.devdb.testing import InProcessDevDb


@pytest.fixture
def devdb(tmp_path: Path) -> Iterator[InProcessDevDb]:
    server = InProcessDevDb(tmp_path / "devdb", port=free_port())
    server.start()
    yield server
    server.stop()


def settings(devdb: InProcessDevDb, **kw: object) -> DbSettings:
    values: dict[str, object] = {"dsn": devdb.dsn, "user": "sys", "password": Secret("exasol"), "encryption": False}
    values.update(kw)
    return DbSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def session(devdb: InProcessDevDb) -> Iterator[DbSession]:
    db = DbSession(settings(devdb), backoff=Backoff(initial=0.05, cap=0.2))
    yield db
    db.close()


def test_queries_return_rows_and_dicts(session: DbSession) -> None:
    session.execute("CREATE SCHEMA S1")
    session.execute("CREATE TABLE S1.T (ID DECIMAL(9,0), NAME VARCHAR(20))")
    session.execute("INSERT INTO S1.T VALUES ({id!d}, {name})", {"id": 1, "name": "o'hara"})
    assert session.fetchall("SELECT ID, NAME FROM S1.T") == [(1, "o'hara")]
    assert session.fetch_dicts("SELECT ID, NAME FROM S1.T") == [{"ID": 1, "NAME": "o'hara"}]


def test_wrong_password_says_which_user_and_what_to_check(devdb: InProcessDevDb) -> None:
    db = DbSession(settings(devdb, password=Secret("wrong")))
    with pytest.raises(DatabaseAuthError) as caught:
        db.connection()
    message = str(caught.value)
    assert message.startswith("login refused: ")  # not "not reachable": nothing is wrong with the network
    assert f"the database at {devdb.dsn} refused the login of user sys" in message
    assert "check exa_username and exa_password in red_params.conf" in message
    assert "wrong" not in message


def test_an_unusable_dsn_is_a_config_error_not_a_refused_login() -> None:
    db = DbSession(DbSettings(dsn="127.0.0.1:notaport", user="sys", password=Secret("x"), encryption=False))
    with pytest.raises(DatabaseDsnError) as caught:
        db.connection()
    assert isinstance(caught.value, DatabaseConfigMismatch)  # final: JMON and the CLIs stop with the config's exit code
    assert not isinstance(caught.value, DatabaseAuthError)  # an API would count a refused login against the caller
    assert "exa_connection = 127.0.0.1:notaport is not a usable DSN" in str(caught.value)
    assert "red_params.conf" in str(caught.value)


def test_a_host_name_that_cannot_be_resolved_is_an_outage_to_wait_out_not_a_config_error() -> None:
    """In a network namespace of its own (no interface, no name server: nothing leaves the machine) the name service
    does not answer, as in a DNS outage: the session must wait and retry, not stop as for a configuration error."""
    code = (
        "import os; os.environ['EXASOL_TELEMETRY_DISABLE'] = '1'\n"
        "from redpss.core.config import Secret\n"
        "from redpss.core.db import DatabaseUnavailable, DbSession, DbSettings\n"
        "settings = DbSettings(dsn='exa-node-unresolvable:8563', user='sys', password=Secret('x'), encryption=False)\n"
        "try:\n"
        "    DbSession(settings).connection()\n"
        "except DatabaseUnavailable as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("DatabaseUnavailable the database at exa-node-unresolvable:8563 is not reachable: ")
    assert "cannot resolve its host name" in done.stdout and "DNS" in done.stdout


def test_unreachable_database_is_unavailable() -> None:
    db = DbSession(DbSettings(dsn=f"127.0.0.1:{free_port()}", user="sys", password=Secret("x"), encryption=False))
    with pytest.raises(DatabaseUnavailable, match=r"the database at 127\.0\.0\.1:\d+ is not reachable"):
        db.connection()


def test_failed_statement_names_code_text_and_statement(session: DbSession) -> None:
    with pytest.raises(DatabaseQueryError) as caught:
        session.execute("SELECT * FROM NOWHERE.NOTHING")
    assert caught.value.code == "42000"
    assert "statement failed [42000]" in str(caught.value)
    assert "in: SELECT * FROM NOWHERE.NOTHING" in str(caught.value)
    assert session.fetchall("SELECT 1 FROM DUAL") == [(1,)]  # the session survives a failed statement


def test_query_timeout_is_reported_as_timeout(devdb: InProcessDevDb) -> None:
    db = DbSession(settings(devdb, query_timeout=1))
    try:
        with pytest.raises(DatabaseQueryError) as caught:
            db.execute("EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(30)")
        assert caught.value.timeout and "statement timed out" in str(caught.value)
    finally:
        db.close()


def test_tls_with_the_fingerprint_in_the_dsn(devdb: InProcessDevDb) -> None:
    db = DbSession(settings(devdb, dsn=devdb.tls_dsn, encryption=True))
    try:
        assert db.fetchall("SELECT 1 FROM DUAL") == [(1,)]
    finally:
        db.close()


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(itertools.islice(Backoff(0.5, 30).delays(), 9)) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_lost_session_raises_unavailable_then_reconnects(devdb: InProcessDevDb, session: DbSession) -> None:
    session.execute("CREATE SCHEMA S2")
    devdb.drop_sessions()
    with pytest.raises(DatabaseUnavailable):
        session.execute("SELECT 1 FROM DUAL")
    assert session.run(lambda db: db.fetchall("SELECT 1 FROM DUAL")) == [(1,)]


def test_reconnects_after_a_restart_and_logs_it_once(
    devdb: InProcessDevDb, session: DbSession, caplog: pytest.LogCaptureFixture
) -> None:
    session.execute("CREATE SCHEMA S3")
    session.execute("CREATE TABLE S3.T (X DECIMAL(9,0))")
    session.execute("INSERT INTO S3.T VALUES (42)")
    devdb.stop()
    back = threading.Timer(1.5, devdb.start)  # the database is away for 1.5 s, then comes back on the same port
    back.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="redpss.core.db"):
            rows = session.run(lambda db: db.fetchall("SELECT X FROM S3.T"))
    finally:
        back.join()
    assert rows == [(42,)]  # data kept across the restart
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    retries = [r for r in caplog.records if r.levelno == logging.DEBUG and "reconnect attempt" in r.getMessage()]
    assert len(warnings) == 1 and "is not reachable" in warnings[0].getMessage()
    assert "reconnecting with backoff" in warnings[0].getMessage()
    assert len(infos) == 1 and "is reachable again after" in infos[0].getMessage()
    assert len(retries) >= 3  # several attempts happened, and none of them was logged above DEBUG
    assert session.reconnects == 1


def test_wait_connected_gives_up_at_its_timeout_or_stop(devdb: InProcessDevDb) -> None:
    devdb.stop()
    db = DbSession(settings(devdb), backoff=Backoff(0.05, 0.1))
    assert db.wait_connected(timeout=0.5) is False
    stop = threading.Event()
    stop.set()
    assert db.wait_connected(stop=stop) is False
    devdb.start()


def test_the_backoff_holds_across_short_waits(devdb: InProcessDevDb, caplog: pytest.LogCaptureFixture) -> None:
    """A caller that waits briefly and often (the row writer, SCHED's commit check) does not restart the backoff:
    a refused login is tried every `cap` seconds, not at every call (each try counts against the account)."""
    db = DbSession(settings(devdb, password=Secret("wrong")), backoff=Backoff(0.1, 0.4))
    ended = time.monotonic() + 3.0
    calls = 0
    with caplog.at_level(logging.DEBUG, logger="redpss.core.db"):
        while time.monotonic() < ended:
            assert db.wait_connected(timeout=0.02) is False
            calls += 1
    attempts = [r for r in caplog.records if r.name == "redpss.core.db" and "login refused" in r.getMessage()]
    # 0.1, 0.2, 0.4, 0.4, ...: about 9 attempts in 3 s; restarting at each of the ~150 calls would make ~40
    assert calls > 50 and 5 <= len(attempts) <= 12, (calls, len(attempts))
    assert isinstance(db.last_error, DatabaseAuthError)


def test_a_refused_login_is_not_tried_again_by_queries_before_the_backoff_pause(
    devdb: InProcessDevDb, caplog: pytest.LogCaptureFixture
) -> None:
    """JMON queries every poll without wait_connected: each query tried a login, and refused logins count against
    the account's limit in Exasol (18 a minute locked it out)."""
    db = DbSession(settings(devdb, password=Secret("wrong")), backoff=Backoff(initial=30.0, cap=30.0))
    caplog.set_level(logging.WARNING)
    for _ in range(FREE_FAILED_LOGINS + 1):
        with pytest.raises(DatabaseAuthError, match="login refused"):
            db.fetchall("SELECT 1 FROM DUAL")
    # devdb says so when one address has failed FREE_FAILED_LOGINS times: only the first query tried a login
    assert not [r for r in caplog.records if "failed logins from" in r.getMessage()]


def test_a_refused_login_is_final_for_wait_connected_when_asked(devdb: InProcessDevDb) -> None:
    db = DbSession(settings(devdb, password=Secret("wrong")), backoff=Backoff(0.05, 0.1))
    began = time.monotonic()
    with pytest.raises(DatabaseAuthError, match="login refused"):
        db.wait_connected(timeout=60, refusal_is_final=True)
    assert time.monotonic() - began < 30  # a refusal is not waited on like an unreachable database


def test_a_refused_login_retried_is_logged_once_as_error(
    devdb: InProcessDevDb, caplog: pytest.LogCaptureFixture
) -> None:
    db = DbSession(settings(devdb, password=Secret("wrong")), backoff=Backoff(0.05, 0.1))
    with caplog.at_level(logging.DEBUG, logger="redpss.core.db"):
        assert db.wait_connected(timeout=0.5) is False
    ours = [r for r in caplog.records if r.name == "redpss.core.db"]
    errors = [r for r in ours if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].getMessage().startswith("login refused")
    assert not [r for r in ours if r.levelno == logging.WARNING]


def test_the_database_name_is_checked_on_connect(devdb: InProcessDevDb) -> None:
    same = DbSession(settings(devdb, dbname="devdb"))  # names compare without regard to case
    try:
        assert same.fetchall("SELECT 1 FROM DUAL") == [(1,)]
    finally:
        same.close()
    other = DbSession(settings(devdb, dbname="TST2DB"))
    with pytest.raises(DatabaseNameMismatch) as caught:
        other.connection()
    message = str(caught.value)
    assert f"the database at {devdb.dsn} is 'DEVDB', but exa_dbname = 'TST2DB'" in message
    assert "check exa_connection and exa_dbname" in message
    assert caught.value.exit_code == 3
    assert not other.connected  # the session to the wrong database is not kept
    with pytest.raises(DatabaseNameMismatch):
        other.wait_connected(timeout=5, refusal_is_final=True)


def test_a_query_timeout_goes_to_the_database_in_whole_seconds(devdb: InProcessDevDb) -> None:
    """Exasol's queryTimeout attribute is an integer; the API's 20.0 s went as a float, rounded up here."""
    assert settings(devdb, query_timeout=20.0).connect_options()["query_timeout"] == 20
    assert settings(devdb, query_timeout=0.5).connect_options()["query_timeout"] == 1
    assert settings(devdb).connect_options()["query_timeout"] == 0
    assert isinstance(settings(devdb, query_timeout=20.0).connect_options()["query_timeout"], int)
