"""Login, ws/wss, compression, big results by handle, attributes, several sessions - through real pyexasol."""

from __future__ import annotations

import gc
import ssl
import threading
from pathlib import Path
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import DevDbProcess, InProcessDevDb
from tests.support.wait import wait_for


def test_login_ok_reports_session_and_attributes(devdb: InProcessDevDb) -> None:
    with devdb.connect() as connection:
        assert connection.session_id()
        assert connection.login_info["releaseVersion"].startswith("8.")
        assert connection.attr["autocommit"] is True
        assert connection.execute("SELECT CURRENT_USER FROM DUAL").fetchval() == "SYS"


def test_wrong_password_is_refused(devdb: InProcessDevDb) -> None:
    with pytest.raises(pyexasol.ExaAuthError) as caught:
        devdb.connect(password="wrong")
    code = caught.value.code
    del caught  # the error holds the refused connection, whose socket pyexasol leaves to the garbage collector
    gc.collect()
    assert code == "08004"


def test_wss_with_pinned_fingerprint(devdb: InProcessDevDb) -> None:
    with devdb.connect(encryption=True) as connection:
        assert connection.execute("SELECT 42 FROM DUAL").fetchval() == 42


def test_wss_with_ca_file(devdb: InProcessDevDb) -> None:
    ca_file = devdb.data_dir / "tls" / "devdb.crt"
    with pyexasol.connect(
        dsn=f"127.0.0.1:{devdb.port}",
        user=devdb.user,
        password=devdb.password,
        encryption=True,
        websocket_sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(ca_file)},
    ) as connection:
        assert connection.execute("SELECT 'tls' FROM DUAL").fetchval() == "tls"


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_wss_with_wrong_fingerprint_is_refused(devdb: InProcessDevDb) -> None:
    with pytest.raises(pyexasol.ExaConnectionFailedError, match="did not match"):
        pyexasol.connect(dsn=f"127.0.0.1/{'AB' * 32}:{devdb.port}", user="sys", password="exasol", encryption=True)
    gc.collect()  # pyexasol leaves the refused socket to the garbage collector


@pytest.mark.parametrize("encryption", [False, True])
def test_compression(devdb: InProcessDevDb, encryption: bool) -> None:
    with devdb.connect(compression=True, encryption=encryption) as connection:
        rows = connection.execute("SELECT 'x' || 'y' AS v FROM DUAL").fetchall()
        assert rows == [("xy",)]


def test_25000_rows_are_fetched_by_handle(conn: Any) -> None:
    conn.execute("CREATE TABLE big (id DECIMAL(18,0), label VARCHAR(20))")
    conn.execute("INSERT INTO big SELECT i, 'row ' || i FROM range(25000) AS r(i)")
    statement = conn.execute("SELECT id, label FROM big ORDER BY id")
    assert statement.result_set_handle is not None  # above 1,000 rows Exasol keeps the result on the server
    assert statement.rowcount() == 25000
    rows = statement.fetchall()
    assert [row[0] for row in rows] == list(range(25000))
    assert rows[-1] == (24999, "row 24999")
    small = conn.execute("SELECT id FROM big WHERE id < 999")
    assert small.result_set_handle is None
    assert len(small.fetchall()) == 999


def test_attributes_schema_autocommit_timeout(conn: Any, schema: str) -> None:
    assert conn.current_schema() == schema
    conn.set_autocommit(False)
    conn.set_query_timeout(7)
    assert conn.attr["autocommit"] is False
    assert conn.attr["queryTimeout"] == 7
    conn.execute("CLOSE SCHEMA")
    assert conn.current_schema() == ""
    conn.open_schema(schema)
    assert conn.current_schema() == schema
    with pytest.raises(pyexasol.ExaRequestError, match="schema NOPE not found"):
        conn.open_schema("NOPE")


def test_several_sessions_at_once(devdb: InProcessDevDb) -> None:
    results: list[Any] = []
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with devdb.connect() as connection:
                results.append(connection.execute(f"SELECT {index} * 2 FROM DUAL").fetchval())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(results) == [0, 2, 4, 6, 8, 10]


def test_unknown_command_is_refused_by_name(conn: Any) -> None:
    with pytest.raises(pyexasol.ExaRequestError, match="noSuchCommand"):
        conn.req({"command": "noSuchCommand"})


