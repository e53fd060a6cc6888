"""Parquet sources as a stream of Arrow tables, one row group at a time, in batches.

Each row group is read on its own (`iter_batches(row_groups=[i])`): iter_batches over the whole file was measured
to grow to 2.16 GB on a 2 GB file (performance-facts.md), while one row group at a time stays bounded; decoding it
in batches of BATCH_ROWS rows kept the peak below that of reading the row group whole (155 against 201 MiB with
48 MiB row groups). Memory is therefore bounded by the largest row group, whatever the file size.
The batches are decoded by one thread without pyarrow's own threads, while two others format the batches before
(redpss.convert.convert); pyarrow's column threads on top of that cost CPU without gaining time on two cores.
Batches of 8,192 rows (~2 MB of CSV text each) took less CPU and memory than 16,384 or 32,768 once formatted in
parallel: half the page faults and system time of 16,384 (docs/decisions.md).
A file or row group that cannot be read becomes BadInput naming the row group and, when one column alone fails,
that column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from redpss.convert.csvout import flatten
from redpss.convert.errors import BadInput
from redpss.core.setaside import printable

_READ_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError)
BATCH_ROWS = 8192  # decoded and formatted at a time, within one row group


def open_parquet(source: BinaryIO) -> pq.ParquetFile:
    """The Parquet file over a file object we opened (and close): a footer pyarrow refuses leaks no descriptor."""
    try:
        return pq.ParquetFile(source)
    except _READ_ERRORS as exc:
        raise BadInput("file footer", f"not a readable Parquet file: {exc}") from None


def parquet_tables(path: Path) -> Iterator[pa.Table]:
    """Each row group in batches of BATCH_ROWS rows, as flattened tables (struct columns become parent.child)."""
    with path.open("rb") as source:
        parquet = open_parquet(source)
        rows_before = 0
        for group in range(parquet.num_row_groups):
            batches = parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], use_threads=False)
            while True:
                try:
                    batch = next(batches, None)
                except _READ_ERRORS as exc:
                    raise BadInput(_where(parquet, group, rows_before), f"cannot be read: {exc}") from None
                if batch is None:
                    break
                yield flatten(pa.Table.from_batches([batch]))
            rows_before += parquet.metadata.row_group(group).num_rows
        if rows_before == 0:  # no rows, but the columns are known: the CSV has its header line, as any other
            yield flatten(parquet.schema_arrow.empty_table())


def _where(parquet: pq.ParquetFile, group: int, rows_before: int) -> str:
    """The row group (and its first row) and, if one column alone fails to read, that column."""
    where = f"row group {group} (rows from {rows_before + 1})"
    for name in parquet.schema_arrow.names:
        try:
            parquet.read_row_group(group, columns=[name], use_threads=False)
        except _READ_ERRORS:
            return f"{where}, column {printable(name)}"
    return where
