"""What Exasol's own clients use, driven through pyexasol and its DB-API driver against devdb.

Prepared statements (insert_multi, create_prepared_statement), the metadata commands behind `meta`, the system
tables (EXA_PARAMETERS before every DB-API statement, EXA_ALL_*), fetch as tuples and dicts, export and import to
files, callbacks and Parquet, over TLS pinned by fingerprint.
"""

from __future__ import annotations

import decimal
import gc
import io
from pathlib import Path
from typing import Any

import pandas  # type: ignore[import-untyped]
import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb
from tests.support.wait import wait_for


@pytest.fixture
def people(conn: Any) -> Any:
    conn.execute(
        "CREATE TABLE people (id DECIMAL(9,0), name VARCHAR(40), score DECIMAL(10,2), born DATE, "
        "seen TIMESTAMP, ok BOOLEAN, ratio DOUBLE)"
    )
    return conn


def test_insert_multi_uses_a_prepared_statement(people: Any) -> None:
    rows = [
        (1, "Ann", "1.50", "2000-01-02", "2024-01-01 10:00:00.123000", True, 0.25),
        (2, "Bob", None, None, None, False, None),
        (3, "", "-3", "1999-12-31", "2024-02-29 23:59:59", None, 1.0),
    ]
    people.ext.insert_multi("people", rows)
    assert people.execute("SELECT * FROM people ORDER BY id").fetchall() == [
        (1, "Ann", "1.5", "2000-01-02", "2024-01-01 10:00:00.123000", True, 0.25),
        (2, "Bob", None, None, None, False, None),
        (3, None, "-3", "1999-12-31", "2024-02-29 23:59:59.000000", None, 1.0),
    ]


def test_insert_multi_with_columns_and_many_rows_is_one_transaction(people: Any) -> None:
    people.ext.insert_multi("people", [(i, f"n{i}") for i in range(2500)], columns=["id", "name"])
    assert people.execute("SELECT COUNT(*), MAX(name) FROM people").fetchone() == (2500, "n999")
    with pytest.raises(pyexasol.ExaRequestError, match="not a number"):
        people.ext.insert_multi("people", [(1, "fine")] * 1500 + [("not a number", "bad")], columns=["id", "name"])
    assert people.execute("SELECT COUNT(*) FROM people").fetchval() == 2500  # nothing of the failed batch


def test_prepared_statement_reports_parameter_types_and_runs_queries(people: Any) -> None:
    people.ext.insert_multi("people", [(1, "Ann"), (2, "Bob")], columns=["id", "name"])
    insert = people.cls_statement(people, "INSERT INTO people (id, score) VALUES (?, ?)", prepare=True)
    assert insert.parameter_data["columns"] == [
        {"name": "", "dataType": {"type": "DECIMAL", "precision": 9, "scale": 0}},
        {"name": "", "dataType": {"type": "DECIMAL", "precision": 10, "scale": 2}},
    ]
    insert.close()
    query = people.cls_statement(people, "SELECT name FROM people WHERE id = ?", prepare=True)
    assert query.columns() == {"NAME": {"type": "VARCHAR", "size": 40, "characterSet": "UTF8"}}
    query.execute_prepared([(2,)])
    assert query.fetchall() == [("Bob",)]
    query.close()
    assert people.meta.sql_columns("SELECT id, score FROM people") == {
        "ID": {"type": "DECIMAL", "precision": 9, "scale": 0},
        "SCORE": {"type": "DECIMAL", "precision": 10, "scale": 2},
    }


def test_meta_without_sql(people: Any, schema: str) -> None:
    people.execute("CREATE VIEW people_view AS SELECT id FROM people")
    meta = people.meta
    assert meta.schema_exists(schema)
    assert not meta.schema_exists("NO_SUCH_SCHEMA")
    assert meta.table_exists("people")
    assert not meta.table_exists("people_view")
    assert meta.view_exists("people_view")
    assert not meta.view_exists("people")
    keywords = meta.list_sql_keywords()
    assert "SELECT" in keywords
    assert "PEOPLE" not in keywords


