"""Property-based conformance: every type through insert_multi, fetch, EXPORT and IMPORT; names in every statement.

Hypothesis draws values across each type's range and names of every shape; devdb must return each value in
Exasol's wire and CSV form and bring it back unchanged through an EXPORT/IMPORT round trip, and must resolve every
name by Exasol's case rules in DDL and DML alike.
"""

from __future__ import annotations

import datetime
import decimal
import io
import itertools
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.devdb.testing import InProcessDevDb

EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
_tables = itertools.count(1)


@pytest.fixture(scope="module")
def shared(devdb: InProcessDevDb) -> Iterator[Any]:
    """One connection for all examples of this module, in its own schema."""
    with devdb.connect() as connection:
        connection.execute("CREATE SCHEMA props")
        yield connection
        connection.execute("DROP SCHEMA props CASCADE")


def _round_trip(conn: Any, declaration: str, rows: list[tuple[Any]]) -> tuple[list[tuple[Any, ...]], str, list[Any]]:
    """Insert rows with insert_multi; (fetched rows, exported CSV, rows fetched after importing that CSV)."""
    name = f"T{next(_tables)}"
    conn.execute(f"CREATE TABLE {name} (k DECIMAL(9,0), v {declaration})")
    conn.ext.insert_multi(name, [(index, *row) for index, row in enumerate(rows)])
    fetched = conn.execute(f"SELECT v FROM {name} ORDER BY k").fetchall()
    sink = io.BytesIO()
    conn.export_to_file(sink, f"SELECT v FROM {name} ORDER BY k")
    conn.execute(f"CREATE TABLE {name}_copy (v {declaration})")
    conn.import_from_file(io.BytesIO(sink.getvalue()), f"{name}_copy")
    copied = sorted(conn.execute(f"SELECT v FROM {name}_copy").fetchall(), key=repr)
    return fetched, sink.getvalue().decode(), copied


@st.composite
def decimals(draw: st.DrawFn) -> tuple[int, int, list[decimal.Decimal | None]]:
    precision = draw(st.integers(1, 36))
    scale = draw(st.integers(0, precision))
    unscaled = st.integers(-(10**precision) + 1, 10**precision - 1)
    exact = decimal.Context(prec=80)  # the default context would round 36 digits to 28
    values = draw(st.lists(st.none() | unscaled.map(lambda k: decimal.Decimal(k).scaleb(-scale, exact)), min_size=1))
    return precision, scale, values


def _exasol_decimal(value: decimal.Decimal, precision: int, scale: int) -> int | str:
    """A DECIMAL value as Exasol sends it: an int up to precision 18 with scale 0, else its shortest text."""
    if scale == 0 and precision <= 18:
        return int(value)
    text = format(value.normalize(decimal.Context(prec=80)), "f")
    return "0" if text in ("-0", "0") else text


@EXAMPLES
@given(drawn=decimals())
def test_decimals_through_fetch_export_and_import(shared: Any, drawn: tuple[int, int, list[Any]]) -> None:
    precision, scale, values = drawn
    fetched, exported, copied = _round_trip(
        shared, f"DECIMAL({precision},{scale})", [(None if v is None else format(v, "f"),) for v in values]
    )
    expected = [(None if v is None else _exasol_decimal(v, precision, scale),) for v in values]
    assert fetched == expected
    assert exported.splitlines() == ["" if v is None else str(v) for (v,) in expected]
    assert copied == sorted(expected, key=repr)


_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30
)


@EXAMPLES
@given(values=st.lists(st.none() | _text, min_size=1))
def test_text_through_fetch_export_and_import(shared: Any, values: list[str | None]) -> None:
    fetched, _, copied = _round_trip(shared, "VARCHAR(200)", [(v,) for v in values])
    expected = [(v if v else None,) for v in values]  # '' is NULL in Exasol
    assert fetched == expected
    assert copied == sorted(expected, key=repr)


_moments = st.datetimes(datetime.datetime(1, 1, 1), datetime.datetime(9999, 12, 31, 23, 59, 59)).map(
    lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # TIMESTAMP is TIMESTAMP(3)
)


