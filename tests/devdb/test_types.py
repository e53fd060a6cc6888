"""Values and column metadata as Exasol returns them, from the declared types."""

from __future__ import annotations

from typing import Any

import pyexasol
import pytest


def test_every_type_value_and_metadata(conn: Any) -> None:
    conn.execute(
        "CREATE TABLE t (i INTEGER, d18 DECIMAL(18,0), amount DECIMAL(10,2), big DECIMAL(36,0), f DOUBLE, "
        "dt DATE, ts TIMESTAMP, ok BOOLEAN, name VARCHAR(20) UTF8, code CHAR(3) ASCII, note VARCHAR(100))"
    )
    conn.execute(
        "INSERT INTO t VALUES (7, 123456789012345678, 0.70, 123456789012345678901234567890, 1.25, "
        "DATE '2018-07-12', TIMESTAMP '2018-04-03 18:36:40.553', TRUE, 'Zürich', 'ab', 'x')"
    )
    conn.execute("INSERT INTO t (i) VALUES (8)")
    statement = conn.execute("SELECT * FROM t ORDER BY i")
    assert statement.columns() == {
        "I": {"type": "DECIMAL", "precision": 18, "scale": 0},
        "D18": {"type": "DECIMAL", "precision": 18, "scale": 0},
        "AMOUNT": {"type": "DECIMAL", "precision": 10, "scale": 2},
        "BIG": {"type": "DECIMAL", "precision": 36, "scale": 0},
        "F": {"type": "DOUBLE"},
        "DT": {"type": "DATE", "size": 4},
        "TS": {"type": "TIMESTAMP", "size": 16, "withLocalTimeZone": False},
        "OK": {"type": "BOOLEAN"},
        "NAME": {"type": "VARCHAR", "size": 20, "characterSet": "UTF8"},
        "CODE": {"type": "CHAR", "size": 3, "characterSet": "ASCII"},
        "NOTE": {"type": "VARCHAR", "size": 100, "characterSet": "UTF8"},
    }
    first, second = statement.fetchall()
    assert first == (
        7,
        123456789012345678,
        "0.7",
        "123456789012345678901234567890",
        1.25,
        "2018-07-12",
        "2018-04-03 18:36:40.553000",
        True,
        "Zürich",
        "ab ",
        "x",
    )
    assert second == (8, None, None, None, None, None, None, None, None, None, None)


def test_count_is_decimal_18_0(conn: Any) -> None:
    statement = conn.execute("SELECT COUNT(*) FROM DUAL")
    assert statement.columns() == {"COUNT(*)": {"type": "DECIMAL", "precision": 18, "scale": 0}}
    assert statement.fetchval() == 1


def test_empty_string_is_null(conn: Any) -> None:
    conn.execute("CREATE TABLE s (v VARCHAR(10))")
    conn.execute("INSERT INTO s VALUES (''), ('a')")
    assert conn.execute("SELECT COUNT(*) FROM s WHERE v IS NULL").fetchval() == 1
    assert conn.execute("SELECT COUNT(*) FROM s WHERE v = ''").fetchval() == 0
    assert conn.execute("SELECT 'a' || NULL || 'b' FROM DUAL").fetchval() == "ab"
    assert conn.execute("SELECT REPLACE('abc', 'b', '') FROM DUAL").fetchval() == "ac"


