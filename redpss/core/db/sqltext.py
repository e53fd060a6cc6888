"""SQL text that RED-PSS builds itself: literals, multi-row INSERTs, keyed DELETEs and timestamps, in one place.

Only for values RED-PSS produced (ids, statuses, times, its own messages): identifiers come from validated
definitions, and text is quoted by doubling single quotes, Exasol's only escape in string literals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any


def timestamp(epoch: float | None) -> str | None:
    """Exasol TIMESTAMP text in the server's local time, as the database's CURRENT_TIMESTAMP shows it."""
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an Exasol TIMESTAMP text in local time."""
    return dt.datetime.fromisoformat(text).timestamp()


def sql_literal(value: Any) -> str:
    if value is None or value == "":
        return "NULL"  # Exasol treats the empty string as NULL anyway
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def quoted_name(name: str) -> str:
    """`name` as a delimited identifier: kept exactly (case, reserved words), a double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def column_name(name: str) -> str:
    """A column name of ours in SQL text: quoted when it is upper case (as stored), so that a name that is a
    reserved word in Exasol (SOURCE, STATE, SCRIPT, INSTANCE) is a name there too, not a syntax error."""
    return quoted_name(name) if name.isupper() else name


def insert_statement(table: str, rows: list[dict[str, Any]]) -> str:
    """One INSERT of all `rows` into `table` (schema-qualified), columns the union of the rows' keys."""
    columns = sorted({column for row in rows for column in row})
    values = ",\n".join("(" + ", ".join(sql_literal(row.get(c)) for c in columns) + ")" for row in rows)
    return f"INSERT INTO {table} ({', '.join(map(column_name, columns))}) VALUES\n{values}"


def delete_matching(table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """One DELETE of the rows of `table` whose `columns` equal those of any of `rows` (NULL matches NULL)."""
    return f"DELETE FROM {table} WHERE {_matching(columns, rows)}"  # noqa: S608 - values quoted, names our own


def select_matching(table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """One SELECT of `columns` of the rows of `table` whose `columns` equal those of any of `rows`."""
    names = ", ".join(map(column_name, columns))
    return f"SELECT {names} FROM {table} WHERE {_matching(columns, rows)}"  # noqa: S608 - values quoted, names ours


def _matching(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """The condition that `columns` equal those of any of `rows` (NULL matches NULL)."""

    def equal(column: str, value: Any) -> str:
        literal = sql_literal(value)
        name = column_name(column)
        return f"{name} IS NULL" if literal == "NULL" else f"{name} = {literal}"

    keys = dict.fromkeys(" AND ".join(equal(c, row.get(c)) for c in columns) for row in rows)
    condition = " OR ".join(f"({key})" for key in keys)
    first = dict.fromkeys(sql_literal(row.get(columns[0])) for row in rows)
    if len(columns) > 1 and "NULL" not in first:
        # an IN list on the first key column first: it narrows the table to a few rows, so the chain of ORs is
        # checked on those only instead of on every row of the table
        condition = f"{column_name(columns[0])} IN ({', '.join(first)}) AND ({condition})"
    return condition
