"""Parquet to CSV: every Arrow type mapped the way Exasol reads it, row group by row group, corrupt files named."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.convert import csvout
from redpss.convert import parquet as parquet_module
from redpss.convert.convert import convert_file
from redpss.convert.errors import BadInput
from redpss.convert.parquet import BATCH_ROWS
from tests.convert.roundtrip import converted_apart, csv_rows, imported


def convert(tmp_path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    source = tmp_path / "in.parquet"
    pq.write_table(table, source, row_group_size=row_group_size)
    output = tmp_path / "out.csv"
    convert_file("parquet", source, output)
    return output


def test_every_arrow_type_is_written_as_exasol_reads_it(tmp_path: Path) -> None:
    table = pa.table(
        {
            "d128": pa.array([decimal.Decimal("1.50"), None], pa.decimal128(10, 2)),
            "d256": pa.array([decimal.Decimal("-12345678901234567890123.5"), None], pa.decimal256(40, 1)),
            "ts_ns": pa.array([dt.datetime(2024, 1, 1, 1, 2, 3, 4), None], pa.timestamp("ns")),
            "ts_s": pa.array([dt.datetime(2024, 1, 1, 1, 2, 3), None], pa.timestamp("s")),
            "ts_zone": pa.array(
                [dt.datetime(2024, 6, 1, 12, 0, 0, 500000), None], pa.timestamp("ms", tz="Europe/Berlin")
            ),
            "day": pa.array([dt.date(2024, 2, 29), None]),
            "time": pa.array([dt.time(1, 2, 3, 500), None], pa.time64("us")),
            "bin": pa.array([b"\x00\xff", None]),
            "big_text": pa.array(['x"y,\nz', None], pa.large_string()),
            "ints": pa.array([[1, 2], None], pa.list_(pa.int32())),
            "rec": pa.array([{"a": 1, "b": {"c": "z"}}, None]),
            "map": pa.array([[("k", 1)], None], pa.map_(pa.string(), pa.int64())),
            "dict": pa.array(["a", None]).dictionary_encode(),
            "flag": pa.array([True, False]),
            "recs": pa.array([[{"x": dt.date(2024, 1, 2)}], []]),
            "f": pa.array([0.1, None], pa.float32()),
        }
    )
    rows = csv_rows(convert(tmp_path, table))
    assert rows == [
        ["d128", "d256", "ts_ns", "ts_s", "ts_zone", "day", "time", "bin", "big_text", "ints", "rec.a", "rec.b.c",
         "map", "dict", "flag", "recs", "f"],
        ["1.50", "-12345678901234567890123.5", "2024-01-01 01:02:03.000004", "2024-01-01 01:02:03.000000",
         "2024-06-01 12:00:00.500000", "2024-02-29", "01:02:03.000500", "00ff", 'x"y,\nz', "[1,2]", "1", "z",
         '{"k":1}', "a", "1", '[{"x":"2024-01-02"}]', "0.1"],
        ["", "", "", "", "", "", "", "", "", "", "", "", "", "", "0", "[]", ""],
    ]  # fmt: skip


def test_zoned_timestamps_are_written_in_utc(tmp_path: Path) -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    table = pa.table({"t": pa.array([dt.datetime(2024, 6, 1, 14, 0, tzinfo=berlin)], pa.timestamp("us", tz="+02:00"))})
    assert csv_rows(convert(tmp_path, table))[1] == ["2024-06-01 12:00:00.000000"]


def test_row_groups_are_streamed_in_order(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(1000)), "s": [f"r{i}" for i in range(1000)]})
    rows = csv_rows(convert(tmp_path, table, row_group_size=64))
    assert rows[0] == ["id", "s"] and rows[1:] == [[str(i), f"r{i}"] for i in range(1000)]


def test_a_corrupt_row_group_is_named_with_its_column(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(3000)), "s": [f"text-{i}" * 3 for i in range(3000)]})
    source = tmp_path / "in.parquet"
    pq.write_table(table, source, row_group_size=1000, compression="snappy")
    metadata = pq.ParquetFile(source).metadata
    chunk = metadata.row_group(1).column(1)  # row group 1, column s
    data = bytearray(source.read_bytes())
    start = chunk.data_page_offset + 40
    data[start : start + 200] = b"\xa5" * 200
    source.write_bytes(bytes(data))
    output = tmp_path / "out.csv"
    with pytest.raises(BadInput) as caught:
        convert_file("parquet", source, output)
    assert str(caught.value).startswith("row group 1 (rows from 1001), column s: cannot be read")
    assert not output.exists() and not list(tmp_path.glob("*.csv*"))


@pytest.mark.parametrize("content", [b"", b"PAR1 not really", b"\x00" * 100])
def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "in.parquet"
    source.write_bytes(content)
    with pytest.raises(BadInput, match=r"^file footer: not a readable Parquet file"):
        convert_file("parquet", source, tmp_path / "out.csv")


_values = st.fixed_dictionaries(
    {
        "i": st.none() | st.integers(-(2**63), 2**63 - 1),
        "d": st.none() | st.decimals(min_value=-(10**12), max_value=10**12, places=4, allow_nan=False),
        "t": st.none() | st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
        "day": st.none() | st.dates(),
        "b": st.none() | st.booleans(),
        "s": st.none() | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=15),
        "f": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    }
)
_SCHEMA = pa.schema(
    [("i", pa.int64()), ("d", pa.decimal128(18, 4)), ("t", pa.timestamp("us")), ("day", pa.date32()),
     ("b", pa.bool_()), ("s", pa.large_string()), ("f", pa.float64())]
)  # fmt: skip
_TYPES = {
    "i": "BIGINT", "d": "DECIMAL(18,4)", "t": "TIMESTAMP", "day": "DATE", "b": "BOOLEAN", "s": "VARCHAR", "f": "DOUBLE"
}  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_values, min_size=1, max_size=25))
def test_property_values_round_trip_through_devdb_import(tmp_path: Path, rows: list[dict[str, object]]) -> None:
    table = pa.Table.from_pylist(rows, schema=_SCHEMA)
    stored = imported(convert(tmp_path, table, row_group_size=7), _TYPES)
    expected = [tuple(None if r[k] == "" else r[k] for k in _TYPES) for r in rows]  # Exasol: '' is NULL
    assert stored == expected


def test_nan_is_null_and_infinity_is_refused_with_its_row_and_column(tmp_path: Path) -> None:
    nan = pa.table({"x": pa.array([1.5, float("nan"), None]), "h": pa.array([float("nan"), 1, 2], pa.float16())})
    assert csv_rows(convert(tmp_path, nan)) == [["x", "h"], ["1.5", ""], ["", "1"], ["", "2"]]
    values = [float(i) for i in range(10)] + [float("inf")]
    with pytest.raises(BadInput) as caught:
        convert(tmp_path, pa.table({"id": range(11), "x": values}), row_group_size=4)
    assert "row 11, column x: inf cannot be loaded (Exasol's DOUBLE has no infinity)" in str(caught.value)
    lists = pa.table({"l": pa.array([[1.0, float("nan")], [2.0], [2.5, float("-inf")]], pa.list_(pa.float64()))})
    with pytest.raises(BadInput) as caught:  # inside a nested value too: written as null it would be a value lost
        convert(tmp_path, lists, row_group_size=2)
    assert "row 3, column l: -inf inside a nested value cannot be loaded" in str(caught.value)
    assert csv_rows(convert(tmp_path, lists.slice(0, 2))) == [["l"], ["[1.0,null]"], ["[2.0]"]]


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (
            pa.array([0, 2**62], pa.timestamp("ms")),  # a cast to microseconds would wrap it to 1970-01-01
            "row 2, column t: the timestamp 4611686018427387904 (milliseconds from 1970-01-01) is outside the years "
            "1 to 9999, all that Exasol's TIMESTAMP holds; send NULL or a timestamp within them instead",
        ),
        (
            pa.array([None, 253_402_300_800 * 10**6], pa.timestamp("us", tz="UTC")),  # 10000-01-01 00:00:00
            "row 2, column t: the timestamp 253402300800000000 (microseconds from 1970-01-01) is outside",
        ),
        (
            pa.array([-62_135_596_800_001], pa.timestamp("ms")),  # 0000-12-31 23:59:59.999
            "row 1, column t: the timestamp -62135596800001 (milliseconds from 1970-01-01) is outside",
        ),
        (
            pa.array([0, None, 3_000_000], pa.date32()),  # the year 10183
            "row 3, column t: the date 3000000 (days from 1970-01-01) is outside the years 1 to 9999, all that "
            "Exasol's DATE holds",
        ),
    ],
    ids=["ms-2**62", "us-year-10000", "ms-year-0", "date-year-10183"],
)
def test_dates_and_timestamps_beyond_exasols_years_are_refused_with_row_and_column(
    tmp_path: Path, column: pa.Array, reason: str
) -> None:
    with pytest.raises(BadInput) as caught:
        convert(tmp_path, pa.table({"id": range(len(column)), "t": column}))
    assert reason in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_the_first_and_last_moments_exasol_holds_are_written(tmp_path: Path) -> None:
    first, last = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999000)
    table = pa.table(
        {"ms": pa.array([first, last], pa.timestamp("ms")), "day": pa.array([first.date(), last.date()], pa.date64())}
    )
    assert csv_rows(convert(tmp_path, table))[1:] == [
        ["0001-01-01 00:00:00.000000", "0001-01-01"],
        ["9999-12-31 23:59:59.999000", "9999-12-31"],
    ]


def test_decimals_of_any_scale_are_written_fixed_point_with_their_scale(tmp_path: Path) -> None:
    small = [decimal.Decimal(v) for v in ("0E-8", "1E-8", "-5E-8", "123.45678901")]  # Arrow's own text: 1E-8, ...
    tiny = [decimal.Decimal(v) for v in ("1E-30", "0E-30", "-12345.000000000000000000000000000001", "1")]
    table = pa.table({"d": pa.array(small, pa.decimal128(20, 8)), "w": pa.array(tiny, pa.decimal256(60, 30))})
    output = convert(tmp_path, table)
    assert csv_rows(output)[1:] == [
        ["0.00000000", "0.000000000000000000000000000001"],
        ["0.00000001", "0.000000000000000000000000000000"],
        ["-0.00000005", "-12345.000000000000000000000000000001"],
        ["123.45678901", "1.000000000000000000000000000000"],
    ]
    assert [row[0] for row in imported(output, {"d": "DECIMAL(20,8)", "w": "VARCHAR"})] == small
    negative_scale = pa.array([decimal.Decimal("1E+2"), decimal.Decimal("0")], pa.decimal128(5, -2))  # not in Parquet
    assert csvout.writable(negative_scale).to_pylist() == ["100", "0"]


def test_a_row_holding_only_null_is_a_quoted_empty_field_not_an_empty_line(tmp_path: Path) -> None:
    table = pa.table({"day": pa.array([dt.date(2024, 2, 29), None, dt.date(2024, 3, 1)])})
    output = convert(tmp_path, table)
    assert csv_rows(output) == [["day"], ["2024-02-29"], [""], ["2024-03-01"]]  # not [] (an empty line)
    assert imported(output, {"day": "DATE"}) == [(dt.date(2024, 2, 29),), (None,), (dt.date(2024, 3, 1),)]


def test_nanoseconds_before_1970_are_cut_down_to_microseconds(tmp_path: Path) -> None:
    """-1 ns is 1969-12-31 23:59:59.999999999: cut toward zero it would become the next day."""
    nanos = [-1, -1500, 1500]
    table = pa.table({"t": pa.array(nanos, pa.timestamp("ns")), "z": pa.array(nanos, pa.timestamp("ns", tz="+02:00"))})
    source = tmp_path / "old.parquet"
    pq.write_table(table, source)
    output = tmp_path / "old.csv"
    convert_file("parquet", source, output)
    expected = ["1969-12-31 23:59:59.999999", "1969-12-31 23:59:59.999998", "1970-01-01 00:00:00.000001"]
    assert csv_rows(output)[1:] == [[e, e] for e in expected]


def test_times_of_every_unit_are_written_with_six_fraction_digits(tmp_path: Path) -> None:
    table = pa.table(
        {
            "s": pa.array([3600], pa.time32("s")),
            "ms": pa.array([3600001], pa.time32("ms")),
            "us": pa.array([3600000001], pa.time64("us")),
            "ns": pa.array([3600000001999], pa.time64("ns")),
        }
    )
    source = tmp_path / "times.parquet"
    pq.write_table(table, source)
    output = tmp_path / "times.csv"
    convert_file("parquet", source, output)
    assert csv_rows(output)[1] == ["01:00:00.000000", "01:00:00.001000", "01:00:00.000001", "01:00:00.000001"]


def test_batches_formatted_by_several_threads_are_written_in_order_and_name_the_row_of_an_error(
    tmp_path: Path,
) -> None:
    # seven batches in one row group (the first of 64 rows), formatted by FORMATTING["parquet"] threads
    rows = 5 * BATCH_ROWS + 123
    table = pa.table({"id": range(rows), "s": [f'text {i}, "{i}"' for i in range(rows)]})
    assert csv_rows(convert(tmp_path, table))[1:] == [[str(i), f'text {i}, "{i}"'] for i in range(rows)]
    values = [float(i) for i in range(rows)]
    values[4 * BATCH_ROWS + 7] = float("-inf")
    with pytest.raises(BadInput) as caught:
        convert(tmp_path, pa.table({"id": range(rows), "x": values}))
    assert f"row {4 * BATCH_ROWS + 8}, column x: -inf cannot be loaded" in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_the_output_is_handed_to_writeback_range_after_range_and_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[tuple[int, int]] = []
    advise = os.posix_fadvise

    def recording(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            handed.append((offset, length))
        advise(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)  # the system call, watched: it still happens
    monkeypatch.setattr(csvout, "WRITEBACK_BYTES", 4096)  # every table's text starts the writeback of what is before
    rows = 3 * BATCH_ROWS
    table = pa.table({"id": range(rows), "s": [f"row {i} " * 5 for i in range(rows)]})
    output = convert(tmp_path, table, row_group_size=1000)
    assert csv_rows(output)[1:] == [[str(i), f"row {i} " * 5] for i in range(rows)]
    assert len(handed) > 10 and handed[0][0] == 0
    assert all(offset == before + length for (before, length), (offset, _) in itertools.pairwise(handed))
    assert sum(length for _, length in handed) > output.stat().st_size - 4096  # all but the tail, left to fsync


def test_a_file_without_rows_still_gives_the_header_line(tmp_path: Path) -> None:
    """Its columns are known: a LOAD job with columns=header reads them, instead of rejecting a 0-byte file."""
    empty = pa.table({"ID": pa.array([], pa.int64()), "ITEM": pa.array([], pa.string())})
    assert csv_rows(convert(tmp_path, empty)) == [["ID", "ITEM"]]


@pytest.mark.root
def test_a_parquet_file_that_decodes_to_more_than_its_file_system_holds_goes_to_error(tmp_path: Path) -> None:
    """A few hundred bytes of Parquet (one text, dictionary-encoded, in many rows) decode to gigabytes of CSV (here
    240 MB, for a file system of 96 MiB): the conversion filled the file system, failed with ENOSPC, and was tried
    again every minute without end."""
    source = tmp_path / "bomb.parquet"
    text = pa.DictionaryArray.from_arrays(pa.array([0] * 60_000, pa.int32()), pa.array(["x" * 4_000]))
    pq.write_table(pa.table({"t": text}), source, compression="zstd")
    assert source.stat().st_size < 100_000
    script = (
        "import sys\nfrom pathlib import Path\nfrom redpss.convert.convert import convert_file\n"
        "from redpss.convert.errors import BadInput\n"
        "try:\n    convert_file('parquet', Path(sys.argv[1]), Path(sys.argv[2]) / 'out.csv')\n"
        "except BadInput as exc:\n    print(exc)\n    raise SystemExit(7)\n"
    )
    small = tmp_path / "small"
    small.mkdir()
    # a file system of its own, 96 MiB, in a mount namespace of its own (gone with the process)
    command = 'mount -t tmpfs -o size=96m tmpfs "$1" && exec "$2" -c "$3" "$4" "$1"'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", command, "sh", str(small),
         sys.executable, script, str(source)],
        capture_output=True, text=True, timeout=300, check=False, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 7, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "times its" in done.stdout and "would fill the file system" in done.stdout
    assert not list(small.iterdir())  # nothing of the output left (the namespace's file system is gone anyway)


def _repeated_texts(path: Path, rows: int, width: int, *, narrow_rows: int = 0, store_schema: bool = False) -> None:
    """Rows whose text is `width` bytes from row `narrow_rows` on: four values repeated through Parquet's dictionary,
    so the file and its metadata are a few hundred KB whatever the decoded size. `store_schema`: the Arrow schema
    kept in the file, so pyarrow reads the column back dictionary-encoded."""
    texts = pa.array(["short"] + [f"v{i}-" + "x" * width for i in range(4)])
    indices = pa.array([0 if i < narrow_rows else 1 + i % 4 for i in range(rows)], pa.int32())
    table = pa.table({"id": pa.array(range(rows)), "doc": pa.DictionaryArray.from_arrays(indices, texts)})
    pq.write_table(table, path, store_schema=store_schema, row_group_size=rows)


@pytest.mark.parametrize("store_schema", [False, True], ids=["decoded-text", "dictionary"])
def test_batches_of_wide_rows_hold_about_batch_bytes_and_every_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_schema: bool
) -> None:
    """A batch was 8,192 rows however wide: 800 MB of 100 KB texts each, seven batches at once in a conversion. The
    first batch of a row group measures the rows; the batches after it hold about BATCH_BYTES, and when the rows
    widen part-way, the batches after the one they widen in shrink. Every row comes once, in order."""
    batch_bytes = 1 << 20
    monkeypatch.setattr(parquet_module, "BATCH_BYTES", batch_bytes)
    source = tmp_path / "wide.parquet"
    rows, narrow, width = 24_000, 10_000, 2_000
    _repeated_texts(source, rows, width, narrow_rows=narrow, store_schema=store_schema)
    with source.open("rb") as opened:
        batches = list(parquet_module._group_batches(pq.ParquetFile(opened), 0))
    assert list(itertools.chain.from_iterable(b["id"].to_pylist() for b in batches)) == list(range(rows))
    assert batches[0].num_rows == parquet_module.PROBE_ROWS
    fitting = batch_bytes // width  # rows of `width` bytes in a batch
    widened = next(n for n, b in enumerate(batches) if b["id"][b.num_rows - 1].as_py() >= narrow)
    if store_schema:  # the dictionary holds the wide values from the first row on: every batch is sized for them
        widened = 0
    # the first batch after a new size holds what is left of the batch it replaces: any number of rows
    after = batches[widened + 2 :]
    assert len(after) > 3 and all(fitting // 2 <= b.num_rows <= 2 * fitting for b in after[:-1]), [
        b.num_rows for b in batches
    ]
    assert all(b.num_rows <= 2 * fitting for b in batches[widened + 1 :])


def test_a_file_of_wide_rows_converts_within_bounded_memory(tmp_path: Path) -> None:
    """2,000 rows of 100 KB texts (200 MB of CSV from a file of ~500 KB): before, one batch of all of them decoded
    and formatted at once; now a few batches of about BATCH_BYTES are."""
    source = tmp_path / "wide.parquet"
    _repeated_texts(source, 2000, 100_000)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from redpss.convert.convert import convert_file, use_memory_pool\n"
        "use_memory_pool('parquet')\n"
        "rows = convert_file('parquet', Path(sys.argv[1]), Path(sys.argv[2]))\n"
        # VmHWM of this image (ru_maxrss keeps pytest's own peak across the exec: test_big_files.py)
        "peak = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "print(rows, int(peak) // 1024)\n"
    )
    output = tmp_path / "wide.csv"
    rows, peak_mib = map(int, converted_apart(script, source, output).split())
    assert rows == 2000 and output.stat().st_size > 2000 * 100_000
    assert peak_mib < 350, f"peak RSS {peak_mib} MiB"


def test_a_row_group_handed_out_whole_is_not_read_again(tmp_path: Path) -> None:
    """A new batch size reads the row group again from its start; once its last row is handed out there is nothing
    left to read, and a group of at most PROBE_ROWS rows (taken whole by the first batch) was read twice."""
    source = tmp_path / "small.parquet"
    pq.write_table(pa.table({"id": range(150)}), source, row_group_size=50)
    passes: list[int] = []
    with source.open("rb") as opened:
        parquet = pq.ParquetFile(opened)
        reading = parquet.iter_batches

        def counted(**options: Any) -> Iterator[pa.RecordBatch]:
            passes.append(options["batch_size"])
            batches: Iterator[pa.RecordBatch] = reading(**options)
            return batches

        parquet.iter_batches = counted  # pyarrow's own reading, counted
        ids = [b["id"].to_pylist() for group in range(3) for b in parquet_module._group_batches(parquet, group)]
    assert ids == [list(range(50)), list(range(50, 100)), list(range(100, 150))]
    assert passes == [parquet_module.PROBE_ROWS] * 3