@EXAMPLES
@given(moments=st.lists(st.none() | _moments, min_size=1))
def test_timestamps_and_dates_through_fetch_export_and_import(shared: Any, moments: list[Any]) -> None:
    as_text = [(None if m is None else f"{m.year:04d}-{m:%m-%d %H:%M:%S.%f}",) for m in moments]
    fetched, exported, copied = _round_trip(shared, "TIMESTAMP", as_text)
    assert fetched == as_text
    assert exported.splitlines() == ["" if t is None else f'"{t}"' for (t,) in as_text]
    assert copied == sorted(as_text, key=repr)
    days = [(None if m is None else f"{m.year:04d}-{m:%m-%d}",) for m in moments]
    fetched, exported, copied = _round_trip(shared, "DATE", days)
    assert fetched == days
    assert exported.splitlines() == ["" if d is None else d for (d,) in days]
    assert copied == sorted(days, key=repr)


@EXAMPLES
@given(values=st.lists(st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans(), min_size=1))
def test_doubles_and_booleans_through_fetch_export_and_import(shared: Any, values: list[Any]) -> None:
    doubles = [(None if v is None or isinstance(v, bool) else v,) for v in values]
    fetched, _, copied = _round_trip(shared, "DOUBLE", doubles)
    assert fetched == [(None if v is None else v + 0.0,) for (v,) in doubles]  # -0.0 == 0.0
    assert copied == sorted(fetched, key=repr)
    flags = [(v if isinstance(v, bool) else None,) for v in values]
    fetched, exported, copied = _round_trip(shared, "BOOLEAN", flags)
    assert fetched == flags
    assert exported.splitlines() == ["" if f is None else str(int(f)) for (f,) in flags]
    assert copied == sorted(flags, key=repr)


# ------------------------------------------------------------------ names
_name_chars = string.ascii_letters + string.digits + "_"
names = st.text(alphabet=_name_chars, min_size=1, max_size=12).filter(lambda n: n[0].isalpha())


@EXAMPLES
@given(name=names, use=st.sampled_from(["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "DROP", "ALTER", "VIEW"]))
def test_unquoted_names_find_only_upper_case_tables(shared: Any, name: str, use: str) -> None:
    quoted = f'"{name}_{next(_tables)}"'
    exact = quoted.strip('"')
    shared.execute(f"CREATE TABLE {quoted} (v DECIMAL(9,0))")
    shared.execute(f"INSERT INTO {quoted} VALUES (1)")
    unquoted = exact  # the same letters without quotes: Exasol reads them in upper case
    statement = {
        "SELECT": f"SELECT v FROM {unquoted}",
        "INSERT": f"INSERT INTO {unquoted} VALUES (2)",
        "UPDATE": f"UPDATE {unquoted} SET v = 3",
        "DELETE": f"DELETE FROM {unquoted}",
        "TRUNCATE": f"TRUNCATE TABLE {unquoted}",
        "DROP": f"DROP TABLE {unquoted}",
        "ALTER": f"ALTER TABLE {unquoted} ADD COLUMN w DECIMAL(9,0)",
        "VIEW": f"CREATE OR REPLACE VIEW {unquoted}_V AS SELECT v FROM {unquoted}",
    }[use]
    if exact == exact.upper():
        shared.execute(statement)  # the unquoted name is the same name
    else:
        with pytest.raises(Exception, match=f"{exact.upper()} not found"):
            shared.execute(statement)
        assert shared.execute(f"SELECT v FROM {quoted}").fetchall() == [(1,)]


@EXAMPLES
@given(name=names, replace=st.booleans(), kind=st.sampled_from(["TABLE", "VIEW", "TABLE AS"]))
def test_a_name_differing_only_in_case_never_replaces_another(shared: Any, name: str, replace: bool, kind: str) -> None:
    lower = f"{name.lower()}_{next(_tables)}"
    if lower == lower.upper():
        lower = f"x{lower}"
    shared.execute(f'CREATE TABLE "{lower}" (v DECIMAL(9,0))')
    shared.execute(f'INSERT INTO "{lower}" VALUES (5)')
    head = f"CREATE {'OR REPLACE ' if replace else ''}"
    body = {
        "TABLE": f"TABLE {lower.upper()} (v DECIMAL(9,0))",
        "VIEW": f"VIEW {lower.upper()} AS SELECT 1 AS v FROM DUAL",
        "TABLE AS": f"TABLE {lower.upper()} AS SELECT 1 AS v FROM DUAL",
    }[kind]
    with pytest.raises(Exception, match="differ only in case"):
        shared.execute(head + body)
    assert shared.execute(f'SELECT v FROM "{lower}"').fetchall() == [(5,)]
