"""Parquet sources as a stream of Arrow tables, one row group at a time.

`ParquetFile.read_row_group(i)` is used rather than `iter_batches`: measured on a 2 GB file, iter_batches kept
growing to 2.16 GB while reading row group by row group stayed at the size of one (performance-facts.md). Memory is
therefore bounded by the largest row group, whatever the file size. A file or row group that cannot be read becomes
BadInput naming the row group and, when one column alone fails, that column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from redpss.convert.csvout import flatten
from redpss.convert.errors import BadInput

_READ_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError)


def open_parquet(source: BinaryIO) -> pq.ParquetFile:
    """The Parquet file over a file object we opened (and close): a footer pyarrow refuses leaks no descriptor."""
    try:
        return pq.ParquetFile(source)
    except _READ_ERRORS as exc:
        raise BadInput("file footer", f"not a readable Parquet file: {exc}") from None


def parquet_tables(path: Path) -> Iterator[pa.Table]:
    """Each row group as a flattened table (struct columns become parent.child)."""
    with path.open("rb") as source:
        parquet = open_parquet(source)
        rows_before = 0
        for group in range(parquet.num_row_groups):
            try:
                table = parquet.read_row_group(group, use_threads=True)
            except _READ_ERRORS as exc:
                raise BadInput(_where(parquet, group, rows_before), f"cannot be read: {exc}") from None
            rows_before += table.num_rows
            yield flatten(table)
            del table


def _where(parquet: pq.ParquetFile, group: int, rows_before: int) -> str:
    """The row group (and its first row) and, if one column alone fails to read, that column."""
    where = f"row group {group} (rows from {rows_before + 1})"
    for name in parquet.schema_arrow.names:
        try:
            parquet.read_row_group(group, columns=[name], use_threads=False)
        except _READ_ERRORS:
            return f"{where}, column {name}"
    return where
