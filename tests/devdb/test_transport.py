"""pyexasol's HTTP transport (export/import of CSV), plain and TLS, with Exasol's CSV conventions."""

from __future__ import annotations

import gc
import io
from pathlib import Path
from typing import Any

import pytest

from redpss.devdb.testing import InProcessDevDb


@pytest.fixture(params=[(False, False), (True, False), (True, True)], ids=["plain", "tls", "tls-compressed"])
def transport_conn(request: pytest.FixtureRequest, devdb: InProcessDevDb, schema: str) -> Any:
    encryption, compression = request.param
    connection = devdb.connect(encryption=encryption, compression=compression)
    connection.execute(f"CREATE SCHEMA {schema}")
    connection.execute(f"OPEN SCHEMA {schema}")
    yield connection
    connection.close()


def test_export_and_import_round_trip(transport_conn: Any, tmp_path: Path) -> None:
    conn = transport_conn
    conn.execute("CREATE TABLE t (id DECIMAL(9,0), name VARCHAR(20), ts TIMESTAMP, ok BOOLEAN, amount DECIMAL(8,2))")
    conn.execute(
        "INSERT INTO t VALUES (1, 'a b', TIMESTAMP '2024-01-01 12:00:00.9', TRUE, 1.5), (2, NULL, NULL, FALSE, NULL), "
        "(3, 'quote\"d,comma', TIMESTAMP '2024-02-29 23:59:59', NULL, -0.25)"
    )
    target = tmp_path / "t.csv"
    with target.open("wb") as out:  # pyexasol leaves files it opened itself unclosed: hand it open files
        conn.export_to_file(out, "SELECT * FROM t ORDER BY id")
    assert target.read_bytes() == (
        b'1,"a b","2024-01-01 12:00:00.900000",1,1.5\n2,,,0,\n3,"quote""d,comma","2024-02-29 23:59:59.000000",,-0.25\n'
    )
    conn.execute("CREATE TABLE copy (id DECIMAL(9,0), name VARCHAR(20), ts TIMESTAMP, ok BOOLEAN, amount DECIMAL(8,2))")
    with target.open("rb") as source:
        conn.import_from_file(source, "copy")
    assert conn.last_statement().rowcount() == 3
    assert (
        conn.execute("SELECT * FROM copy ORDER BY id").fetchall()
        == conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    )


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_export_to_callback_and_import_from_iterable(transport_conn: Any) -> None:
    conn = transport_conn
    conn.execute("CREATE TABLE n (id DECIMAL(9,0), label VARCHAR(10))")
    conn.import_from_iterable(((i, f"n{i}") for i in range(5000)), "n")
    gc.collect()  # pyexasol's import_from_iterable leaves its text wrapper of the pipe to the garbage collector
    assert conn.execute("SELECT COUNT(*), SUM(id) FROM n").fetchone() == (5000, str(sum(range(5000))))  # DECIMAL(36,0)
    data = conn.export_to_callback(lambda pipe, _dst: pipe.read(), None, "n", export_params={"with_column_names": True})
    lines = data.decode().splitlines()
    assert lines[0] == "ID,LABEL"
    assert len(lines) == 5001


def test_failed_import_keeps_nothing(transport_conn: Any) -> None:
    conn = transport_conn
    conn.execute("CREATE TABLE strict_t (id DECIMAL(9,0))")
    with pytest.raises(Exception, match="not-a-number"):
        conn.import_from_file(io.BytesIO(b"1\nnot-a-number\n"), "strict_t")
    assert conn.execute("SELECT COUNT(*) FROM strict_t").fetchval() == 0


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_imported_char_values_are_blank_padded(transport_conn: Any) -> None:
    """An IMPORT pads a value shorter than its CHAR(n) column, as Exasol stores it (see test_types)."""
    conn = transport_conn
    conn.execute("CREATE TABLE codes (id DECIMAL(9,0), code CHAR(4))")
    conn.import_from_iterable([(1, "ab"), (2, "abcd"), (3, None)], "codes")
    gc.collect()  # pyexasol's import_from_iterable leaves its text wrapper of the pipe to the garbage collector
    rows = conn.execute("SELECT code, LENGTH(code), code || '|' FROM codes ORDER BY id").fetchall()
    assert rows == [("ab  ", 4, "ab  |"), ("abcd", 4, "abcd|"), (None, None, "|")]
