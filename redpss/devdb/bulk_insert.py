"""INSERT ... VALUES of many rows of plain literals, translated without parsing every row with sqlglot.

The durable row writer (run log, statistics, log messages) sends one INSERT of up to 1,000 rows of literals. Parsing
such a statement with sqlglot costs about 0.6 ms per row, which capped devdb near 1,000 run-log rows/s. Here the
statement's head and its first row go through `translate` as usual (names, checks and the catalog as for any
statement); the other rows, made only of literals whose DuckDB text is their Exasol text, are checked by a small
scanner and joined on. The first row's rendering by sqlglot must equal the scanner's, else the whole statement takes
the usual path: a statement this module is unsure of is translated exactly as before.
"""

from __future__ import annotations

import re

from redpss.devdb.translate import SessionInfo, Translated, translate

_NAME = r'(?:"[^"]+"|[A-Za-z][A-Za-z0-9_$]*)'
_HEAD = re.compile(
    rf"\s*INSERT\s+INTO\s+{_NAME}(?:\.{_NAME})?\s*\(\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\)\s*VALUES\s*",
    re.IGNORECASE,
)
# a literal whose DuckDB text is its Exasol text: a string, a number in the form sqlglot writes back unchanged, NULL,
# TRUE or FALSE; anything else (expressions, comments, other spellings) leaves the statement to the usual path
_LITERAL = r"'(?:[^']|'')*'|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])|(?:NULL|TRUE|FALSE)\b"
_ROW = re.compile(rf"\s*\(\s*(?:{_LITERAL})(?:\s*,\s*(?:{_LITERAL}))*\s*\)\s*(,|\Z)")
_VALUE = re.compile(_LITERAL)
_EMPTY_TEXT = "''"
MIN_ROWS = 2  # one row gains nothing: it goes the usual way


def translate_bulk_insert(sql: str, info: SessionInfo) -> Translated | None:
    """The translation of a many-row literal INSERT, or None when the statement must take the usual path."""
    head = _HEAD.match(sql)
    if head is None:
        return None
    rows = _literal_rows(sql, head.end())
    if rows is None or len(rows) < MIN_ROWS:
        return None
    first = _row_text(rows[0])
    single = translate(sql[: head.end()] + first, info)
    suffix = " VALUES " + first
    if not single.sql.endswith(suffix):
        return None  # sqlglot writes this first row otherwise: trust it, not the scanner
    single.sql = single.sql[: -len(first)] + ", ".join(_row_text(row) for row in rows)
    return single


def _literal_rows(sql: str, position: int) -> list[list[str]] | None:
    """The rows from `position` on, each a list of literal texts ('' already NULL), or None if not only literals."""
    rows: list[list[str]] = []
    while True:
        row = _ROW.match(sql, position)
        if row is None:
            return None
        values = _VALUE.findall(sql, row.start(), row.end())
        rows.append(["NULL" if value == _EMPTY_TEXT else value for value in values])
        position = row.end()
        if not row.group(1):  # the end of the statement
            return rows


def _row_text(row: list[str]) -> str:
    return "(" + ", ".join(row) + ")"