def test_an_empty_text_made_by_a_function_is_null_too(conn: Any) -> None:
    """Exasol has no empty string also where a function makes one: TRIM('  ') is NULL, so IS NULL, COALESCE and
    LENGTH see a NULL, and so does the row an INSERT ... SELECT stores."""
    made = (
        "TRIM('  ')",
        "LTRIM(' ')",
        "SUBSTR('abc', 5)",
        "REPLACE('x', 'x', '')",
        "REGEXP_REPLACE('aa', 'a', '')",
        "LEFT('abc', 0)",
        "RPAD('x', 0, 'y')",
        "CONCAT(TRIM(' '), TRIM(' '))",
        "TRIM(' ') || TRIM(' ')",
        "LOWER(SUBSTR('a', 2))",
        "TRANSLATE('a', 'a', '')",
        "REGEXP_SUBSTR('abc', '[0-9]+')",
    )
    for text in made:
        row = conn.execute(f"SELECT {text} IS NULL, COALESCE({text}, 'none'), LENGTH({text}) FROM DUAL").fetchone()
        assert row == (True, "none", None), text
    assert conn.execute("SELECT TRIM(' a ') || '' || SUBSTR('xyz', 2) FROM DUAL").fetchval() == "ayz"
    conn.execute("CREATE TABLE made (v VARCHAR(10))")
    conn.execute("INSERT INTO made SELECT TRIM('   ') FROM DUAL")
    assert conn.execute("SELECT COUNT(*) FROM made WHERE v IS NULL").fetchval() == 1
    named = conn.execute("SELECT TRIM(' a ') FROM DUAL")
    assert list(named.columns()) == ["TRIM(' a ')"] and named.fetchval() == "a"
    conn.execute("CREATE TABLE trimmed AS SELECT TRIM(v) FROM made")  # a column named by its expression
    assert list(conn.execute("SELECT * FROM trimmed").columns()) == ["TRIM(V)"]
    assert list(conn.execute("SELECT * FROM (SELECT LOWER(v) FROM made)").columns()) == ["LOWER(V)"]
    # where '' and NULL mean different things as an argument (REPLACE deletes the matches with either), an empty
    # text made there stays what the literal '' is there
    replaced = conn.execute("SELECT REPLACE('axb', 'x', TRIM('  ')), REPLACE('axb', TRIM('  '), 'y') FROM DUAL")
    assert replaced.fetchone() == ("ab", "axb")


def test_views_keep_declared_types(conn: Any) -> None:
    conn.execute("CREATE TABLE a (k VARCHAR(12), n DECIMAL(5,1))")
    conn.execute("CREATE TABLE b (k VARCHAR(12), n DECIMAL(5,1))")
    conn.execute("CREATE OR REPLACE VIEW v AS SELECT k, n FROM a UNION ALL SELECT k, n FROM b")
    conn.execute("INSERT INTO a VALUES ('x', 1.5)")
    conn.execute("INSERT INTO b VALUES ('y', 2)")
    statement = conn.execute("SELECT * FROM v ORDER BY k")
    assert statement.columns()["K"] == {"type": "VARCHAR", "size": 12, "characterSet": "UTF8"}
    assert statement.fetchall() == [("x", "1.5"), ("y", "2")]


def test_text_longer_than_its_column_is_refused_in_characters(conn: Any) -> None:
    """Exasol refuses a value longer than VARCHAR(n)/CHAR(n) in INSERT and UPDATE; the size counts characters."""
    # now: a column named like a function is checked, and assigned to, as the column (elsewhere a bare NOW is the
    # function in devdb)
    conn.execute('CREATE TABLE short_text (name VARCHAR(3) UTF8, "code x" CHAR(2) ASCII, n INTEGER, now VARCHAR(9))')
    conn.execute("INSERT INTO short_text VALUES ('äöü', 'ab', 1, 'yesterday')")  # three characters in six bytes fit
    refusals = {
        "INSERT INTO short_text VALUES ('abcd', 'a', 2, NULL)": "column NAME of table SHORT_TEXT is longer than its 3",
        "UPDATE short_text SET now = 'tomorrow!!'": "column NOW of table SHORT_TEXT is longer than its 9",
        "UPDATE short_text SET \"code x\" = 'xyz'": "column code x of table SHORT_TEXT is longer than its 2",
        "INSERT INTO short_text SELECT name || 'x', 'a', 3, NULL FROM short_text": "column NAME",
    }
    for statement, named in refusals.items():
        with pytest.raises(pyexasol.ExaQueryError) as refused:
            conn.execute(statement)
        assert refused.value.code == "22001"
        assert "data exception - string data, right truncation" in refused.value.message
        assert named in refused.value.message
    rows = conn.execute('SELECT name, "code x", n, "NOW" FROM short_text').fetchall()
    assert rows == [("äöü", "ab", 1, "yesterday")]