def test_big_results_are_released_on_close_and_at_session_end(devdb: InProcessDevDb, conn: Any) -> None:
    assert devdb.server is not None
    conn.execute("CREATE TABLE many (id DECIMAL(18,0))")
    conn.execute("INSERT INTO many SELECT i FROM range(30000) AS r(i)")
    statement = conn.execute("SELECT id FROM many ORDER BY id")
    assert statement.rowcount() == 30000
    assert devdb.server.open_result_sets() == 1
    assert [row[0] for row in statement.fetchmany(5)] == [0, 1, 2, 3, 4]
    statement.close()  # closeResultSet
    assert devdb.server.open_result_sets() == 0
    with devdb.connect() as other:
        other.execute(f"SELECT id FROM {conn.current_schema()}.many").fetchmany(10)
        assert devdb.server.open_result_sets() == 1
    wait_for(lambda: devdb.server is not None and devdb.server.open_result_sets() == 0, what="the session to end")


def test_a_streamed_result_keeps_its_snapshot_and_row_count(devdb: InProcessDevDb, conn: Any) -> None:
    conn.execute("CREATE TABLE moving (id DECIMAL(18,0))")
    conn.execute("INSERT INTO moving SELECT i FROM range(5000) AS r(i)")
    statement = conn.execute("SELECT id FROM moving ORDER BY id")
    with devdb.connect() as writer:
        writer.execute(f"INSERT INTO {conn.current_schema()}.moving SELECT i FROM range(5000, 7000) AS r(i)")
    assert statement.rowcount() == 5000
    assert [row[0] for row in statement.fetchall()] == list(range(5000))


def test_a_streamed_result_refuses_to_fetch_backwards_by_name(conn: Any) -> None:
    conn.execute("CREATE TABLE seq (id DECIMAL(18,0))")
    conn.execute("INSERT INTO seq SELECT i FROM range(3000) AS r(i)")
    statement = conn.execute("SELECT id FROM seq ORDER BY id")
    handle = statement.result_set_handle
    first = conn.req({"command": "fetch", "resultSetHandle": handle, "startPosition": 0, "numBytes": 1000})
    assert first["status"] == "ok" and first["responseData"]["numRows"] > 0
    skipped = conn.req({"command": "fetch", "resultSetHandle": handle, "startPosition": 2990, "numBytes": 1 << 20})
    assert skipped["responseData"]["data"][0] == list(range(2990, 3000))
    with pytest.raises(pyexasol.ExaRequestError, match="forward only"):
        conn.req({"command": "fetch", "resultSetHandle": handle, "startPosition": 0, "numBytes": 1000})
    statement.close()


def test_inside_a_transaction_a_big_result_sees_its_own_changes(conn: Any) -> None:
    conn.set_autocommit(False)
    conn.execute("CREATE TABLE own (id DECIMAL(18,0))")
    conn.execute("INSERT INTO own SELECT i FROM range(2500) AS r(i)")
    assert len(conn.execute("SELECT id FROM own").fetchall()) == 2500
    conn.rollback()


def _memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


@pytest.mark.slow
def test_a_big_result_fetched_in_part_costs_a_fetch_window_not_the_result(tmp_path: Path) -> None:
    """4M rows (about 250 MB as wire-ready Arrow) once sat whole in devdb's memory, and stayed there after close."""
    process = DevDbProcess(tmp_path / "db")
    process.start()
    try:
        with process.connect() as connection:
            connection.execute("CREATE SCHEMA m")
            connection.execute("CREATE TABLE m.t (id DECIMAL(18,0), name VARCHAR(60), amount DECIMAL(12,2))")
            connection.execute(
                "INSERT INTO m.t SELECT i, 'name ' || i || ' padded to a realistic width', i / 100 "
                "FROM range(4000000) AS r(i)"
            )
        process.stop()
        process.start()  # a fresh process: its peak (VmHWM) is the query's, not the insert's
        assert process.process is not None
        pid = process.process.pid
        with process.connect() as connection:
            assert connection.execute("SELECT COUNT(*) FROM m.t").fetchval() == 4_000_000
            before = _memory_mib(pid)
            statement = connection.execute("SELECT * FROM m.t")
            assert statement.rowcount() == 4_000_000
            assert len(statement.fetchmany(20_000)) == 20_000
            during = _memory_mib(pid)
            statement.close()
            after = _memory_mib(pid)
        print(f"devdb memory MiB: before {before}, fetching {during}, after close {after}")
        assert during["VmHWM"] - before["VmRSS"] < 120, (before, during)
        assert after["VmRSS"] - before["VmRSS"] < 120, (before, after)
    finally:
        process.stop()
