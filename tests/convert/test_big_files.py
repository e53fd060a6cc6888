"""Memory stays flat with the file size: a 2 GB NDJSON file converts within the memory of a 0.2 GB one, a Parquet file
of 20 row groups within that of one of 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def _ndjson(path: Path, size: int) -> int:
    """~`size` bytes of records (one block of 2,000 varied records, repeated); the number of records."""
    lines = [
        f'{{"id": {i}, "name": "row {i}, \\"quoted\\"\\nnext line", "amount": {i * 1.25}, '
        f'"ok": {str(i % 2 == 0).lower()}, "nested": {{"city": "Zürich €", "zip": {8000 + i % 99}}}, '
        f'"tags": ["a", "b{i % 7}"], "note": null}}\n'
        for i in range(2000)
    ]
    block = "".join(lines).encode()
    copies = max(1, size // len(block))
    with path.open("wb") as out:
        for _ in range(copies):
            out.write(block)
    return copies * len(lines)


def _peak_rss_of_conversion(source: Path, output: Path, kind: str = "json") -> tuple[float, int]:
    """(peak RSS in MiB, rows) of a separate process converting `source`: VmHWM of its own image, read by itself.

    Not ru_maxrss from wait4: Linux keeps the high-water mark across exec, and a child started from pytest carries
    the pytest process's own peak (seen as ~380 MiB late in a full run), whatever the conversion used."""
    code = (
        "from pathlib import Path\n"
        "from redpss.convert.convert import convert_file, use_memory_pool\n"
        f"use_memory_pool({kind!r})\n"
        f"rows = convert_file({kind!r}, Path({str(source)!r}), Path({str(output)!r}))\n"
        "peak = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "print(rows, peak)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    printed = process.stdout.read().split()
    process.stdout.close()
    assert process.wait() == 0
    rows, peak_kib = printed
    return int(peak_kib) / 1024, int(rows)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 2.2 GB written and converted on a shared 2-core machine
def test_a_2_gb_ndjson_file_converts_in_the_memory_of_a_small_one(tmp_path: Path) -> None:
    peaks = {}
    for size in (200_000_000, 2_000_000_000):
        source = tmp_path / "big.json"
        records = _ndjson(source, size)
        output = tmp_path / "big.csv"
        peaks[size], rows = _peak_rss_of_conversion(source, output)
        assert rows == records
        with output.open("rb") as converted:
            converted.seek(-200, os.SEEK_END)
            last = b'1999,"row 1999, ""quoted""\nnext line",2498.75,0,"Z\xc3\xbcrich \xe2\x82\xac",8019,'
            last += b'"[""a"",""b4""]",\n'
            assert converted.read().endswith(last)
        source.unlink()
        output.unlink()
    small, big = peaks[200_000_000], peaks[2_000_000_000]
    assert big < small + 48, f"peak RSS grew with the file: {small:.0f} MiB at 0.2 GB, {big:.0f} MiB at 2 GB"
    assert big < 300, f"peak RSS {big:.0f} MiB for a 2 GB file"


def _parquet(path: Path, row_groups: int, rows_per_group: int = 100_000) -> int:
    """A Parquet file of `row_groups` row groups of the same varied rows (~24 MiB each in Arrow); its rows."""
    numbers = pa.array(range(rows_per_group), pa.int64())
    group = pa.table(
        {
            "id": numbers,
            "name": pa.array([f'row {i}, "quoted"' for i in range(rows_per_group)]),
            "amount": pa.array([i * 1.25 for i in range(rows_per_group)]),
            "ok": pa.array([i % 2 == 0 for i in range(rows_per_group)]),
            "text": pa.array([f"{i:08d} " + "x" * 150 for i in range(rows_per_group)]),
        }
    )
    with pq.ParquetWriter(path, group.schema) as writer:
        for _ in range(row_groups):
            writer.write_table(group, row_group_size=rows_per_group)
    return row_groups * rows_per_group


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_parquet_file_of_many_row_groups_converts_in_the_memory_of_one_of_few(tmp_path: Path) -> None:
    peaks = {}
    for groups in (2, 20):
        source = tmp_path / "big.parquet"
        written = _parquet(source, groups)
        output = tmp_path / "big.csv"
        peaks[groups], rows = _peak_rss_of_conversion(source, output, "parquet")
        assert rows == written
        with output.open("rb") as converted:
            converted.seek(-300, os.SEEK_END)
            last = b'\n99999,"row 99999, ""quoted""",124998.75,0,"00099999 ' + b"x" * 150 + b'"\n'
            assert converted.read().endswith(last)
        source.unlink()
        output.unlink()
    few, many = peaks[2], peaks[20]
    # one row group is ~24 MiB in Arrow: reading the file whole would add ~430 MiB
    assert many < few + 24, f"peak RSS grew with the row groups: {few:.0f} MiB for 2, {many:.0f} MiB for 20"