def test_char_values_are_blank_padded_to_their_size_in_expressions(conn: Any) -> None:
    """Exasol pads a value shorter than its CHAR(n) column with spaces (docs.exasol.com, Data Type Details): LENGTH
    is n and `||` keeps the blanks. devdb stored 'ab' unpadded and padded only the fetched value, so LENGTH was 2
    and `c || '|'` was 'ab|'. Every way a value enters the column pads it: INSERT (one row and many), UPDATE,
    MERGE, a DEFAULT, ALTER TABLE ADD COLUMN, CREATE TABLE AS, a prepared INSERT."""
    conn.execute("CREATE TABLE fixed (id DECIMAL(3,0), c CHAR(5), a CHAR(3) ASCII DEFAULT 'd', v VARCHAR(5))")
    conn.execute("INSERT INTO fixed VALUES (1, 'ab', 'x', 'ab')")
    conn.execute("INSERT INTO fixed (id, c, v) VALUES (2, 'abcde', 'z'), (3, NULL, NULL), (4, 'q', NULL)")
    rows = conn.execute("SELECT c, LENGTH(c), c || '|', a || '|', LENGTH(v), v || '|' FROM fixed ORDER BY id")
    assert rows.fetchall() == [
        ("ab   ", 5, "ab   |", "x  |", 2, "ab|"),
        ("abcde", 5, "abcde|", "d  |", 1, "z|"),
        (None, None, "|", "d  |", None, "|"),
        ("q    ", 5, "q    |", "d  |", None, "|"),
    ]
    conn.execute("UPDATE fixed SET c = 'u' WHERE id = 3")
    conn.execute(
        "MERGE INTO fixed f USING (SELECT 4 AS id FROM DUAL) s ON f.id = s.id WHEN MATCHED THEN UPDATE SET a = 'm'"
    )
    conn.execute("ALTER TABLE fixed ADD COLUMN added CHAR(4) DEFAULT 'n'")
    assert conn.execute("SELECT c || '|', a || '|', added || '|' FROM fixed WHERE id >= 3 ORDER BY id").fetchall() == [
        ("u    |", "d  |", "n   |"),
        ("q    |", "m  |", "n   |"),
    ]
    conn.execute("CREATE TABLE copied AS SELECT c, CAST('k' AS CHAR(4)) AS k FROM fixed WHERE id = 1")
    copied = conn.execute("SELECT c, LENGTH(c), k, k || '|' FROM copied")
    assert copied.columns()["K"] == {"type": "CHAR", "size": 4, "characterSet": "UTF8"}
    assert copied.fetchall() == [("ab   ", 5, "k   ", "k   |")]
    conn.ext.insert_multi("fixed", [(5, "p", "y", "w")], columns=["id", "c", "a", "v"])
    assert conn.execute("SELECT c || '|', LENGTH(a) FROM fixed WHERE id = 5").fetchone() == ("p    |", 3)
    # the stored value is the padded one: it equals the padded text (how Exasol compares a CHAR with a shorter
    # VARCHAR is not documented)
    assert conn.execute("SELECT id FROM fixed WHERE c = 'ab   '").fetchall() == [(1,)]


def test_a_cast_to_char_is_blank_padded_and_keeps_its_name(conn: Any) -> None:
    statement = conn.execute(
        "SELECT CAST('ab' AS CHAR(5)), LENGTH(CAST('ab' AS CHAR(5))), CAST('ab' AS CHAR(3)) || '|' FROM DUAL"
    )
    assert list(statement.columns()) == [
        "CAST('ab' AS CHAR(5))",
        "LENGTH(CAST('ab' AS CHAR(5)))",
        "CAST('ab' AS CHAR(3)) || '|'",
    ]
    assert statement.fetchone() == ("ab   ", 5, "ab |")
    derived = conn.execute("SELECT * FROM (SELECT CAST('ab' AS CHAR(5)) FROM DUAL)")
    assert list(derived.columns()) == ["CAST('ab' AS CHAR(5))"]
    assert derived.fetchall() == [("ab   ",)]
