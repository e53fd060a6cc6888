"""devdb's dates and timestamps as Exasol's, through the real pyexasol driver.

ADD_DAYS/WEEKS/MONTHS/YEARS of a DATE are a DATE (DuckDB's date arithmetic would make them TIMESTAMPs), and
TIMESTAMP is Exasol's TIMESTAMP(3): a value with microseconds, however it enters a table, is kept, compared,
fetched and exported to the millisecond only.
"""

from __future__ import annotations

import gc
import io
from typing import Any

import pytest

_MICROS = "2024-02-28 10:11:12.123456"
_MILLIS = "2024-02-28 10:11:12.123000"  # Exasol's fetch and EXPORT format (NLS_TIMESTAMP_FORMAT ...FF6)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("ADD_DAYS", "2024-02-29"),
        ("ADD_WEEKS", "2024-03-06"),
        ("ADD_MONTHS", "2024-03-28"),
        ("ADD_YEARS", "2025-02-28"),
    ],
)
def test_adding_to_a_date_gives_a_date(conn: Any, function: str, expected: str) -> None:
    conn.execute("CREATE TABLE d (dt DATE, ts TIMESTAMP)")
    conn.execute("INSERT INTO d VALUES (DATE '2024-02-28', TIMESTAMP '2024-02-28 10:11:12.500')")
    statement = conn.execute(f"SELECT {function}(dt, 1) AS on_date, {function}(ts, 1) AS on_ts FROM d")
    assert statement.columns()["ON_DATE"]["type"] == "DATE"
    assert statement.columns()["ON_TS"]["type"] == "TIMESTAMP"
    assert statement.fetchone() == (expected, f"{expected} 10:11:12.500000")


def test_a_table_made_from_add_days_has_a_date_column(conn: Any) -> None:
    conn.execute("CREATE TABLE d AS SELECT ADD_DAYS(DATE '2000-02-28', 1) AS next_day FROM DUAL")
    assert conn.execute("SELECT COLUMN_TYPE FROM EXA_ALL_COLUMNS WHERE COLUMN_TABLE = 'D'").fetchval() == "DATE"
    assert conn.execute("SELECT next_day FROM d").fetchval() == "2000-02-29"


def test_days_are_rounded_before_adding(conn: Any) -> None:
    # Exasol: "Decimals are rounded before adding the number" (DuckDB's INTERVAL 1.6 DAY adds one day)
    statement = conn.execute("SELECT ADD_DAYS(DATE '2000-02-28', 1.6), ADD_DAYS(DATE '2000-02-28', -1.5) FROM DUAL")
    assert statement.fetchone() == ("2000-03-01", "2000-02-26")


def test_hours_and_minutes_are_rounded_before_adding(conn: Any) -> None:
    # the same words on ADD_HOURS and ADD_MINUTES: INTERVAL 1.5 MINUTE added one minute, 0.9 HOUR none
    start = "TIMESTAMP '2000-01-01 00:00:00'"
    statement = conn.execute(
        f"SELECT ADD_MINUTES({start}, 1.5), ADD_MINUTES({start}, -1.5), ADD_HOURS({start}, 0.9), "
        "ADD_HOURS(DATE '2000-01-01', 2) AS on_date FROM DUAL"
    )
    assert statement.columns()["ON_DATE"]["type"] == "TIMESTAMP"
    assert statement.fetchone() == (
        "2000-01-01 00:02:00.000000",
        "1999-12-31 23:58:00.000000",
        "2000-01-01 01:00:00.000000",
        "2000-01-01 02:00:00.000000",
    )


def test_extracted_seconds_keep_their_milliseconds(conn: Any) -> None:
    # Exasol: "When extracting seconds, the milliseconds contained in the timestamp are also extracted" (59.123)
    conn.execute("CREATE TABLE t (id DECIMAL(3,0), ts TIMESTAMP)")
    conn.execute(
        "INSERT INTO t VALUES (1, TIMESTAMP '2000-10-01 12:22:59.123'), (2, TIMESTAMP '9999-12-31 23:58:57.9')"
    )
    statement = conn.execute("SELECT EXTRACT(SECOND FROM ts) AS s, EXTRACT(MINUTE FROM ts) FROM t ORDER BY id")
    assert statement.columns()["S"]["type"] == "DECIMAL"
    assert statement.fetchall() == [("59.123", 22), ("57.9", 58)]


def _stored(conn: Any) -> list[Any]:
    return [row[0] for row in conn.execute("SELECT ts FROM t ORDER BY id").fetchall()]


def test_inserted_and_updated_timestamps_keep_milliseconds(conn: Any) -> None:
    conn.execute("CREATE TABLE t (id DECIMAL(3,0), ts TIMESTAMP)")
    conn.execute(f"INSERT INTO t VALUES (1, '{_MICROS}'), (2, TIMESTAMP '{_MICROS}')")
    conn.execute(f"INSERT INTO t SELECT 3, CAST('{_MICROS}' AS TIMESTAMP) FROM DUAL")
    conn.execute("INSERT INTO t VALUES (4, NULL)")
    conn.execute(f"UPDATE t SET ts = '{_MICROS}' WHERE id = 4")
    assert _stored(conn) == [_MILLIS] * 4
    assert conn.execute(f"SELECT COUNT(*) FROM t WHERE ts = TIMESTAMP '{_MILLIS[:-3]}'").fetchval() == 4


def test_table_as_select_and_prepared_inserts_keep_milliseconds(conn: Any) -> None:
    conn.execute(f"CREATE TABLE t AS SELECT 1 AS id, CAST('{_MICROS}' AS TIMESTAMP) AS ts FROM DUAL")
    conn.ext.insert_multi("t", [(2, _MICROS), (3, _MICROS)])
    assert _stored(conn) == [_MILLIS] * 3


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_imported_timestamps_keep_milliseconds_and_export_shows_them(conn: Any) -> None:
    conn.execute("CREATE TABLE t (id DECIMAL(3,0), ts TIMESTAMP)")
    conn.import_from_iterable([(1, _MICROS)], "t")
    gc.collect()  # pyexasol leaves its text wrappers of the pipes to the garbage collector
    assert _stored(conn) == [_MILLIS]
    sink = io.BytesIO()
    conn.export_to_file(sink, "SELECT id, ts, CAST('2024-01-01 00:00:00.000400' AS TIMESTAMP) FROM t")
    assert sink.getvalue().decode() == f'1,"{_MILLIS}","2024-01-01 00:00:00.000000"\n'


def test_the_current_timestamp_has_no_microseconds(conn: Any) -> None:
    now, local = conn.execute("SELECT CURRENT_TIMESTAMP, SYSTIMESTAMP FROM DUAL").fetchone()
    assert now.endswith("000")
    assert local.endswith("000")


def test_timestamps_of_any_year_are_read_by_the_time_functions(conn: Any) -> None:
    conn.execute("CREATE TABLE t (id DECIMAL(3,0), ts TIMESTAMP)")
    conn.execute("INSERT INTO t VALUES (1, TIMESTAMP '9999-12-31 23:58:57.999')")
    statement = conn.execute(
        "SELECT ts, HOUR(ts), MINUTE(ts), EXTRACT(YEAR FROM ts), ADD_DAYS(ts, -1), ADD_MONTHS(ts, -1) FROM t"
    )
    assert statement.fetchone() == (
        "9999-12-31 23:58:57.999000",
        23,
        58,
        9999,
        "9999-12-30 23:58:57.999000",
        "9999-11-30 23:58:57.999000",
    )
