"""Login, ws/wss, compression, big results by handle, attributes, several sessions - through real pyexasol."""

from __future__ import annotations

import gc
import ssl
import threading
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb


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
    with pytest.raises(pyexasol.ExaRequestError, match="createPreparedStatement"):
        conn.create_prepared_statement("SELECT 1 FROM DUAL")