def test_metadata_commands_answer_in_exasols_shape(people: Any, schema: str) -> None:
    columns = people.meta.execute_meta_nosql("getColumns", {"schema": schema, "table": "PEOPLE"}).fetchall()
    assert [(c["NAME"], c["TYPE"], c["ORDINAL_POSITION"]) for c in columns] == [
        ("ID", "DECIMAL(9,0)", 1),
        ("NAME", "VARCHAR(40) UTF8", 2),
        ("SCORE", "DECIMAL(10,2)", 3),
        ("BORN", "DATE", 4),
        ("SEEN", "TIMESTAMP(3)", 5),
        ("OK", "BOOLEAN", 6),
        ("RATIO", "DOUBLE", 7),
    ]
    tables = people.meta.execute_meta_nosql("getTables", {"schema": schema, "table": "%"}).fetchall()
    assert [(t["TABLE_SCHEM"], t["TABLE_NAME"], t["TABLE_TYPE"]) for t in tables] == [(schema, "PEOPLE", "TABLE")]
    system = people.meta.execute_meta_nosql("getTables", {"schema": "SYS", "table": "EXA_PARAM%"}).fetchall()
    assert [(t["TABLE_SCHEM"], t["TABLE_NAME"], t["TABLE_TYPE"]) for t in system] == [
        ("SYS", "EXA_PARAMETERS", "SYSTEM TABLE")
    ]


def test_system_tables_follow_the_live_catalog(people: Any, schema: str) -> None:
    listed = people.meta.list_tables(schema, "%")
    assert [(t["TABLE_SCHEMA"], t["TABLE_NAME"]) for t in listed] == [(schema, "PEOPLE")]
    columns = people.meta.list_columns(schema, "PEOPLE")
    assert [(c["COLUMN_NAME"], c["COLUMN_NUM_PREC"], c["COLUMN_NUM_SCALE"]) for c in columns][:3] == [
        ("ID", 9, 0),
        ("NAME", None, None),
        ("SCORE", 10, 2),
    ]
    assert [s["SCHEMA_NAME"] for s in people.meta.list_schemas(schema)] == [schema]
    objects = people.meta.list_objects("PEOPLE", root_name_pattern=schema)
    assert [(o["OBJECT_NAME"], o["OBJECT_TYPE"], o["ROOT_NAME"]) for o in objects] == [("PEOPLE", "TABLE", schema)]
    with pytest.raises(pyexasol.ExaQueryError) as caught:
        people.meta.list_indices()
    assert caught.value.code == "0A000"
    assert "EXA_ALL_INDICES" in caught.value.message
    people.execute("DROP TABLE people")
    assert people.meta.list_tables(schema, "%") == []
    formats = dict(
        people.execute(
            "SELECT parameter_name, session_value FROM SYS.EXA_PARAMETERS "
            "WHERE parameter_name IN ('NLS_DATE_FORMAT', 'NLS_TIMESTAMP_FORMAT')"
        ).fetchall()
    )
    assert formats == {"NLS_DATE_FORMAT": "YYYY-MM-DD", "NLS_TIMESTAMP_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF6"}
    users = people.execute("SELECT user_name FROM exa_dba_users").fetchall()
    assert users == [("SYS",)]


def test_sessions_tables_list_the_live_sessions(devdb: InProcessDevDb, conn: Any) -> None:
    mine = conn.session_id()
    with devdb.connect() as other:
        theirs = other.session_id()
        listed = conn.execute("SELECT session_id, user_name FROM exa_all_sessions ORDER BY session_id").fetchall()
        assert set(listed) >= {(str(mine), "SYS"), (str(theirs), "SYS")}  # DECIMAL(20,0): strings

    def listed_now() -> set[str]:
        return {session for (session,) in conn.execute("SELECT session_id FROM SYS.EXA_DBA_SESSIONS").fetchall()}

    wait_for(lambda: str(theirs) not in listed_now(), what="the closed session to leave EXA_DBA_SESSIONS")


def test_dbapi_driver_over_tls_with_fingerprint(devdb: InProcessDevDb, schema: str, conn: Any) -> None:
    from exasol.driver.websocket.dbapi2 import connect  # type: ignore[import-untyped]  # noqa: PLC0415

    connection = connect(
        dsn=devdb.tls_dsn,
        username=devdb.user,
        password=devdb.password,
        schema=schema,
        tls=True,
        certificate_validation=False,  # the DSN pins the certificate by fingerprint instead
    )
    try:
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE d (id DECIMAL(9,0), amount DECIMAL(10,2), name VARCHAR(10), ts TIMESTAMP)")
        cursor.executemany(
            "INSERT INTO d VALUES (?, ?, ?, ?)",
            [(1, decimal.Decimal("2.50"), "a", "2024-01-01 00:00:00"), (2, None, "b", None)],
        )
        cursor.execute("SELECT * FROM d ORDER BY id")
        rows = cursor.fetchall()
        assert [row[:3] for row in rows] == [(1, decimal.Decimal("2.5"), "a"), (2, None, "b")]
        assert str(rows[0][3]) == "2024-01-01 00:00:00"
        assert [column[0] for column in cursor.description] == ["ID", "AMOUNT", "NAME", "TS"]
        cursor.close()
    finally:
        connection.close()


