"""devdb answers as Exasol does, through the real pyexasol driver: values, literals, names, schemas, CSV.

Each test here pins a documented Exasol behaviour where devdb once answered silently differently.
"""

from __future__ import annotations

import decimal
import io
from pathlib import Path
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb


def test_decimals_come_back_without_trailing_zeros(conn: Any) -> None:
    conn.execute("CREATE TABLE d (a DECIMAL(10,5), b DECIMAL(12,2), c DECIMAL(9,0), z DECIMAL(5,2))")
    conn.execute("INSERT INTO d VALUES (0.7, 88.90, 42, 0), (1, -0.5, -7, 12.00)")
    assert conn.execute("SELECT * FROM d ORDER BY c").fetchall() == [("1", "-0.5", -7, "12"), ("0.7", "88.9", 42, "0")]


def test_wide_decimals_travel_as_strings(conn: Any) -> None:
    conn.execute("CREATE TABLE w (big DECIMAL(36,0), frac DECIMAL(36,36), neg DECIMAL(36,36))")
    conn.execute(f"INSERT INTO w VALUES ({'9' * 36}, 0.{'9' * 36}, -0.5)")
    assert conn.execute("SELECT big, frac, neg FROM w").fetchone() == ("9" * 36, "0." + "9" * 36, "-0.5")


def test_wide_decimals_are_exact_with_the_native_mapper(devdb: InProcessDevDb, schema: str, conn: Any) -> None:
    from pyexasol.data_types import convert_websocket_to_python  # noqa: PLC0415 - pyexasol 3 location

    conn.execute("CREATE TABLE w (big DECIMAL(36,0), frac DECIMAL(36,36))")
    conn.execute(f"INSERT INTO w VALUES ({'9' * 36}, 0.{'9' * 36})")
    with devdb.connect(schema=schema, fetch_mapper=convert_websocket_to_python) as mapped:
        big, frac = mapped.execute("SELECT big, frac FROM w").fetchone()
    assert big == int("9" * 36)
    assert frac == decimal.Decimal("0." + "9" * 36)


def test_numeric_literals_take_the_smallest_exact_type(conn: Any) -> None:
    statement = conn.execute("SELECT 1.0, 0.50, 123, 1E3, -2.250 FROM DUAL")
    assert list(statement.columns().values()) == [
        {"type": "DECIMAL", "precision": 1, "scale": 0},
        {"type": "DECIMAL", "precision": 1, "scale": 1},
        {"type": "DECIMAL", "precision": 3, "scale": 0},
        {"type": "DOUBLE"},
        {"type": "DECIMAL", "precision": 3, "scale": 2},
    ]
    assert statement.fetchone() == (1, "0.5", 123, 1000.0, "-2.25")


def test_timestamp_size_is_exasol_8s(conn: Any) -> None:
    conn.execute("CREATE TABLE ts (t TIMESTAMP)")
    assert conn.execute("SELECT t FROM ts").columns()["T"] == {
        "type": "TIMESTAMP",
        "size": 16,
        "withLocalTimeZone": False,
    }


def test_export_writes_decimals_as_exasol_does(conn: Any) -> None:
    conn.execute("CREATE TABLE e (a DECIMAL(10,5), b DECIMAL(12,2), c DECIMAL(36,0), f DECIMAL(5,5))")
    conn.execute(f"INSERT INTO e VALUES (0.7, 88.90, {'1' * 30}, 0.5)")
    sink = io.BytesIO()
    conn.export_to_file(sink, "e")
    assert sink.getvalue().decode() == f"0.7,88.9,{'1' * 30},0.5\n"


