"""One conversion: a JSON or Parquet file to a CSV file, in bounded memory, cancellable between blocks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from pathlib import Path

import pyarrow as pa

from redpss.convert.csvout import CsvSink
from redpss.convert.errors import BadInput, Cancelled
from redpss.convert.jsonread import json_tables
from redpss.convert.parquet import parquet_tables
from redpss.convert.pipeline import prefetched

Kind = str  # "json" or "parquet"


def use_system_memory_pool() -> None:
    """Make the process allocate Arrow memory with the C library's malloc. Arrow's default (mimalloc) keeps freed
    blocks for reuse, so a conversion's RSS stayed ~40 MiB higher; malloc hands large blocks back at once and was
    not slower. Called by the converter daemons (whole processes of their own) and the benchmark's runs of them."""
    pa.set_memory_pool(pa.system_memory_pool())


def source_tables(kind: Kind, source: Path) -> Generator[pa.Table, None, None]:
    if kind == "json":
        with source.open("rb") as opened:
            yield from json_tables(source, opened)
    elif kind == "parquet":
        yield from parquet_tables(source)
    else:
        raise ValueError(f"unknown source kind {kind!r}")


def convert_file(
    kind: Kind,
    source: Path,
    output: Path,
    cancel: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the CSV of `source` to `output` (fsynced, not yet published); the number of rows.

    BadInput when the source is bad; Cancelled when `cancel` is set (checked after each block). Whatever goes
    wrong, no partial output is left behind.
    """
    sink = CsvSink(output)
    # JSON blocks are parsed ahead by jsonread's own threads; Parquet batches are decoded one ahead here
    tables = source_tables(kind, source) if kind == "json" else prefetched(source_tables(kind, source))
    try:
        for table in tables:
            if cancel is not None and cancel.is_set():
                raise Cancelled(str(source))
            sink.write(table)
            if progress is not None:
                progress(sink.rows)
        sink.finish()
    except BaseException:
        tables.close()
        sink.discard()
        output.unlink(missing_ok=True)
        raise
    return sink.rows


__all__ = ["BadInput", "Cancelled", "convert_file", "source_tables", "use_system_memory_pool"]
