"""Result sets: computed by DuckDB in the form Exasol sends, held as Arrow tables, cut into fetch-sized messages.

The values are made wire-ready in SQL (types.ExaType.wire_expression), so Python only slices columns; a result of
1,000 rows or more stays on the server behind a handle and is fetched in pieces of about `numBytes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from redpss.devdb.types import ExaType

INLINE_ROWS = 1000  # results with fewer rows travel in the execute reply, as Exasol does


@dataclass
class ResultSet:
    names: list[str]
    types: list[ExaType]
    table: Any  # pyarrow.Table with one wire-ready column per result column
    handle: int = 0

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def columns_meta(self) -> list[dict[str, Any]]:
        return [{"name": name, "dataType": t.data_type()} for name, t in zip(self.names, self.types, strict=True)]

    def rows_for(self, num_bytes: int) -> int:
        """How many rows make a message of about num_bytes (at least one)."""
        per_row = max(1, int(self.table.nbytes) // max(1, self.num_rows))
        return max(1, num_bytes // per_row)

    def data(self, start: int, count: int) -> list[list[Any]]:
        """Column-major values of rows start .. start+count-1."""
        piece = self.table.slice(start, count)
        columns: list[list[Any]] = []
        for index, exa_type in enumerate(self.types):
            values = piece.column(index).to_pylist()
            if exa_type.kind == "DECIMAL" and exa_type.scale == 0 and exa_type.precision > 18:
                values = [int(v) if isinstance(v, Decimal) else v for v in values]
            columns.append(values)
        return columns

    def header(self, *, inline: bool) -> dict[str, Any]:
        """The `resultSet` object of an execute reply."""
        body: dict[str, Any] = {
            "numColumns": len(self.names),
            "numRows": self.num_rows,
            "columns": self.columns_meta(),
        }
        if inline:
            body["numRowsInMessage"] = self.num_rows
            body["data"] = self.data(0, self.num_rows)
        else:
            body["resultSetHandle"] = self.handle
            body["numRowsInMessage"] = 0
        return body
