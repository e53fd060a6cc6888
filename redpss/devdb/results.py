"""Result sets: computed by DuckDB in the form Exasol sends, cut into fetch-sized messages.

The values are made wire-ready in SQL (types.ExaType.wire_expression), so Python only slices columns. A result of
fewer than 1,000 rows travels in the execute reply, as Exasol does, and is held as an Arrow table. A bigger one stays
on the server behind a handle and is *streamed*: it keeps a DuckDB cursor of its own, in a read transaction that pins
the snapshot, and reads rows from DuckDB only as the client fetches them, so a 30M-row result costs one fetch window
of memory, not the whole result. Its total row count, which the execute reply must carry, is a COUNT(*) over the same
query in the same transaction (see docs/decisions.md). Closing the result set (closeResultSet, the session's end)
closes the reader and the cursor.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from redpss.devdb.errors import DevDbError
from redpss.devdb.types import ExaType

INLINE_ROWS = 1000  # results with fewer rows travel in the execute reply, as Exasol does
STREAM_BATCH_ROWS = 8192  # rows per batch read from DuckDB; a fetch window is made of whole or partial batches


@dataclass
class RowStream:
    """The rows of one query, read from DuckDB a batch at a time on a cursor that nothing else uses."""

    cursor: Any  # a DuckDB connection of its own, inside BEGIN TRANSACTION
    reader: Any  # pyarrow.RecordBatchReader over the query
    position: int = 0  # rows handed out so far
    bytes_per_row: int = 0  # measured on the first batch, to turn numBytes into a row count
    _pending: list[Any] = field(default_factory=list)  # batches (or their rest) read but not handed out

    def read(self, start: int, num_bytes: int, total: int) -> Any:
        """The pyarrow.Table of the rows from start, about num_bytes of them (at least one), forward only."""
        if start < self.position:
            raise DevDbError(
                f"fetch from startPosition {start}: devdb streams big result sets forward only, and rows before "
                f"{self.position} were already sent; fetch from {self.position}, or run the query again"
            )
        self._skip(start - self.position)
        wanted = min(total - self.position, self._rows_for(num_bytes))
        batches: list[Any] = []
        got = 0
        while got < wanted:
            batch = self._next_batch()
            if batch is None:
                break
            take = min(batch.num_rows, wanted - got)
            batches.append(batch.slice(0, take))
            if take < batch.num_rows:
                self._pending.insert(0, batch.slice(take))
            got += take
        self.position += got
        import pyarrow  # noqa: PLC0415 - DuckDB's Arrow output already loaded it

        if batches:
            return pyarrow.Table.from_batches(batches)
        return self.reader.schema.empty_table()

    def _rows_for(self, num_bytes: int) -> int:
        if not self.bytes_per_row:
            first = self._next_batch()
            if first is None:
                return 1
            self._pending.insert(0, first)
            self.bytes_per_row = max(1, int(first.nbytes) // max(1, first.num_rows))
        return max(1, num_bytes // self.bytes_per_row)

    def _skip(self, count: int) -> None:
        while count > 0:
            batch = self._next_batch()
            if batch is None:
                return
            if batch.num_rows > count:
                self._pending.insert(0, batch.slice(count))
            self.position += min(count, batch.num_rows)
            count -= min(count, batch.num_rows)

    def _next_batch(self) -> Any:
        if self._pending:
            return self._pending.pop(0)
        try:
            return self.reader.read_next_batch()
        except StopIteration:
            return None

    def close(self) -> None:
        """Release DuckDB's side: the reader, the read transaction and the cursor."""
        self._pending.clear()
        with contextlib.suppress(Exception):  # closing must not fail, even after an interrupt or a lost database
            self.reader.close()
        with contextlib.suppress(duckdb.Error):
            self.cursor.execute("ROLLBACK")
        with contextlib.suppress(duckdb.Error):
            self.cursor.close()


def open_stream(cursor: Any, query: str) -> tuple[int, RowStream]:
    """(total rows, stream) of query on cursor (a fresh DuckDB connection, already in the right schema).

    The count and the rows come from one read transaction, so they agree even while other sessions commit.
    On failure the cursor is closed and the DuckDB error raised.
    """
    try:
        cursor.execute("BEGIN TRANSACTION")
        row = cursor.execute(f"SELECT COUNT(*) FROM ({query}) AS counted").fetchall()  # noqa: S608 - devdb's own SQL
        total = int(row[0][0])
        reader = cursor.sql(query).to_arrow_reader(STREAM_BATCH_ROWS)
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.close()
        raise
    return total, RowStream(cursor, reader)


@dataclass
class ResultSet:
    names: list[str]
    types: list[ExaType]
    table: Any  # pyarrow.Table with one wire-ready column per result column; None for a streamed result
    handle: int = 0
    stream: RowStream | None = None
    total: int = 0  # the row count of a streamed result

    @property
    def num_rows(self) -> int:
        if self.stream is not None:
            return self.total
        return int(self.table.num_rows)

    @property
    def streamed(self) -> bool:
        return self.stream is not None

    def columns_meta(self) -> list[dict[str, Any]]:
        return [{"name": name, "dataType": t.data_type()} for name, t in zip(self.names, self.types, strict=True)]

    def rows_for(self, num_bytes: int) -> int:
        """How many rows of the in-memory table make a message of about num_bytes (at least one)."""
        per_row = max(1, int(self.table.nbytes) // max(1, self.num_rows))
        return max(1, num_bytes // per_row)

    def fetch(self, start: int, num_bytes: int) -> dict[str, Any]:
        """The responseData of a fetch: rows from start, about num_bytes of them."""
        if self.stream is not None:
            piece = self.stream.read(start, num_bytes, self.total)
            return {"numRows": int(piece.num_rows), "data": self._columns(piece)}
        count = min(self.rows_for(num_bytes), max(0, self.num_rows - start))
        return {"numRows": count, "data": self.data(start, count)}

    def all_rows(self) -> list[list[Any]]:
        """Column-major values of every row not yet fetched (a script stand-in reading a whole result)."""
        if self.stream is not None:
            start = self.stream.position
            return self._columns(self.stream.read(start, 1 << 62, self.total))
        return self.data(0, self.num_rows)

    def data(self, start: int, count: int) -> list[list[Any]]:
        """Column-major values of rows start .. start+count-1 of the in-memory table."""
        return self._columns(self.table.slice(start, count))

    def _columns(self, piece: Any) -> list[list[Any]]:
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

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.table = None
