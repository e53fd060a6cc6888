"""The Exasol dialect devdb translates, and clear refusals of what it does not support."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyexasol
import pytest

from redpss.devdb.scripts import ScriptContext, register_script, unregister_script


def test_common_exasol_functions(conn: Any) -> None:
    row = conn.execute(
        "SELECT NVL(NULL, 'n'), DECODE(2, 1, 'one', 2, 'two', 'other'), ADD_DAYS(DATE '2024-01-30', 2), "
        "ADD_SECONDS(TIMESTAMP '2024-01-01 00:00:00', 90), SYSTIMESTAMP, SYSDATE, CURRENT_TIMESTAMP FROM DUAL"
    ).fetchone()
    assert row[0] == "n"
    assert row[1] == "two"
    assert row[2].startswith("2024-02-01")
    assert row[3] == "2024-01-01 00:01:30.000000"
    assert len(row[4]) == 26 and len(row[5]) == 10 and len(row[6]) == 26


def test_greatest_and_least_are_null_when_an_argument_is(conn: Any) -> None:
    # Exasol: "If one of the arguments is NULL, the function returns NULL" (DuckDB's skip NULLs)
    conn.execute("CREATE TABLE g (a DECIMAL(3,0), b DECIMAL(3,0))")
    conn.execute("INSERT INTO g VALUES (1, NULL), (1, 5)")
    rows = conn.execute("SELECT GREATEST(a, b), LEAST(a, b), GREATEST(1, NULL, 3) FROM g ORDER BY b").fetchall()
    assert rows == [(5, 1, None), (None, None, None)]


def test_like_escapes_with_a_backslash_unless_told_otherwise(conn: Any) -> None:
    # Exasol's DEFAULT_LIKE_ESCAPE_CHARACTER is '\\' (EXA_PARAMETERS): 'AB\\_%' is AB, an underscore, anything
    conn.execute("CREATE TABLE codes (cd VARCHAR(10))")
    conn.execute("INSERT INTO codes VALUES ('AB_1'), ('ABx1'), ('50%'), ('50\\a'), ('a!b')")

    def matching(condition: str) -> list[str]:
        return [row[0] for row in conn.execute(f"SELECT cd FROM codes WHERE {condition} ORDER BY cd").fetchall()]

    assert matching("cd LIKE 'AB\\_%'") == ["AB_1"]
    assert matching("cd LIKE '50\\%'") == ["50%"]
    assert matching("cd NOT LIKE 'AB\\_%' AND cd LIKE 'AB%'") == ["ABx1"]
    assert matching("cd LIKE 'a!!b' ESCAPE '!'") == ["a!b"]
    # the operands keep their own Exasol meanings: `|| NULL` appends nothing, SYSDATE is today's date
    assert matching("cd LIKE 'AB' || NULL || '\\_1'") == ["AB_1"]
    assert matching("TO_CHAR(SYSDATE) LIKE '2%' AND cd NOT LIKE 'a!' || '%'") == ["50%", "50\\a", "AB_1", "ABx1"]
    assert matching("cd LIKE '50\\%' ESCAPE '#'") == ["50\\a"]  # an ESCAPE given: the backslash is a character


def test_seconds_minutes_and_hours_between_are_fractional_days_between_whole(conn: Any) -> None:
    """As Exasol's own examples: the difference in the unit, fractions kept (DuckDB's date_diff counted the unit's
    boundaries crossed: 1 minute between 12:00:02 and 12:01:00)."""
    row = conn.execute(
        "SELECT SECONDS_BETWEEN(TIMESTAMP '2000-01-01 12:01:02.345', TIMESTAMP '2000-01-01 12:00:00'), "
        "MINUTES_BETWEEN(TIMESTAMP '2000-01-01 12:01:00', TIMESTAMP '2000-01-01 12:00:02'), "
        "HOURS_BETWEEN(TIMESTAMP '2000-01-01 12:00:00', TIMESTAMP '2000-01-01 11:01:05.1'), "
        "SECONDS_BETWEEN(TIMESTAMP '2000-01-01 00:00:00', TIMESTAMP '2000-01-01 00:00:01'), "
        "SECONDS_BETWEEN(DATE '2000-01-02', DATE '2000-01-01'), SECONDS_BETWEEN(NULL, DATE '2000-01-01'), "
        "DAYS_BETWEEN(TIMESTAMP '2000-01-02 00:00:01', TIMESTAMP '2000-01-01 23:59:59') FROM DUAL"
    ).fetchone()
    assert row[:3] == pytest.approx((62.345, 0.9666666666666667, 0.9819166666666667))
    assert row[3:6] == (-1.0, 86400.0, None)
    assert row[6] == 1


def test_months_between_is_fractional_as_exasol_documents_it(conn: Any) -> None:
    """Exasol's own examples (0.548387096774194 and 7); equal days and two last days of a month give whole months;
    a timestamp's time is ignored. DuckDB's date_diff counted month boundaries: 1 for the first example."""
    row = conn.execute(
        "SELECT MONTHS_BETWEEN(DATE '2000-01-01', DATE '1999-12-15'), "
        "MONTHS_BETWEEN(TIMESTAMP '2000-01-01 12:00:00', TIMESTAMP '1999-06-01 00:00:00'), "
        "MONTHS_BETWEEN(DATE '2000-02-29', DATE '2000-01-31'), MONTHS_BETWEEN(DATE '2000-01-31', DATE '2000-03-02'), "
        "MONTHS_BETWEEN(TIMESTAMP '2000-01-02 00:00:00', TIMESTAMP '2000-01-01 23:59:59'), "
        "MONTHS_BETWEEN(NULL, DATE '2000-01-01') FROM DUAL"
    ).fetchone()
    assert row[:5] == pytest.approx((0.548387096774194, 7.0, 1.0, -2 + 29 / 31, 1 / 31))
    assert row[5] is None


def test_years_between_gives_whole_years_and_refuses_a_fraction_it_cannot_know(conn: Any) -> None:
    """Whole years when month and day are equal (Exasol's example: 1); otherwise a clear refusal naming the
    documented alternative, never DuckDB's count of year boundaries (1 between 2000-12-31 and 2001-01-01)."""
    row = conn.execute(
        "SELECT YEARS_BETWEEN(TIMESTAMP '2001-01-01 12:00:00', TIMESTAMP '2000-01-01 00:00:00'), "
        "YEARS_BETWEEN(DATE '1990-05-17', DATE '2024-05-17'), YEARS_BETWEEN(NULL, DATE '2000-01-01') FROM DUAL"
    ).fetchone()
    assert row == (1.0, -34.0, None)
    with pytest.raises(pyexasol.ExaQueryError) as refused:
        conn.execute("SELECT YEARS_BETWEEN(DATE '2001-01-01', DATE '2000-12-31') FROM DUAL")
    assert refused.value.code == "0A000"
    assert "YEARS_BETWEEN" in refused.value.message and "MONTHS_BETWEEN(a, b) / 12" in refused.value.message


def test_a_timestamp_made_text_has_six_fraction_digits_as_exasol_writes_it(conn: Any) -> None:
    """Exasol's default NLS_TIMESTAMP_FORMAT is YYYY-MM-DD HH24:MI:SS.FF6; DuckDB's cast wrote '... 03:04:05' for a
    whole second and '... 03:04:05.12' for 120 ms. Dates stay YYYY-MM-DD; result columns keep their names."""
    conn.execute("CREATE TABLE stamps (ts TIMESTAMP, note VARCHAR(40))")
    conn.execute(
        "INSERT INTO stamps VALUES (TIMESTAMP '2026-01-02 03:04:05', 'at '), "
        "(TIMESTAMP '2026-01-02 03:04:05.12', 'at ')"
    )
    statement = conn.execute(
        "SELECT TO_CHAR(ts), CAST(ts AS VARCHAR(30)), note || ts, CAST(ts AS CHAR(27)), "
        "'day ' || DATE '2026-01-02', CAST(DATE '2026-01-02' AS VARCHAR(10)), 1 || 'x' FROM stamps ORDER BY ts"
    )
    assert list(statement.columns()) == [
        "TO_CHAR(TS)",
        "CAST(TS AS VARCHAR(30))",
        "NOTE || TS",
        "CAST(TS AS CHAR(27))",
        "'day ' || CAST('2026-01-02' AS DATE)",
        "CAST(CAST('2026-01-02' AS DATE) AS VARCHAR(10))",
        "1 || 'x'",
    ]
    rows = statement.fetchall()
    whole, fraction = "2026-01-02 03:04:05.000000", "2026-01-02 03:04:05.120000"
    assert rows[0] == (whole, whole, "at " + whole, whole + " ", "day 2026-01-02", "2026-01-02", "1x")
    assert rows[1][:3] == (fraction, fraction, "at " + fraction)
    named = conn.execute("SELECT x FROM (SELECT 'a' || ts AS x FROM stamps) ORDER BY x").fetchall()
    assert named == [("a" + whole,), ("a" + fraction,)]
    # not only in the first SELECT: an INSERT's query and a later branch of a UNION too
    conn.execute("CREATE TABLE stamp_texts (s VARCHAR(40))")
    conn.execute("INSERT INTO stamp_texts SELECT TO_CHAR(ts) FROM stamps")
    union = "SELECT s FROM stamp_texts UNION ALL SELECT CAST(ts AS VARCHAR(30)) FROM stamps ORDER BY 1"
    assert conn.execute(union).fetchall() == [(whole,), (whole,), (fraction,), (fraction,)]


def test_set_to_default_in_update_and_merge(conn: Any) -> None:
    """`SET col = DEFAULT` is the column's default in Exasol; devdb took DEFAULT for a column and refused it."""
    conn.execute("CREATE TABLE defaults (a DECIMAL(9,0), b DECIMAL(9,0) DEFAULT 3)")
    conn.execute("INSERT INTO defaults VALUES (1, 7), (2, 8)")
    assert conn.execute("UPDATE defaults SET b = DEFAULT WHERE a = 1").rowcount() == 1
    conn.execute("CREATE TABLE picked (a DECIMAL(9,0))")
    conn.execute("INSERT INTO picked VALUES (2)")
    conn.execute("MERGE INTO defaults d USING picked p ON d.a = p.a WHEN MATCHED THEN UPDATE SET b = DEFAULT")
    assert conn.execute("SELECT a, b FROM defaults ORDER BY a").fetchall() == [(1, 3), (2, 3)]


def test_ddl_dml_and_merge(conn: Any) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS jobs (id DECIMAL(9,0), name VARCHAR(40) UTF8, active BOOLEAN)")
    conn.execute("CREATE TABLE IF NOT EXISTS jobs (id DECIMAL(9,0))")  # kept as it was
    assert conn.execute("INSERT INTO jobs VALUES (1, 'a', TRUE), (2, 'b', FALSE)").rowcount() == 2
    assert conn.execute("UPDATE jobs SET jobs.active = TRUE WHERE id = 2").rowcount() == 1
    conn.execute("CREATE TABLE incoming (id DECIMAL(9,0), name VARCHAR(40))")
    conn.execute("INSERT INTO incoming VALUES (2, 'b2'), (3, 'c')")
    merged = conn.execute(
        "MERGE INTO jobs j USING incoming i ON j.id = i.id "
        "WHEN MATCHED THEN UPDATE SET name = i.name WHEN NOT MATCHED THEN INSERT VALUES (i.id, i.name, FALSE)"
    )
    assert merged.rowcount() == 2
    assert conn.execute("SELECT id, name, active FROM jobs ORDER BY id").fetchall() == [
        (1, "a", True),
        (2, "b2", True),
        (3, "c", False),
    ]
    assert conn.execute("DELETE FROM jobs WHERE id = 3").rowcount() == 1


def test_drop_schema_cascade(devdb: Any) -> None:
    with devdb.connect() as connection:
        connection.execute("CREATE SCHEMA gone")
        connection.execute("CREATE TABLE gone.t (v DECIMAL(9,0))")
        connection.execute("DROP SCHEMA gone CASCADE")
        connection.execute("DROP SCHEMA IF EXISTS gone CASCADE")
        with pytest.raises(pyexasol.ExaQueryError):
            connection.execute("SELECT * FROM gone.t")


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT TO_CHAR(SYSDATE, 'YYYY') FROM DUAL", "format"),
        ("CREATE TABLE x (id DECIMAL(18,0) IDENTITY, v DECIMAL(9,0))", "IDENTITY"),
        ("CREATE SCRIPT s AS output('x')", "CREATE SCRIPT"),
        ("CREATE LUA SCRIPT s AS output('x')", "CREATE SCRIPT"),
        ("GRANT SELECT ON t TO someone", "GRANT"),
        ("ALTER SESSION SET NLS_DATE_FORMAT = 'DD.MM.YYYY'", "ALTER SESSION"),
        ("CREATE TABLE g (h HASHTYPE)", "syntax error"),
        ("CREATE TABLE g (t TIMESTAMP WITH LOCAL TIME ZONE)", "TIMESTAMP WITH LOCAL TIME ZONE"),
        ("EXECUTE SCRIPT nowhere.nothing()", "not found"),
        ("IMPORT INTO t FROM ORA AT x STATEMENT 'select 1'", "IMPORT FROM ORA"),
    ],
)
def test_unsupported_sql_gives_a_clear_error(conn: Any, sql: str, named: str) -> None:
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(sql)
    assert named.lower() in caught.value.message.lower()
    if "syntax" not in named and "not found" not in named:
        assert caught.value.code == "0A000"


@pytest.fixture
def load_script() -> Iterator[list[tuple[Any, ...]]]:
    calls: list[tuple[Any, ...]] = []

    def load(context: ScriptContext, table: str, rows: int) -> int:
        calls.append((table, rows))
        for value in range(rows):
            context.execute(f"INSERT INTO {table} VALUES ({value})")
        return rows

    register_script("app.load_numbers", load)
    yield calls
    unregister_script("app.load_numbers")


def test_execute_script_calls_the_registered_callable(conn: Any, load_script: list[tuple[Any, ...]]) -> None:
    conn.execute("CREATE TABLE n (v DECIMAL(9,0))")
    statement = conn.execute("EXECUTE SCRIPT APP.LOAD_NUMBERS('n', 3)")
    assert statement.rowcount() == 3
    assert load_script == [("n", 3)]
    assert conn.execute("SELECT SUM(v) FROM n").fetchval() == "3"  # DECIMAL(36,0) travels as a string