def test_fetch_as_tuples_and_dicts_by_handle(devdb: InProcessDevDb, schema: str, conn: Any) -> None:
    conn.execute("CREATE TABLE n (id DECIMAL(9,0), v DECIMAL(9,3))")
    conn.execute("INSERT INTO n SELECT i, i / 8 FROM range(3000) AS r(i)")
    rows = conn.execute("SELECT id, v FROM n ORDER BY id").fetchall()
    assert len(rows) == 3000 and rows[9] == (9, "1.125") and rows[8] == (8, "1")
    with devdb.connect(schema=schema, fetch_dict=True, encryption=True, compression=True) as dicts:
        assert dicts.execute("SELECT id, v FROM n WHERE id = 4").fetchall() == [{"ID": 4, "V": "0.5"}]


def test_fetch_with_a_null_handle_is_a_clear_error(conn: Any) -> None:
    with pytest.raises(pyexasol.ExaRequestError) as caught:
        conn.req({"command": "fetch", "resultSetHandle": None, "startPosition": 0, "numBytes": 1000})
    assert "resultSetHandle must be a non-negative number" in caught.value.message
    assert conn.execute("SELECT 1 FROM DUAL").fetchval() == 1  # the session goes on


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_export_and_import_through_callbacks_files_and_parquet(conn: Any, tmp_path: Path) -> None:
    conn.execute("CREATE TABLE src (id DECIMAL(9,0), amount DECIMAL(12,2), name VARCHAR(20), ts TIMESTAMP)")
    conn.execute(
        "INSERT INTO src VALUES (1, 88.90, 'a b', TIMESTAMP '2024-01-01 12:00:00.5'), (2, NULL, NULL, NULL), "
        "(3, 10, 'x', TIMESTAMP '2024-02-29 00:00:00')"
    )
    listed = conn.export_to_list("SELECT * FROM src ORDER BY id")
    assert listed[0] == ["1", "88.9", "a b", "2024-01-01 12:00:00.500000"]
    assert listed[2][1] == "10"
    conn.execute("CREATE TABLE dst (id DECIMAL(9,0), amount DECIMAL(12,2), name VARCHAR(20), ts TIMESTAMP)")
    conn.import_from_iterable(listed, "dst")
    gc.collect()  # pyexasol leaves its text wrappers of the pipes to the garbage collector
    parquet = tmp_path / "src.parquet"
    conn.export_to_parquet(parquet, "src")
    conn.import_from_parquet(parquet, "dst")
    sink = io.BytesIO()
    conn.export_to_file(sink, "SELECT * FROM dst ORDER BY id, amount")
    lines = sink.getvalue().decode().splitlines()
    assert lines.count('1,88.9,"a b","2024-01-01 12:00:00.500000"') == 2
    assert lines.count('3,10,x,"2024-02-29 00:00:00.000000"') == 2
    assert conn.execute("SELECT COUNT(*) FROM dst").fetchval() == 6


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_pandas_round_trip(conn: Any) -> None:
    conn.execute("CREATE TABLE p (id DECIMAL(9,0), amount DECIMAL(12,2))")
    conn.import_from_pandas(pandas.DataFrame({"ID": [1, 2], "AMOUNT": [1.5, 2.25]}), "p")
    gc.collect()  # pyexasol leaves its text wrappers of the pipes to the garbage collector
    frame = conn.export_to_pandas("SELECT * FROM p ORDER BY id")
    gc.collect()
    assert frame["AMOUNT"].tolist() == [1.5, 2.25]


@pytest.mark.parametrize(
    ("request_fields", "words"),
    [
        ({"statementHandle": 999, "numColumns": 0, "numRows": 0, "data": []}, "handle 999 is not open"),
        ({"statementHandle": "x", "data": []}, "statementHandle must be a number"),
        ({"data": [[1, 2], [3]]}, "differ in length"),
        ({"data": [[1]]}, "has 2 parameters but data has 1 columns"),
    ],
)
def test_malformed_prepared_statement_requests_get_clear_errors(
    people: Any, request_fields: dict[str, Any], words: str, caplog: pytest.LogCaptureFixture
) -> None:
    statement = people.cls_statement(people, "INSERT INTO people (id, name) VALUES (?, ?)", prepare=True)
    try:
        with pytest.raises(pyexasol.ExaRequestError, match=words):
            people.req(
                {"command": "executePreparedStatement", "statementHandle": statement.statement_handle, **request_fields}
            )
    finally:
        statement.close()
    assert not [record for record in caplog.records if record.exc_info], "a traceback reached devdb's log"
