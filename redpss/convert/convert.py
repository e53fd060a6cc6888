"""One conversion: a JSON or Parquet file to a CSV file, in bounded memory, cancellable between blocks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from redpss.convert.csvout import CsvSink
from redpss.convert.errors import BadInput, Cancelled
from redpss.convert.jsonread import json_tables
from redpss.convert.parquet import parquet_tables
from redpss.convert.pipeline import prefetched

Kind = str  # "json" or "parquet"


def source_tables(kind: Kind, source: Path) -> Iterator[pa.Table]:
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
    tables = prefetched(source_tables(kind, source))
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


__all__ = ["BadInput", "Cancelled", "convert_file", "source_tables"]
