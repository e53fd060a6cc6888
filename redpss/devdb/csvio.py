"""CSV in and out, the way Exasol's IMPORT and EXPORT read and write it, computed by DuckDB.

Export: one text line per row built in SQL (LF rows, BOOLEAN as 1/0, DECIMAL without trailing fractional zeros
(88.9, DECIMAL(p,0) as an integer), TIMESTAMP with 6 decimals, NULL empty, a
field quoted when it holds the separator, the delimiter, a line break or white space (DELIMIT AUTO)).
Import: DuckDB's CSV reader with every field as text, then CAST to the target column types, so a bad value fails
the whole IMPORT with DuckDB's message naming it; empty fields are NULL as in Exasol.
"""

# DuckDB SQL is built here from identifiers devdb parsed and quoted itself; values travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redpss.devdb.commands import CsvOptions
from redpss.devdb.errors import DevDbError
from redpss.devdb.translate import ObjectName
from redpss.devdb.types import ExaType

ROW_SEPARATORS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r"}
# DuckDB's read_csv splits nothing at new_line = '\r\n' (a CRLF file becomes one row); its own line-ending
# detection reads CRLF correctly, quoted line breaks included, so CRLF leaves new_line unset.
_NEW_LINE_OPTIONS = {"LF": "new_line = '\\n', ", "CRLF": "", "CR": "new_line = '\\r', "}
BATCH_ROWS = 65536


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _field(exa_type: ExaType, column: str) -> str:
    if exa_type.kind == "BOOLEAN":
        return f"CASE WHEN {column} THEN '1' WHEN NOT {column} THEN '0' END"
    if exa_type.kind == "DECIMAL":
        return exa_type.decimal_text(column)
    if exa_type.kind == "DOUBLE":
        return f"CAST({column} AS VARCHAR)"
    return exa_type.wire_expression(column)


def _quoted(value: str, options: CsvOptions) -> str:
    delimiter = options.column_delimiter
    doubled = f"replace({value}, {sql_string(delimiter)}, {sql_string(delimiter * 2)})"
    wrapped = f"{sql_string(delimiter)} || {doubled} || {sql_string(delimiter)}"
    if options.delimit == "NEVER":
        return value
    if options.delimit == "ALWAYS":
        return wrapped
    specials = {options.column_separator, delimiter, "\r", "\n", " ", "\t"}
    pattern = "[" + "".join(f"\\x{{{ord(ch):X}}}" for ch in sorted(specials)) + "]"
    return f"CASE WHEN regexp_matches({value}, {sql_string(pattern)}) THEN {wrapped} ELSE {value} END"


def _column(index: int) -> str:
    return f'"q"."c{index}"'


def line_expression(types: list[ExaType], options: CsvOptions) -> str:
    """DuckDB SQL for one CSV line of the row of subquery "q" with columns c0..cn."""
    null = sql_string(options.null)
    parts = [f"COALESCE({_quoted(_field(t, _column(i)), options)}, {null})" for i, t in enumerate(types)]
    return f" || {sql_string(options.column_separator)} || ".join(parts) if parts else "''"


def header_line(names: list[str], options: CsvOptions) -> str:
    delimiter = options.column_delimiter
    fields = []
    for name in names:
        needs = options.delimit == "ALWAYS" or (
            options.delimit == "AUTO"
            and any(ch in name for ch in (options.column_separator, delimiter, "\r", "\n", " ", "\t"))
        )
        fields.append(f"{delimiter}{name.replace(delimiter, delimiter * 2)}{delimiter}" if needs else name)
    return options.column_separator.join(fields)


class Exported:
    """The CSV bytes of a query, produced in batches; `rows` counts what was produced so far."""

    def __init__(self, cursor: Any, sql: str, names: list[str], types: list[ExaType], options: CsvOptions) -> None:
        self.rows = 0
        self._cursor = cursor
        self._sql = sql
        self._names = names
        self._types = types
        self._options = options

    def chunks(self) -> Iterator[bytes]:
        separator = ROW_SEPARATORS[self._options.row_separator]
        if self._options.with_column_names:
            yield (header_line(self._names, self._options) + separator).encode()
        aliases = ", ".join(f'"c{i}"' for i in range(len(self._types)))
        line = line_expression(self._types, self._options)
        reader = self._cursor.sql(f'SELECT {line} FROM ({self._sql}) AS "q"({aliases})').to_arrow_reader(BATCH_ROWS)
        for batch in reader:
            lines = batch.column(0).to_pylist()
            if lines:
                self.rows += len(lines)
                yield (separator.join(lines) + separator).encode()


def load_csv(cursor: Any, target: ObjectName, columns: list[str] | None, path: Path, options: CsvOptions) -> int:
    """Insert the rows of a CSV file into the target table; the number of rows."""
    table = f'"{target.schema}"."{target.name}"'
    described = cursor.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
    types = {str(row[0]): str(row[1]) for row in described}
    targets = columns or list(types)
    for name in targets:
        if name not in types:
            raise DevDbError(f"column {name} not found in {target.schema}.{target.name}")
    fields = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(targets)))
    reader = (
        f"read_csv({sql_string(str(path))}, header = false, auto_detect = false, columns = {{{fields}}}, "
        f"delim = {sql_string(options.column_separator)}, quote = {sql_string(options.column_delimiter)}, "
        f"escape = {sql_string(options.column_delimiter)}, skip = {int(options.skip)}, "
        f"{_NEW_LINE_OPTIONS[options.row_separator]}"
        "strict_mode = true, null_padding = false)"
    )
    values = []
    for i, name in enumerate(targets):
        value = f'"c{i}"'
        if options.trim == "TRIM":
            value = f"trim({value})"
        elif options.trim == "LTRIM":
            value = f"ltrim({value})"
        elif options.trim == "RTRIM":
            value = f"rtrim({value})"
        value = f"NULLIF({value}, '')"
        if options.null:
            value = f"NULLIF({value}, {sql_string(options.null)})"
        values.append(f"CAST({value} AS {types[name]})")
    column_list = ", ".join(f'"{name}"' for name in targets)
    cursor.execute(f"INSERT INTO {table} ({column_list}) SELECT {', '.join(values)} FROM {reader}")
    row = cursor.fetchone()
    return int(row[0]) if row else 0
