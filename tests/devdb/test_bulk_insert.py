"""devdb's quick path for many-row INSERTs of literals (bulk_insert.py) says exactly what the full translation says.

Hypothesis draws rows of every literal the row writer and pyexasol's insert_multi send (text with quotes, backslashes,
line breaks and other scripts, the empty string, integers, decimals, floats, booleans, NULL); the quick path must give
the same DuckDB statement and the same names as translating the whole statement with sqlglot. Statements outside the
literal subset must be left to the usual path, and devdb must store through the quick path what Exasol would.
"""

from __future__ import annotations

import decimal
from typing import Any

import pyexasol
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redpss.core.db.sqltext import sql_literal
from redpss.devdb.bulk_insert import translate_bulk_insert
from redpss.devdb.testing import InProcessDevDb
from redpss.devdb.translate import SessionInfo, translate

INFO = SessionInfo("SYS", "APP", 1)
COLUMNS = ("A", "B_2", "C")

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.sampled_from(list("ab '\\\n\t,()ü€\"-0.5")), max_size=12),
)
rows = st.lists(st.fixed_dictionaries(dict.fromkeys(COLUMNS, values)), min_size=2, max_size=6)


@settings(max_examples=300, deadline=None)
@given(rows)
def test_the_quick_path_says_what_sqlglot_says(drawn: list[dict[str, Any]]) -> None:
    sql = _insert("APP.T", COLUMNS, drawn)
    quick = translate_bulk_insert(sql, INFO)
    full = translate(sql, INFO)
    if quick is None:  # allowed only when a value is written in a form the scanner leaves to sqlglot
        assert any(_unusual(value) for row in drawn for value in row.values()), sql
        return
    assert quick.sql == full.sql
    assert (quick.kind, quick.references, quick.written) == (full.kind, full.references, full.written)
    assert (quick.used_columns, quick.defined_names) == (full.used_columns, full.defined_names)


def _insert(table: str, columns: tuple[str, ...], drawn: list[dict[str, Any]]) -> str:
    """The INSERT as clients write it: the empty string as '' (pyexasol does; the row writer sends NULL)."""

    def literal(value: Any) -> str:
        return "''" if value == "" else sql_literal(value)

    values = ",\n".join("(" + ", ".join(literal(row[c]) for c in columns) + ")" for row in drawn)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES\n{values}"


def _unusual(value: Any) -> bool:
    """A float or decimal whose str() is not plain digits (1e-05, 1E+2, 0E-4): sqlglot may write it otherwise."""
    return isinstance(value, float | decimal.Decimal) and not sql_literal(value).lstrip("-").replace(".", "").isdigit()


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO APP.T (A) VALUES (1)",  # one row: nothing to gain
        "INSERT INTO APP.T (A) VALUES (1), (1 + 1)",
        "INSERT INTO APP.T (A) VALUES (1), (CURRENT_USER)",
        "INSERT INTO APP.T (A) VALUES (1), (2) -- a comment",
        "INSERT INTO APP.T (A) VALUES (1), (2);",
        "INSERT INTO APP.T (A) VALUES (1), (null)",
        "INSERT INTO APP.T (A) VALUES (1), ('open",
        "INSERT INTO APP.T (A) VALUES (1), (2) (3)",
        "INSERT INTO APP.T (A) VALUES (1), (2),",
        "INSERT INTO APP.T (A) VALUES (1), (+2)",
        "INSERT INTO APP.T (A) VALUES (1), (2x)",
        "INSERT INTO APP.T VALUES (1), (2)",  # no column list
        "INSERT INTO APP.T (A) SELECT 1 FROM DUAL",
        "SELECT 1 FROM DUAL",
    ],
)
def test_anything_else_takes_the_usual_path(sql: str) -> None:
    assert translate_bulk_insert(sql, INFO) is None


def test_rows_through_the_quick_path_are_stored_as_the_usual_path_stores_them(devdb: InProcessDevDb) -> None:
    declaration = "(id DECIMAL(9,0), txt VARCHAR(5), amount DECIMAL(10,2), seen TIMESTAMP, ok BOOLEAN)"
    rows = [
        {"ID": 1, "TXT": "it's", "AMOUNT": decimal.Decimal("1.50"), "SEEN": "2026-11-30 10:00:00.123456", "OK": True},
        {"ID": 2, "TXT": "", "AMOUNT": -3, "SEEN": None, "OK": False},
    ]
    rows += [{"ID": n, "TXT": "a\\b", "AMOUNT": None, "SEEN": "2026-01-01 00:00:00", "OK": None} for n in range(3, 101)]
    with devdb.connect() as conn:
        conn.execute("CREATE SCHEMA bulk_store")
        try:
            conn.execute(f"CREATE TABLE bulk_store.quick {declaration}")
            conn.execute(f"CREATE TABLE bulk_store.usual {declaration}")
            columns = tuple(rows[0])
            conn.execute(_insert("bulk_store.quick", columns, rows))
            for row in rows:
                conn.execute(_insert("bulk_store.usual", columns, [row]))
            quick = conn.execute("SELECT * FROM bulk_store.quick ORDER BY id").fetchall()
            assert quick == conn.execute("SELECT * FROM bulk_store.usual ORDER BY id").fetchall()
            assert len(quick) == 100
            assert quick[1][1] is None  # '' is NULL in Exasol
            assert conn.execute("SELECT COUNT(*) FROM bulk_store.quick WHERE txt IS NULL").fetchval() == 1
            too_long = [{"ID": 200, "TXT": "short"}, {"ID": 201, "TXT": "longer than five"}]
            with pytest.raises(pyexasol.ExaQueryError, match="TXT"):
                conn.execute(_insert("bulk_store.quick", ("ID", "TXT"), too_long))
            assert conn.execute("SELECT COUNT(*) FROM bulk_store.quick WHERE id >= 200").fetchval() == 0
        finally:
            conn.execute("DROP SCHEMA bulk_store CASCADE")