def test_unquoted_names_do_not_find_quoted_mixed_case_tables(conn: Any) -> None:
    conn.execute('CREATE TABLE "camelCaseTable" (v DECIMAL(9,0))')
    conn.execute('INSERT INTO "camelCaseTable" VALUES (1)')
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute("SELECT * FROM camelCaseTable")
    assert caught.value.code == "42000"
    assert "CAMELCASETABLE not found" in caught.value.message
    assert conn.execute('SELECT v FROM "camelCaseTable"').fetchval() == 1


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE OR REPLACE TABLE LOWER_T (v DECIMAL(9,0))",
        "CREATE TABLE LOWER_T (v DECIMAL(9,0))",
        "CREATE OR REPLACE VIEW LOWER_T AS SELECT 1 AS v FROM DUAL",
        "CREATE OR REPLACE TABLE LOWER_T AS SELECT 1 AS v FROM DUAL",
        "DROP TABLE IF EXISTS LOWER_T",
    ],
)
def test_a_case_twin_never_replaces_a_quoted_table(conn: Any, statement: str) -> None:
    conn.execute('CREATE TABLE "lower_t" (v DECIMAL(9,0))')
    conn.execute('INSERT INTO "lower_t" VALUES (7)')
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(statement)
    assert caught.value.code == "0A000"
    assert "differ only in case" in caught.value.message
    assert conn.execute('SELECT v FROM "lower_t"').fetchall() == [(7,)]


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO lower_t VALUES (1)",
        "UPDATE lower_t SET v = 1",
        "DELETE FROM lower_t",
        "TRUNCATE TABLE lower_t",
        "DROP TABLE lower_t",
        "ALTER TABLE lower_t ADD COLUMN w DECIMAL(9,0)",
        "MERGE INTO lower_t t USING (SELECT 1 AS v FROM DUAL) s ON t.v = s.v WHEN MATCHED THEN UPDATE SET v = 2",
        "SELECT * FROM (SELECT v FROM lower_t) x",
        "CREATE VIEW vw AS SELECT v FROM lower_t",
        "EXPORT lower_t INTO CSV AT 'http://127.0.0.1:1' FILE 'x.csv'",
        "IMPORT INTO lower_t FROM CSV AT 'http://127.0.0.1:1' FILE 'x.csv'",
    ],
)
def test_every_statement_looks_names_up_exactly(conn: Any, statement: str) -> None:
    conn.execute('CREATE TABLE "lower_t" (v DECIMAL(9,0))')
    conn.execute('INSERT INTO "lower_t" VALUES (7)')
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(statement)
    assert "LOWER_T not found" in caught.value.message
    assert conn.execute('SELECT v FROM "lower_t"').fetchall() == [(7,)]


def test_create_schema_opens_it(devdb: InProcessDevDb) -> None:
    with devdb.connect() as connection:
        connection.execute("CREATE SCHEMA opened_by_create")
        try:
            assert connection.current_schema() == "OPENED_BY_CREATE"
            assert connection.execute("SELECT CURRENT_SCHEMA FROM DUAL").fetchval() == "OPENED_BY_CREATE"
            connection.execute("CREATE TABLE lands_here (v DECIMAL(9,0))")
            tables = connection.execute(
                "SELECT table_schema FROM exa_all_tables WHERE table_name = 'LANDS_HERE'"
            ).fetchall()
            assert tables == [("OPENED_BY_CREATE",)]
        finally:
            connection.execute("DROP SCHEMA opened_by_create CASCADE")


@pytest.mark.parametrize(("separator", "line_end"), [("CRLF", "\r\n"), ("LF", "\n"), ("CR", "\r")])
def test_import_splits_rows_at_the_row_separator(conn: Any, tmp_path: Path, separator: str, line_end: str) -> None:
    conn.execute("CREATE TABLE r (id DECIMAL(9,0), name VARCHAR(20))")
    source = tmp_path / "rows.csv"
    source.write_bytes(f'1,x{line_end}2,"two{line_end}lines"{line_end}3,z{line_end}'.encode())
    with source.open("rb") as stream:
        conn.import_from_file(stream, "r", import_params={"row_separator": separator})
    assert conn.execute("SELECT id, name FROM r ORDER BY id").fetchall() == [
        (1, "x"),
        (2, f"two{line_end}lines"),
        (3, "z"),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT camelCol FROM mixed",
        "SELECT m.camelCol FROM mixed m",
        "SELECT * FROM mixed WHERE camelCol = 1",
        "INSERT INTO mixed (camelCol) VALUES (2)",
        "UPDATE mixed SET camelCol = 2",
        "DELETE FROM mixed WHERE camelCol = 1",
    ],
)
def test_unquoted_column_names_do_not_find_quoted_mixed_case_columns(conn: Any, statement: str) -> None:
    conn.execute('CREATE TABLE mixed ("camelCol" DECIMAL(9,0), plain DECIMAL(9,0))')
    conn.execute("INSERT INTO mixed VALUES (1, 1)")
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(statement)
    assert caught.value.message == "object CAMELCOL not found"
    assert conn.execute('SELECT "camelCol", plain AS camelCol FROM mixed').fetchall() == [(1, 1)]
    assert conn.execute("SELECT x.camelCol FROM (SELECT plain AS camelCol FROM mixed) x").fetchall() == [(1,)]


def test_schema_names_follow_the_case_rules(devdb: InProcessDevDb) -> None:
    with devdb.connect() as connection:
        connection.execute('CREATE SCHEMA "lower_s"')
        try:
            connection.execute('CREATE TABLE "lower_s".t (v DECIMAL(9,0))')
            connection.execute('INSERT INTO "lower_s".t VALUES (1)')
            for statement, words in [
                ("CREATE SCHEMA LOWER_S", "differ only in case"),
                ("DROP SCHEMA LOWER_S CASCADE", "differ only in case"),
                ("DROP SCHEMA IF EXISTS LOWER_S CASCADE", "differ only in case"),
                ("OPEN SCHEMA LOWER_S", "schema LOWER_S not found"),
                ("SELECT * FROM LOWER_S.T", "object LOWER_S.T not found"),
                ("CREATE TABLE LOWER_S.U (v DECIMAL(9,0))", "object LOWER_S not found"),
            ]:
                with pytest.raises(pyexasol.ExaQueryError, match=words):
                    connection.execute(statement)
            assert connection.execute('SELECT v FROM "lower_s".t').fetchall() == [(1,)]
        finally:
            connection.execute('DROP SCHEMA "lower_s" CASCADE')


