"""The shadow catalog: the Exasol types of columns as declared, kept beside the data in the same DuckDB file.

DuckDB stores VARCHAR(20) UTF8 and CHAR(2) ASCII alike as VARCHAR; Exasol reports size, kind and character set.
The declarations live in table REDPSS_DEVDB.COLUMN_TYPES, written in the same transaction as the DDL they describe,
so a rolled-back CREATE TABLE leaves no entry behind and the catalog survives restarts with the data.
CREATE CONNECTION objects are kept in REDPSS_DEVDB.CONNECTIONS the same way.
"""

# DuckDB SQL is built here from identifiers devdb parsed and quoted itself; values travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redpss.devdb.translate import ColumnRef, ObjectName, Source, StarRef
from redpss.devdb.types import ExaType, from_duckdb

META_SCHEMA = "REDPSS_DEVDB"
_SETUP = (
    f'CREATE SCHEMA IF NOT EXISTS "{META_SCHEMA}"',
    f'CREATE TABLE IF NOT EXISTS "{META_SCHEMA}"."COLUMN_TYPES" ("SCHEMA_NAME" VARCHAR, "OBJECT_NAME" VARCHAR, '
    '"POSITION" INTEGER, "COLUMN_NAME" VARCHAR, "EXA_TYPE" VARCHAR)',
    f'CREATE TABLE IF NOT EXISTS "{META_SCHEMA}"."CONNECTIONS" ("NAME" VARCHAR PRIMARY KEY, "ADDRESS" VARCHAR, '
    '"USER_NAME" VARCHAR, "PASSWORD" VARCHAR)',
)
_TYPES = f'"{META_SCHEMA}"."COLUMN_TYPES"'
_CONNECTIONS = f'"{META_SCHEMA}"."CONNECTIONS"'


@dataclass(frozen=True)
class ConnectionObject:
    name: str
    address: str
    user: str | None
    password: str | None


def setup(cursor: Any) -> None:
    for statement in _SETUP:
        cursor.execute(statement)


def record(cursor: Any, obj: ObjectName, columns: dict[str, ExaType]) -> None:
    forget(cursor, obj)
    add_columns(cursor, obj, columns)


def add_columns(cursor: Any, obj: ObjectName, columns: dict[str, ExaType]) -> None:
    start = cursor.execute(
        f"SELECT COALESCE(MAX(POSITION), 0) FROM {_TYPES} WHERE SCHEMA_NAME = ? AND OBJECT_NAME = ?",
        [obj.schema, obj.name],
    ).fetchone()[0]
    rows = [[obj.schema, obj.name, start + i + 1, name, t.text()] for i, (name, t) in enumerate(columns.items())]
    if rows:
        cursor.executemany(f"INSERT INTO {_TYPES} VALUES (?, ?, ?, ?, ?)", rows)


def forget(cursor: Any, obj: ObjectName) -> None:
    cursor.execute(f"DELETE FROM {_TYPES} WHERE SCHEMA_NAME = ? AND OBJECT_NAME = ?", [obj.schema, obj.name])


def forget_schema(cursor: Any, schema: str) -> None:
    cursor.execute(f"DELETE FROM {_TYPES} WHERE SCHEMA_NAME = ?", [schema])


def lookup(cursor: Any, obj: ObjectName) -> dict[str, ExaType]:
    """Declared types of a table or view, in column order; empty when the catalog does not know the object."""
    rows = cursor.execute(
        f"SELECT COLUMN_NAME, EXA_TYPE FROM {_TYPES} WHERE SCHEMA_NAME = ? AND OBJECT_NAME = ? ORDER BY POSITION",
        [obj.schema, obj.name],
    ).fetchall()
    return {name: ExaType.from_text(text) for name, text in rows}


def result_types(cursor: Any, described: list[tuple[str, str]], sources: list[Source]) -> list[ExaType]:
    """The Exasol type of each result column: DuckDB's type, refined for text columns by the declarations."""
    cache: dict[ObjectName, dict[str, ExaType]] = {}

    def declared(obj: ObjectName) -> dict[str, ExaType]:
        if obj not in cache:
            cache[obj] = lookup(cursor, obj)
        return cache[obj]

    expanded: list[ExaType | ColumnRef | None] = []
    for source in sources:
        if isinstance(source, StarRef):
            for table in source.tables:
                columns = declared(table)
                if not columns:
                    expanded = []
                    break
                expanded.extend(ColumnRef((table,), name) for name in columns)
            else:
                continue
            break
        expanded.append(source)
    if len(expanded) != len(described):
        expanded = [None] * len(described)
    types: list[ExaType] = []
    for (name, duck_type), source in zip(described, expanded, strict=True):
        base = from_duckdb(duck_type, name)
        if base.kind == "VARCHAR":
            refined = _refine(source, declared)
            if refined is not None and refined.kind in ("VARCHAR", "CHAR"):
                base = refined
        types.append(base)
    return types


def _refine(source: ExaType | ColumnRef | None, declared: Any) -> ExaType | None:
    if isinstance(source, ExaType):
        return source
    if isinstance(source, ColumnRef):
        for table in source.tables:
            found: ExaType | None = declared(table).get(source.column)
            if found is not None:
                return found
    return None


def save_connection(cursor: Any, connection: ConnectionObject, *, replace: bool) -> None:
    exists = cursor.execute(f"SELECT COUNT(*) FROM {_CONNECTIONS} WHERE NAME = ?", [connection.name]).fetchone()[0]
    if exists and not replace:
        from redpss.devdb.errors import DevDbError  # noqa: PLC0415 - only on this error path

        raise DevDbError(f"connection {connection.name} already exists (use CREATE OR REPLACE CONNECTION)")
    cursor.execute(f"DELETE FROM {_CONNECTIONS} WHERE NAME = ?", [connection.name])
    cursor.execute(
        f"INSERT INTO {_CONNECTIONS} VALUES (?, ?, ?, ?)",
        [connection.name, connection.address, connection.user, connection.password],
    )


def drop_connection(cursor: Any, name: str) -> bool:
    found = cursor.execute(f"SELECT COUNT(*) FROM {_CONNECTIONS} WHERE NAME = ?", [name]).fetchone()[0]
    cursor.execute(f"DELETE FROM {_CONNECTIONS} WHERE NAME = ?", [name])
    return bool(found)


def find_connection(cursor: Any, name: str) -> ConnectionObject | None:
    row = cursor.execute(
        f"SELECT NAME, ADDRESS, USER_NAME, PASSWORD FROM {_CONNECTIONS} WHERE NAME = ?", [name]
    ).fetchone()
    return ConnectionObject(*row) if row else None
