"""One conversion: a JSON or Parquet file to a CSV file, in bounded memory, cancellable between blocks."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from redpss.convert.csvout import Arranged, CsvSink
from redpss.convert.errors import BadInput, Cancelled
from redpss.convert.jsonread import json_tables
from redpss.convert.parquet import parquet_tables
from redpss.convert.pipeline import mapped_in_order, prefetched

Kind = str  # "json" or "parquet"
# Per kind: threads formatting CSV text, each a whole table at a time, and how many tables may wait formatted or
# decoded beside them. Parquet: formatting is most of its CPU; two per formatter (tables of up to 8,192 rows) kept both
# cores busy, one left them idle between tables, three gained nothing. JSON: parsing is the work (jsonread's threads),
# and a second formatter or more tables waiting only raised the peak (121 -> 136 MiB at the same speed).
FORMATTING = {"json": (1, 1), "parquet": (2, 4)}


def use_memory_pool(kind: Kind) -> None:
    """Choose the allocator of a converting process (a daemon of its own, or a benchmark's run of one).

    JSON: the C library's malloc. Arrow's default (mimalloc) keeps freed blocks for reuse, so a conversion's RSS stayed
    ~40 MiB higher; malloc hands large blocks back at once and was not slower. Parquet: jemalloc. Its batches are
    formatted by two threads into buffers of megabytes, which malloc maps and unmaps each time: 4-9x the page faults
    and ~1 s more system time per 5M rows on two cores than jemalloc, which also kept the peak lower and hands idle
    memory back within seconds (docs/decisions.md). malloc where this pyarrow has no jemalloc."""
    if kind == "parquet":
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
            return
        except NotImplementedError:
            pass
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
    if kind not in FORMATTING:
        raise ValueError(f"unknown source kind {kind!r}")
    threads, ahead = FORMATTING[kind]
    room = SpaceGuard(source, output.parent)
    sink = CsvSink(output)
    # JSON blocks are parsed ahead by jsonread's own threads; Parquet batches are decoded by one thread here
    tables = source_tables(kind, source) if kind == "json" else prefetched(source_tables(kind, source), threads)
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="convert-format") as formatters:
            in_columns = _arranged(sink, tables, cancel, source)
            texts = mapped_in_order(formatters, sink.formatted, in_columns, ahead)
            try:
                for table, text in texts:
                    room.take(text.size)
                    sink.append(table, text)
                    if progress is not None:
                        progress(sink.rows)
            finally:
                texts.close()
        sink.finish()
    except BaseException:
        tables.close()
        sink.discard()
        output.unlink(missing_ok=True)
        raise
    return sink.rows


# The CSV may not take the file system's last free space: past this much written, the space left is looked at
# every SPACE_CHECK_BYTES; under the reserve (the larger of the two) the conversion stops. A CSV more than
# BOMB_FACTOR times its source's size by then is the file's doing (a few hundred bytes of Parquet can decode to
# gigabytes): it goes to data/error. Else the disk is full of other things: the file waits (ENOSPC, tried again).
SPACE_CHECK_BYTES = 64 << 20
SPACE_RESERVE_BYTES = 1 << 30
SPACE_RESERVE_SHARE = 0.05
SPACE_RESERVE_MAX = 10 << 30  # ... but never more than this (5% of a 20 TB file system is 1 TB)
BOMB_FACTOR = 100


class SpaceGuard:
    """What the CSV written so far may still take of its file system."""

    def __init__(self, source: Path, folder: Path) -> None:
        self.source_bytes = max(source.stat().st_size, 1)
        self.folder = folder
        self.written = 0
        self._next_check = SPACE_CHECK_BYTES

    def take(self, size: int) -> None:
        self.written += size
        if self.written < self._next_check:
            return
        self._next_check = self.written + SPACE_CHECK_BYTES
        disk = os.statvfs(self.folder)
        free, total = disk.f_bavail * disk.f_frsize, disk.f_blocks * disk.f_frsize
        reserve = min(max(SPACE_RESERVE_BYTES, int(total * SPACE_RESERVE_SHARE)), SPACE_RESERVE_MAX)
        if free - size >= min(reserve, total // 2):
            return
        if self.written > BOMB_FACTOR * self.source_bytes:
            raise BadInput(
                "",
                f"its CSV grew to {self.written >> 20} MiB, {self.written // self.source_bytes} times its "
                f"{self.source_bytes} bytes, and would fill the file system ({free >> 20} MiB left); a file that "
                "decodes to so much more than it holds is not converted",
            )
        left = f"{free >> 20} MiB left, below the reserve of {reserve >> 20} MiB"
        raise OSError(errno.ENOSPC, left, str(self.folder))


def _arranged(
    sink: CsvSink, tables: Iterator[pa.Table], cancel: threading.Event | None, source: Path
) -> Generator[Arranged, None, None]:
    for table in tables:
        if cancel is not None and cancel.is_set():
            raise Cancelled(str(source))
        yield from sink.arrange(table)


__all__ = ["BadInput", "Cancelled", "convert_file", "source_tables", "use_memory_pool"]
