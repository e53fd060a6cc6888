"""CHAR(n) values as Exasol keeps them: blank-padded to n characters.

Exasol documents that CHAR(n) has a fixed length n and that a shorter value written into it is filled up with
spaces (https://docs.exasol.com/sql_references/data_types/datatypedetails.htm, String data types). DuckDB has no
CHAR: devdb stores CHAR(n) as VARCHAR (types.py), so a CHAR(5) holding 'ab' was 'ab' to every expression (LENGTH 2,
`c || '|'` 'ab|') and only the fetched value was padded. Now the stored value is padded:

- after each statement that writes rows into a table (INSERT, UPDATE, MERGE, IMPORT, CREATE TABLE AS, ALTER TABLE
  ADD COLUMN with a DEFAULT), the shorter values of the table's CHAR columns are padded, in the same transaction. One
  step after the write covers every way a value enters a table, where padding inside each would need one rewrite per
  statement kind and path (the bulk INSERT path, IMPORT, prepared statements, defaults);
- a CAST to CHAR(n) pads its value (translate.py with functions.char_padded): the type has the fixed length n.

Exasol does not document how a CHAR compares with a shorter VARCHAR ('ab   ' = 'ab'): devdb compares the padded text
as stored, so `c = 'ab'` is false for that CHAR(5) value and `c = 'ab   '` true.
"""

# DuckDB SQL is built here from identifiers devdb parsed and quoted itself.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from sqlglot import exp

from redpss.devdb import catalog
from redpss.devdb.functions import char_padded
from redpss.devdb.translate import ObjectName, object_name


def char_sizes(cursor: Any, table: ObjectName) -> dict[str, int]:
    """The CHAR columns of `table` (name -> n) as the shadow catalog declares them; empty for none."""
    return {name: t.size for name, t in catalog.lookup(cursor, table).items() if t.kind == "CHAR"}


def pad_stored(cursor: Any, table: ObjectName, sizes: dict[str, int]) -> None:
    """Pad the shorter values of the CHAR columns `sizes` of `table` with spaces to their size, in one UPDATE."""
    if not sizes:
        return
    assignments = ", ".join(f'"{name}" = {_padded(name, size)}' for name, size in sizes.items())
    shorter = " OR ".join(f'length("{name}") < {size}' for name, size in sizes.items())
    cursor.execute(f'UPDATE "{table.schema}"."{table.name}" SET {assignments} WHERE {shorter}')


def _padded(column: str, size: int) -> str:
    return char_padded(exp.column(exp.to_identifier(column, quoted=True)), size).sql(dialect="duckdb")


def written_table(tree: exp.Expr, schema: str | None) -> ObjectName | None:
    """The table an INSERT, UPDATE or MERGE writes rows into (None for other statements: DELETE adds no value)."""
    if not isinstance(tree, (exp.Insert, exp.Update, exp.Merge)):
        return None
    target = tree.this
    if isinstance(target, exp.Schema):  # INSERT INTO t (a, b)
        target = target.this
    return object_name(target, schema) if isinstance(target, exp.Table) else None
