"""The metadata commands getSchemas, getTables, getColumns and getKeywords (WebSocket protocol v2).

pyexasol's `meta` (schema_exists, table_exists, view_exists, list_sql_keywords) sends these instead of SQL. Each
is answered by a query over the SYS system views (systables.py) run in the caller's session, so it sees the
session's own uncommitted DDL, as Exasol's does. Name arguments are LIKE patterns; null means all, "" means none.
System tables (SYS.EXA_*, listed in EXA_SYSCAT) have type SYSTEM TABLE.
"""

# The SQL is built from fixed text; request values enter only as quoted, escaped string literals (_like).
# ruff: noqa: S608

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redpss.devdb.errors import DATA_EXCEPTION, DevDbError

if TYPE_CHECKING:
    from redpss.devdb.session import Session

CATALOG = "EXA_DB"
COMMANDS = ("getSchemas", "getTables", "getColumns", "getKeywords")


def run(session: Session, command: str, request: dict[str, Any]) -> dict[str, Any]:
    """The responseData of a metadata command."""
    if command == "getSchemas":
        sql = (
            f"SELECT SCHEMA_NAME AS TABLE_SCHEM, '{CATALOG}' AS TABLE_CATALOG FROM SYS.EXA_SCHEMAS "
            f"WHERE {_like('SCHEMA_NAME', request, 'schema')} ORDER BY SCHEMA_NAME"
        )
    elif command == "getTables":
        sql = _tables(request)
    elif command == "getColumns":
        sql = (
            'SELECT COLUMN_SCHEMA AS "SCHEMA", COLUMN_TABLE AS "TABLE", COLUMN_NAME AS NAME, COLUMN_TYPE AS "TYPE", '
            "COLUMN_TYPE_ID AS TYPE_ID, COLUMN_MAXSIZE AS MAXSIZE, COLUMN_NUM_PREC AS NUM_PREC, "
            "COLUMN_NUM_SCALE AS NUM_SCALE, COLUMN_ORDINAL_POSITION AS ORDINAL_POSITION, COLUMN_IS_VIRTUAL AS "
            "IS_VIRTUAL, COLUMN_IS_NULLABLE AS IS_NULLABLE, COLUMN_IS_DISTRIBUTION_KEY AS IS_DISTRIBUTION_KEY, "
            'COLUMN_PARTITION_KEY_ORDINAL_POSITION AS PARTITION_KEY_ORDINAL_POSITION, COLUMN_DEFAULT AS "DEFAULT", '
            'COLUMN_IDENTITY AS "IDENTITY", COLUMN_OWNER AS OWNER, COLUMN_COMMENT AS "COMMENT" '
            f"FROM SYS.EXA_ALL_COLUMNS WHERE {_like('COLUMN_SCHEMA', request, 'schema')} "
            f"AND {_like('COLUMN_TABLE', request, 'table')} AND {_like('COLUMN_NAME', request, 'column')} "
            "ORDER BY COLUMN_SCHEMA, COLUMN_TABLE, COLUMN_ORDINAL_POSITION"
        )
    else:
        sql = "SELECT KEYWORD, RESERVED FROM SYS.EXA_SQL_KEYWORDS ORDER BY KEYWORD"
    return {"numResults": 1, "results": [session.execute(sql)]}


def _tables(request: dict[str, Any]) -> str:
    types = request.get("tableTypes")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise DevDbError("getTables: tableTypes must be a list of strings or null", DATA_EXCEPTION)
    wanted = {t.upper() for t in types} if types is not None else {"TABLE", "VIEW", "SYSTEM TABLE"}
    parts = []
    for kind, source, schema, name, comment in (
        ("TABLE", "EXA_ALL_TABLES", "TABLE_SCHEMA", "TABLE_NAME", "TABLE_COMMENT"),
        ("VIEW", "EXA_ALL_VIEWS", "VIEW_SCHEMA", "VIEW_NAME", "VIEW_COMMENT"),
        ("SYSTEM TABLE", "EXA_SYSCAT", "SCHEMA_NAME", "OBJECT_NAME", "OBJECT_COMMENT"),
    ):
        if kind in wanted:
            parts.append(
                f"SELECT '{CATALOG}' AS TABLE_CAT, {schema} AS TABLE_SCHEM, {name} AS TABLE_NAME, "
                f"'{kind}' AS TABLE_TYPE, {comment} AS REMARKS, CAST(NULL AS VARCHAR(128)) AS TYPE_CAT, "
                "CAST(NULL AS VARCHAR(128)) AS TYPE_SCHEM, CAST(NULL AS VARCHAR(128)) AS TYPE_NAME, "
                "CAST(NULL AS VARCHAR(128)) AS SELF_REFERENCING_COL_NAME, CAST(NULL AS VARCHAR(128)) AS REF_GENERATION "
                f"FROM SYS.{source} WHERE {_like(schema, request, 'schema')} AND {_like(name, request, 'table')}"
            )
    if not parts:  # no supported type asked for: the same columns, no rows
        return _tables({**request, "tableTypes": ["TABLE"], "table": ""})
    return " UNION ALL ".join(parts) + " ORDER BY TABLE_TYPE, TABLE_CAT, TABLE_SCHEM, TABLE_NAME"


def _like(column: str, request: dict[str, Any], key: str) -> str:
    pattern = request.get(key)
    if pattern is None:
        return "TRUE"
    if not isinstance(pattern, str):
        raise DevDbError(f"{key} must be a string (a LIKE pattern) or null", DATA_EXCEPTION)
    return f"{column} LIKE '" + pattern.replace("'", "''") + "'"
