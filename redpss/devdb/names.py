"""Exasol's identifier rules on top of DuckDB's case-insensitive catalog.

Exasol folds unquoted names to upper case and keeps quoted names exactly: `camelCaseTable` means CAMELCASETABLE,
and "lower_t" and LOWER_T are two tables. DuckDB finds "camelCaseTable" for CAMELCASETABLE and treats the two
tables as one, so `SELECT * FROM camelCaseTable` would read the wrong table and `CREATE OR REPLACE TABLE LOWER_T`
would replace "lower_t" with its rows. Before a statement runs, every schema and table it names is therefore
looked up by its exact name; a miss is Exasol's "object ... not found", and a name that differs from an existing
one only in case is refused (devdb cannot hold both).
"""

from __future__ import annotations

from typing import Any

import duckdb

from redpss.devdb.errors import DevDbError, Unsupported
from redpss.devdb.translate import DEFAULT_SCHEMA, ObjectName, Translated

_OBJECTS = (
    "SELECT schema_name, table_name FROM duckdb_tables() WHERE lower(table_name) IN (SELECT unnest(?)) "
    "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE lower(view_name) IN (SELECT unnest(?))"
)
_SCHEMAS = "SELECT schema_name FROM duckdb_schemas() WHERE lower(schema_name) IN (SELECT unnest(?))"
_COLUMNS = (
    "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE lower(table_name) IN (SELECT unnest(?))"
)


class NoSchema(DevDbError):
    """An unqualified name while no schema is open: Exasol's error (devdb would otherwise use DuckDB's `main`)."""

    def __init__(self) -> None:
        super().__init__("no schema specified or opened or current schema has been dropped")


class ObjectNotFound(DevDbError):
    """Exasol's wording and code for a missing table, view or schema."""

    def __init__(self, name: str) -> None:
        super().__init__(f"object {name} not found")


def display(obj: ObjectName) -> str:
    return f"{obj.schema}.{obj.name}"


def existing_schemas(cursor: Any, names: list[str]) -> set[str]:
    rows = cursor.execute(_SCHEMAS, [[name.lower() for name in names]]).fetchall()
    return {str(row[0]) for row in rows}


def existing_objects(cursor: Any, names: list[str]) -> set[ObjectName]:
    lowered = [name.lower() for name in names]
    rows = cursor.execute(_OBJECTS, [lowered, lowered]).fetchall()
    return {ObjectName(str(schema), str(name)) for schema, name in rows}


def require_object(cursor: Any, obj: ObjectName) -> None:
    """Raise ObjectNotFound unless a table or view of exactly this schema and name exists."""
    if obj.schema == DEFAULT_SCHEMA:
        raise NoSchema
    if obj not in existing_objects(cursor, [obj.name]):
        raise ObjectNotFound(display(obj))


def verify(cursor: Any, statement: Translated) -> None:
    """Check the names of a translated statement against the catalog with Exasol's case rules (see above)."""
    schemas = {obj.schema for obj in statement.references}
    for schema in (statement.opens_schema, statement.dropped_schema):
        if schema is not None:
            schemas.add(schema)
    if statement.created is not None:
        schemas.add(statement.created.schema)
    objects = [obj for obj in (*statement.references, statement.created, statement.dropped) if obj is not None]
    if any(obj.schema == DEFAULT_SCHEMA for obj in objects):
        raise NoSchema
    if not schemas and not objects:
        return
    try:
        known_schemas = existing_schemas(cursor, sorted(schemas)) if schemas else set()
        known = existing_objects(cursor, sorted({obj.name for obj in objects})) if objects else set()
    except duckdb.TransactionException:
        return  # the transaction has failed: the session reports that when the statement runs
    for obj in statement.references:
        if obj not in known:
            raise ObjectNotFound(statement.written.get(obj, display(obj)))
    _verify_columns(cursor, statement)
    if statement.created is not None:
        if statement.created.schema not in known_schemas:
            raise ObjectNotFound(statement.created.schema)
        _refuse_case_twin(statement.created, known)
    if statement.dropped is not None and statement.dropped not in known:
        _refuse_case_twin(statement.dropped, known)  # DuckDB would drop the twin
    _verify_schemas(statement, known_schemas)


def _verify_columns(cursor: Any, statement: Translated) -> None:
    """A column name that matches a column of the named tables only when case is ignored is not that column."""
    unresolved = statement.used_columns - statement.defined_names
    if not unresolved or not statement.references:
        return
    tables = set(statement.references)
    rows = cursor.execute(_COLUMNS, [sorted({obj.name.lower() for obj in tables})]).fetchall()
    columns = {str(column) for schema, table, column in rows if ObjectName(str(schema), str(table)) in tables}
    by_upper = {column.upper() for column in columns}
    for name in sorted(unresolved):
        if name not in columns and name.upper() in by_upper:
            raise ObjectNotFound(name)


def _verify_schemas(statement: Translated, known_schemas: set[str]) -> None:
    for name in (statement.opens_schema, statement.dropped_schema):
        if name is None or name in known_schemas:
            continue
        twins = sorted(schema for schema in known_schemas if schema.upper() == name.upper())
        if twins:
            raise Unsupported(
                f"schemas whose names differ only in case ({name} beside {twins[0]})",
                "DuckDB's catalog is case-insensitive, so it would take one for the other",
            )
        if name == statement.dropped_schema and not statement.drop_if_exists:
            raise ObjectNotFound(name)
    if statement.opens_schema in known_schemas:
        statement.opens_schema = None  # CREATE SCHEMA IF NOT EXISTS of an existing schema opens nothing


def _refuse_case_twin(created: ObjectName, known: set[ObjectName]) -> None:
    for obj in known:
        if obj.schema == created.schema and obj.name.upper() == created.name.upper() and obj.name != created.name:
            raise Unsupported(
                f"objects whose names differ only in case ({display(created)} beside {display(obj)})",
                "DuckDB's catalog is case-insensitive, so the new object would replace or clash with the other",
            )
