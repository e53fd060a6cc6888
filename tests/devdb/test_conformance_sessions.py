"""Sessions as Exasol clients see them: KILL, aborting a long statement, aborted imports, errors in Exasol's words."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyexasol
import pytest

from redpss.devdb.errors import QueryAborted
from redpss.devdb.session import Session
from redpss.devdb.testing import InProcessDevDb
from tests.support.wait import wait_for

LONG_QUERY = 'SELECT SUM(a."RANGE" * b."RANGE") FROM range(1000000) a, range(1000000) b'


class Running:
    """A statement running in a thread; `error` is what it raised."""

    def __init__(self, connection: Any, sql: str) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(connection, sql))
        self.thread.start()

    def _run(self, connection: Any, sql: str) -> None:
        try:
            connection.execute(sql)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def join(self) -> BaseException | None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        return self.error


@pytest.fixture
def two(devdb: InProcessDevDb, schema: str, conn: Any) -> Iterator[tuple[Any, Any]]:
    with devdb.connect(schema=schema) as victim, devdb.connect(schema=schema) as killer:
        yield victim, killer


def _until_finished(running: Running, interrupt: Any) -> BaseException | None:
    """Interrupt until the statement ends: an abort that arrives before the statement runs aborts nothing."""

    def finished() -> bool:
        interrupt()
        running.thread.join(timeout=0.2)
        return not running.thread.is_alive()

    wait_for(finished, timeout=20, what="the statement to end")
    return running.join()


def test_abort_query_stops_a_long_running_statement(two: tuple[Any, Any]) -> None:
    victim, _ = two
    running = Running(victim, LONG_QUERY)
    assert isinstance(_until_finished(running, victim.abort_query), pyexasol.ExaQueryAbortError)
    assert victim.execute("SELECT 1 FROM DUAL").fetchval() == 1


@pytest.mark.parametrize("delay_ms", [0, 0.5, 1, 2, 3, 5, 8])
def test_an_abort_sent_after_the_statement_aborts_it_whenever_it_arrives(conn: Any, delay_ms: float) -> None:
    """An abortQuery sent after an execute aborts that statement, whether devdb has started it yet (it reads
    requests ahead of running them), is still translating it, or is just handing it to DuckDB (which forgets an
    interrupt that comes before its query starts). pyexasol sends both frames here, in this order, on its socket;
    its own execute() would wait for the reply, so the frames are sent by the functions execute() uses."""
    conn._ws.settimeout(15)  # a lost abort leaves the statement running: the reply would never come
    for _ in range(3):
        conn._ws_send(conn.json_encode({"command": "execute", "sqlText": LONG_QUERY, "attributes": {}}))
        time.sleep(delay_ms / 1000)  # not a wait for anything: when the abort arrives is what the test varies
        conn.abort_query()
        reply = conn.json_decode(conn._ws_recv())
        assert (reply["status"], reply["exception"]["sqlCode"]) == ("error", "R0003")
    conn._ws.settimeout(None)
    assert conn.execute("SELECT 1 FROM DUAL").fetchval() == 1


def test_an_abort_read_before_its_statement_starts_aborts_it(devdb: InProcessDevDb) -> None:
    """devdb reads a connection's requests ahead of running them: an abortQuery read after an execute that has not
    started yet is for that execute (Exasol reads the abort only once the statement runs), not for a later one."""
    assert devdb.server is not None and devdb.server.database is not None
    session = Session(999_001, "SYS", devdb.server.database, devdb.server.transfers)
    try:
        session.start_request(1)
        session.abort_requests_through(1)  # read while request 1 waited for the worker
        with pytest.raises(QueryAborted):
            session.execute("SELECT 1 FROM DUAL")
        session.start_request(2)  # sent after the abort: runs
        assert session.execute("SELECT 1 FROM DUAL")["resultType"] == "resultSet"
    finally:
        session.close()


def test_kill_statement_in_session_aborts_only_the_statement(two: tuple[Any, Any]) -> None:
    victim, killer = two
    running = Running(victim, LONG_QUERY)
    kill = f"KILL STATEMENT IN SESSION {victim.session_id()}"
    assert isinstance(_until_finished(running, lambda: killer.execute(kill)), pyexasol.ExaQueryAbortError)
    assert victim.execute("SELECT 1 FROM DUAL").fetchval() == 1


def test_kill_session_ends_the_session(two: tuple[Any, Any]) -> None:
    victim, killer = two
    running = Running(victim, LONG_QUERY)
    killer.execute(f"KILL SESSION {victim.session_id()}")
    assert isinstance(running.join(), pyexasol.ExaError)
    with pytest.raises(pyexasol.ExaQueryError, match="session 12345 not found"):
        killer.execute("KILL SESSION 12345")


@pytest.mark.parametrize(
    ("sql", "code", "text"),
    [
        ("SELECT * FROM no_such_table", "42000", "object NO_SUCH_TABLE not found"),
        ("SELECT no_such_column FROM t", "42000", "object NO_SUCH_COLUMN not found"),
        ("INSERT INTO t (no_such_column) VALUES (1)", "42000", "object NO_SUCH_COLUMN not found"),
        ("INSERT INTO t VALUES ('abc')", "22018", "data exception - invalid character value for cast; Value: 'abc'"),
        ("CREATE TABLE t (v DECIMAL(9,0))", "42500", "object T already exists"),
        ("OPEN SCHEMA no_such_schema", "42000", "schema NO_SUCH_SCHEMA not found"),
        ("SELECT 1 / 0 FROM DUAL", "22012", "data exception - division by zero"),
        ("SELECT v / (v - 1) FROM t", "22012", "data exception - division by zero"),
    ],
)
def test_common_errors_in_exasols_words(conn: Any, sql: str, code: str, text: str) -> None:
    conn.execute("CREATE TABLE t (v DECIMAL(9,0))")
    conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(sql)
    assert (caught.value.code, caught.value.message) == (code, text)


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_client_aborting_an_import_callback_leaves_no_traceback(
    devdb: InProcessDevDb, conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute("CREATE TABLE imported (v DECIMAL(9,0))")

    def failing_callback(pipe: Any, _src: Any) -> None:
        pipe.write(b"1\n2\n")
        raise RuntimeError("the client gives up")

    with caplog.at_level(logging.INFO, logger="redpss.devdb"), pytest.raises(Exception, match="gives up"):
        conn.import_from_callback(failing_callback, None, "imported")
    assert conn.execute("SELECT COUNT(*) FROM imported").fetchval() == 0
    assert not [record for record in caplog.records if record.exc_info], "a traceback reached devdb's log"