@pytest.mark.parametrize(
    "statement",
    ["CREATE TABLE nowhere (v DECIMAL(9,0))", "SELECT * FROM nowhere", "DROP TABLE IF EXISTS nowhere"],
)
def test_unqualified_names_need_an_open_schema(devdb: InProcessDevDb, statement: str) -> None:
    with devdb.connect() as connection:
        with pytest.raises(pyexasol.ExaQueryError) as caught:
            connection.execute(statement)
        assert caught.value.message == "no schema specified or opened or current schema has been dropped"
        assert connection.execute("SELECT 1 FROM DUAL").fetchval() == 1


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE r (STATE VARCHAR(10))",
        "CREATE TABLE r (source VARCHAR(10))",
        "SELECT 1 AS VALUE FROM DUAL",
        "SELECT x.script FROM (SELECT 1 AS a) x",
    ],
)
def test_a_reserved_word_as_an_unquoted_name_is_a_syntax_error(conn: Any, statement: str) -> None:
    """Exasol refuses these (SYS.EXA_SQL_KEYWORDS, RESERVED); devdb took them, so SQL that passed here failed there."""
    with pytest.raises(pyexasol.ExaQueryError) as refused:
        conn.execute(statement)
    assert refused.value.code == "42000" and "is a reserved word; as a name it must be quoted" in refused.value.message


def test_a_reserved_word_quoted_is_a_name_and_value_words_keep_their_meaning(conn: Any) -> None:
    conn.execute('CREATE TABLE r ("STATE" VARCHAR(10), "SOURCE" VARCHAR(10))')
    conn.execute("INSERT INTO r VALUES ('RUNNING', 'x')")
    assert conn.execute('SELECT "STATE", "SOURCE" AS "VALUE" FROM r').fetchall() == [("RUNNING", "x")]
    assert conn.execute("SELECT CURRENT_USER, SYSDATE IS NOT NULL FROM DUAL").fetchone()[1] is True


def test_user_and_current_user_are_both_the_user_and_named_as_written(devdb: InProcessDevDb, conn: Any) -> None:
    """USER is equivalent to CURRENT_USER in Exasol, and a result column is named after the word written. sqlglot
    read both as CURRENT_USER, so `SELECT USER, CURRENT_USER` had two columns of one name (pyexasol refused it)."""
    user = devdb.user.upper()
    both = conn.execute("SELECT USER, CURRENT_USER FROM DUAL")
    assert list(both.columns()) == ["USER", "CURRENT_USER"] and both.fetchall() == [(user, user)]
    for word in ("USER", "CURRENT_USER", "user"):
        alone = conn.execute(f"SELECT {word} FROM DUAL")
        assert list(alone.columns()) == [word.upper()] and alone.fetchval() == user
    expression = conn.execute("SELECT LOWER(USER), USER || '!' FROM DUAL")
    assert list(expression.columns()) == ["LOWER(USER)", "USER || '!'"]
    assert expression.fetchone() == (user.lower(), user + "!")
    derived = conn.execute("SELECT * FROM (SELECT USER, CURRENT_USER FROM DUAL)")
    assert list(derived.columns()) == ["USER", "CURRENT_USER"] and derived.fetchall() == [(user, user)]
    assert conn.execute("SELECT COUNT(*) FROM DUAL WHERE USER = CURRENT_USER").fetchval() == 1
    assert list(conn.meta.sql_columns("SELECT USER, CURRENT_USER FROM DUAL")) == ["USER", "CURRENT_USER"]  # prepared


def test_null_sorts_as_the_largest_value(conn: Any) -> None:
    """Exasol puts NULLs last ascending and first descending; devdb put them last both ways."""
    conn.execute("CREATE TABLE n (x DECIMAL(3,0))")
    conn.execute("INSERT INTO n VALUES (1), (NULL), (2)")
    column = [row[0] for row in conn.execute("SELECT x FROM n ORDER BY x DESC").fetchall()]
    assert column == [None, 2, 1]
    assert [row[0] for row in conn.execute("SELECT x FROM n ORDER BY x").fetchall()] == [1, 2, None]
    assert [row[0] for row in conn.execute("SELECT x FROM n ORDER BY x DESC NULLS LAST").fetchall()] == [2, 1, None]
    assert conn.execute("SELECT x FROM n ORDER BY x DESC LIMIT 1").fetchall() == [(None,)]
