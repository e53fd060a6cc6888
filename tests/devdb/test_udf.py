"""PYTHON3 SCALAR scripts in devdb, through the real pyexasol driver: stored, called per row, cleaned up, refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb

ECHO = """CREATE OR REPLACE PYTHON3 SCALAR SCRIPT {schema}.ECHO (word VARCHAR(100) UTF8, n DECIMAL(18,0))
RETURNS VARCHAR(2000) AS
# a comment with an apostrophe: it's Python, not SQL
import json
calls = []

def run(ctx):
    calls.append(ctx.word)
    return json.dumps([ctx.word, ctx[1], type(ctx.n).__name__, len(calls)])

def cleanup():
    with open({marker!r}, "a") as out:
        out.write(json.dumps(calls) + "\\n")
/
"""


def _echo(conn: Any, schema: str, tmp_path: Path) -> Path:
    marker = tmp_path / "cleanup.jsonl"
    conn.execute(ECHO.format(schema=schema, marker=str(marker)))
    return marker


def test_a_scalar_script_runs_per_row_and_cleans_up_once_per_statement(conn: Any, schema: str, tmp_path: Path) -> None:
    marker = _echo(conn, schema, tmp_path)
    conn.execute(f"CREATE TABLE {schema}.WORDS (W VARCHAR(10))")
    conn.execute(f"INSERT INTO {schema}.WORDS VALUES ('a'), ('b'), ('c')")

    single = conn.execute(f"SELECT {schema}.ECHO('x', 3)").fetchval()
    rows = conn.execute(f"SELECT W, {schema}.ECHO(W, 7) AS E FROM {schema}.WORDS ORDER BY W").fetchall()

    assert json.loads(single) == ["x", 3, "int", 1]
    assert sorted(json.loads(e)[0] for _, e in rows) == ["a", "b", "c"]
    assert sorted(json.loads(e)[3] for _, e in rows) == [1, 2, 3]  # one module for the statement's rows
    cleanups = [sorted(json.loads(line)) for line in marker.read_text().splitlines()]
    assert cleanups == [["x"], ["a", "b", "c"]]


def test_a_script_reads_connection_objects_and_meta(conn: Any, schema: str) -> None:
    conn.execute("CREATE OR REPLACE CONNECTION UDF_TEST_CONN TO 'db.example:7402' USER 'TST1' IDENTIFIED BY 's3cret'")
    conn.execute(
        f"CREATE PYTHON3 SCALAR SCRIPT {schema}.WHERE_TO (name VARCHAR(128)) RETURNS VARCHAR(1000) AS\n"
        "def run(ctx):\n"
        "    c = exa.get_connection(ctx.name)\n"
        "    col = exa.meta.input_columns[0]\n"
        "    return '|'.join([c.address, c.user, c.password, exa.meta.script_schema, exa.meta.script_name,\n"
        "                     exa.meta.input_type, col.name, col.type.__name__, str(col.length)])\n"
    )
    assert conn.execute(f"SELECT {schema}.WHERE_TO('UDF_TEST_CONN')").fetchval() == (
        f"db.example:7402|TST1|s3cret|{schema}|WHERE_TO|SCALAR|name|str|128"
    )
    typed = conn.execute(f"SELECT 1 AS N, {schema}.WHERE_TO('UDF_TEST_CONN') AS W").columns()
    assert typed["W"] == {"type": "VARCHAR", "size": 1000, "characterSet": "UTF8"}  # the RETURNS type
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(f"SELECT {schema}.WHERE_TO('NO_SUCH_CONN')")
    assert "connection NO_SUCH_CONN does not exist" in caught.value.message


def test_scripts_survive_a_restart_and_drop_script_removes_them(tmp_path: Path) -> None:
    with InProcessDevDb(tmp_path / "db") as devdb:
        with devdb.connect() as conn:
            conn.execute("CREATE SCHEMA KEEP")
            _echo(conn, "KEEP", tmp_path)
        devdb.restart()
        with devdb.connect() as conn:
            assert json.loads(conn.execute("SELECT KEEP.ECHO('after', 1)").fetchval())[0] == "after"
            conn.execute("DROP SCRIPT KEEP.ECHO")
            conn.execute("DROP SCRIPT IF EXISTS KEEP.ECHO")
            with pytest.raises(pyexasol.ExaQueryError) as caught:
                conn.execute("SELECT KEEP.ECHO('gone', 1)")
            assert "KEEP.ECHO not found" in caught.value.message


def test_a_replaced_script_runs_its_new_body_and_a_rolled_back_create_leaves_nothing(conn: Any, schema: str) -> None:
    create = "CREATE OR REPLACE PYTHON3 SCALAR SCRIPT {s}.V () RETURNS DECIMAL(9,0) AS\ndef run(ctx):\n    return {v}\n"
    conn.execute(create.format(s=schema, v=1))
    assert conn.execute(f"SELECT {schema}.V()").fetchval() == 1
    listed = conn.execute(
        "SELECT SCRIPT_NAME, SCRIPT_TYPE, SCRIPT_LANGUAGE, SCRIPT_INPUT_TYPE, SCRIPT_RESULT_TYPE, SCRIPT_TEXT "
        f"FROM EXA_ALL_SCRIPTS WHERE SCRIPT_SCHEMA = '{schema}'"
    ).fetchall()
    assert listed == [("V", "UDF", "PYTHON3", "SCALAR", "RETURNS", "def run(ctx):\n    return 1")]
    conn.execute(create.format(s=schema, v=2))
    assert conn.execute(f"SELECT {schema}.V()").fetchval() == 2
    conn.set_autocommit(False)
    conn.execute(create.format(s=schema, v=3).replace(".V ", ".W "))
    conn.rollback()
    conn.set_autocommit(True)
    with pytest.raises(pyexasol.ExaQueryError, match="not found"):
        conn.execute(f"SELECT {schema}.W()")


def test_drop_schema_cascade_drops_its_scripts(devdb: Any, schema: str) -> None:
    with devdb.connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(
            f"CREATE PYTHON3 SCALAR SCRIPT {schema}.ONE () RETURNS DECIMAL(1,0) AS\ndef run(ctx):\n    return 1\n"
        )
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        with pytest.raises(pyexasol.ExaQueryError, match="not found"):
            conn.execute(f"SELECT {schema}.ONE()")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("def run(ctx)\n    return 1\n", "syntax error in the PYTHON3 code at line 1"),
        ("x = 1\n", "defines no function run(ctx)"),
        (
            "def run(ctx):\n    return 1 / 0\n",
            "run() failed: ZeroDivisionError: division by zero (line 2 of the script)",
        ),
        ("raise RuntimeError('no config')\n", "loading the script failed: RuntimeError: no config (line 1"),
        ("import sys\ndef run(ctx):\n    sys.exit(3)\n", "run() failed: SystemExit: 3 (line 3 of the script)"),
        ("def run(ctx):\n    return 1\ndef cleanup():\n    raise OSError('flush lost')\n", "cleanup() failed: OSError"),
    ],
)
def test_a_broken_script_fails_with_its_name_and_the_reason(conn: Any, schema: str, body: str, named: str) -> None:
    def create_and_call() -> None:
        conn.execute(
            f"CREATE OR REPLACE PYTHON3 SCALAR SCRIPT {schema}.BROKEN (a VARCHAR(10)) RETURNS DECIMAL(1,0) AS\n{body}"
        )
        conn.execute(f"SELECT {schema}.BROKEN('a')")

    with pytest.raises(pyexasol.ExaQueryError) as caught:
        create_and_call()
    assert named in caught.value.message
    assert f"{schema}.BROKEN" in caught.value.message


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("CREATE PYTHON3 SET SCRIPT {s}.X (a VARCHAR(9)) EMITS (b VARCHAR(9)) AS\ndef run(ctx): pass\n", "SET scripts"),
        ("CREATE PYTHON3 SCALAR SCRIPT {s}.X (a VARCHAR(9)) EMITS (b VARCHAR(9)) AS\ndef run(ctx): pass\n", "EMITS"),
        ("CREATE JAVA SCALAR SCRIPT {s}.X (a VARCHAR(9)) RETURNS INT AS\nclass X {{}}\n", "CREATE JAVA SCALAR SCRIPT"),
        ("CREATE R SCALAR SCRIPT {s}.X (a VARCHAR(9)) RETURNS INT AS\nrun <- 1\n", "CREATE R SCALAR SCRIPT"),
        ("CREATE PYTHON3 SCALAR SCRIPT {s}.X (...) RETURNS INT AS\ndef run(ctx): pass\n", "dynamic parameter list"),
        ("CREATE LUA SCRIPT {s}.X AS\noutput('x')\n", "Lua scripting programs"),
    ],
)
def test_other_kinds_of_script_are_refused_by_name(conn: Any, schema: str, sql: str, named: str) -> None:
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        conn.execute(sql.format(s=schema))
    assert named in caught.value.message
    assert caught.value.code == "0A000"
