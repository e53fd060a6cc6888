"""Parquet sources as a stream of Arrow tables, one row group at a time, in batches.

Each row group is read on its own (`iter_batches(row_groups=[i])`): iter_batches over the whole file was measured
to grow to 2.16 GB on a 2 GB file (performance-facts.md), while one row group at a time stays bounded; decoding it
in batches of BATCH_ROWS rows kept the peak below that of reading the row group whole (155 against 201 MiB with
48 MiB row groups). Memory is therefore bounded by the largest row group, whatever the file size.
The batches are decoded by one thread without pyarrow's own threads, while two others format the batches before
(redpss.convert.convert); pyarrow's column threads on top of that cost CPU without gaining time on two cores.
Batches of 8,192 rows (~2 MB of CSV text each) took less CPU and memory than 16,384 or 32,768 once formatted in
parallel: half the page faults and system time of 16,384 (docs/decisions.md).
Rows can be far wider than that (a text of 100 KB per row: 800 MB per batch, ~7 batches decoding, formatting or
waiting at once took 5.8 GiB), and a file's metadata does not tell: a value repeated through Parquet's dictionary
takes a few bytes in the file and its whole length in every decoded row. So each row group starts with a batch of
PROBE_ROWS rows, whose decoded size sets the rows of the batches after it to about BATCH_BYTES; a batch more than
twice that (the rows grew) makes the batches after it smaller. A batch changes size by reading the row group
again from its start, the rows already handed out decoded and dropped, in batches of the new size.
A file or row group that cannot be read becomes BadInput naming the row group and, when one column alone fails,
that column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from redpss.convert.csvout import flatten
from redpss.convert.errors import BadInput
from redpss.core.setaside import printable

_READ_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError)
BATCH_ROWS = 8192  # decoded and formatted at a time, within one row group, at most
BATCH_BYTES = 8 << 20  # decoded bytes of a batch (at least one row), about: batches of wider rows have fewer rows
PROBE_ROWS = 64  # the first batch of each row group, whose size decides the next ones


def open_parquet(source: BinaryIO) -> pq.ParquetFile:
    """The Parquet file over a file object we opened (and close): a footer pyarrow refuses leaks no descriptor."""
    try:
        return pq.ParquetFile(source)
    except _READ_ERRORS as exc:
        raise BadInput("file footer", f"not a readable Parquet file: {exc}") from None


def parquet_tables(path: Path) -> Iterator[pa.Table]:
    """Each row group in batches of at most BATCH_ROWS rows and about BATCH_BYTES, as flattened tables (struct
    columns become parent.child)."""
    with path.open("rb") as source:
        parquet = open_parquet(source)
        rows_before = 0
        for group in range(parquet.num_row_groups):
            batches = _group_batches(parquet, group)
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


def _group_batches(parquet: pq.ParquetFile, group: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of one row group (its `columns`, or all) in batches of about BATCH_BYTES decoded (see the module
    docstring)."""
    rows = parquet.metadata.row_group(group).num_rows
    handed = 0  # rows of the group handed out
    size = PROBE_ROWS
    probing = True
    while True:
        decoded = 0  # rows of the group decoded by this pass over it
        resized = False
        for read in parquet.iter_batches(batch_size=size, row_groups=[group], columns=columns, use_threads=False):
            decoded += read.num_rows
            if decoded <= handed:
                continue  # handed out by a pass before
            batch = read.slice(handed - (decoded - read.num_rows)) if decoded - read.num_rows < handed else read
            yield batch
            handed += batch.num_rows
            if handed >= rows:
                return  # a new size now would only read the row group again for nothing
            fitting = min(BATCH_ROWS, max(1, int(BATCH_BYTES * batch.num_rows / max(_decoded_bytes(batch), 1))))
            grow, probing = probing and fitting > size, False
            if grow or fitting < size // 2:
                size, resized = fitting, True
                break
        if not resized:
            return


def _decoded_bytes(batch: pa.RecordBatch) -> int:
    """What the batch's values take decoded, a dictionary column's as each row's value would (the CSV has them so):
    its longest value per row for text and binary, else its average value."""
    total = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type) and len(column.dictionary):
            values = column.dictionary
            if (
                pa.types.is_string(values.type)
                or pa.types.is_binary(values.type)
                or pa.types.is_large_string(values.type)
                or pa.types.is_large_binary(values.type)
            ):
                widest = pc.max(pc.binary_length(values)).as_py() or 0
            else:
                widest = values.nbytes // len(values)
            total += column.indices.nbytes + len(column) * widest
        else:
            total += column.nbytes
    return total


def _where(parquet: pq.ParquetFile, group: int, rows_before: int) -> str:
    """The row group (and its first row) and, if one column alone fails to read, that column (each read in batches:
    read whole, one column of a row group that decodes large took its whole size at once)."""
    where = f"row group {group} (rows from {rows_before + 1})"
    for name in parquet.schema_arrow.names:
        try:
            for _ in _group_batches(parquet, group, [name]):
                pass
        except _READ_ERRORS:
            return f"{where}, column {printable(name)}"
    return where
