"""Arrow tables to the CSV Exasol's IMPORT reads, written by pyarrow's C++ CSV writer.

The dialect (docs/convert.md): UTF-8, LF row ends, a header line, fields separated by commas, text fields and
header names in double quotes with quotes doubled (RFC 4180), NULL as an empty field, BOOLEAN 1/0, DECIMAL with a
dot and its scale, DATE YYYY-MM-DD, TIMESTAMP YYYY-MM-DD HH:MM:SS.ffffff (zoned values in UTC), binary as lower-case
hex, lists, maps and structs inside lists as JSON text. Nested structs become columns named parent.child.

A value no Exasol column can store (infinity; a date or timestamp outside the years 1 to 9999) is refused, naming its
row and column, never written changed or dropped.

Two paths of fields may give one column name (`{"a.b": 1}` and `{"a": {"b": 2}}`): `flatten` records the path of
each name holding a NAME_SEPARATOR in the table's schema metadata, and `CsvSink` refuses a name that comes again by
another path, also in a later block.

Columns may appear part-way through a file (JSON): `CsvSink` starts a new segment when the column list grows and,
at the end, pads the rows of earlier segments with empty fields, so the header names every column once and no value
is lost.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from redpss.convert.errors import BadInput
from redpss.core.setaside import printable

NAME_SEPARATOR = "."  # {"a": {"b": 1}} -> column "a.b"
_BODY_OPTIONS = pacsv.WriteOptions(include_header=False, batch_size=8192)
_PAD_BLOCK = 8 << 20
WRITEBACK_BYTES = 32 << 20  # written, then handed to the kernel's writeback (see _Output)
_QUOTE, _LF, _COMMA = ord('"'), ord("\n"), ord(",")


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")  # fixed-point with its scale (str() gives 1E-8)
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_text(value: object) -> str:
    """A nested value as compact JSON (the text a list, map or nested record becomes in one CSV field)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _plain(value: object, arrow_type: pa.DataType) -> object:
    """Arrow's Python form of a nested value with maps as JSON objects (to_pylist gives them as key/value pairs)."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return None  # a missing number, as at the top level (docs/convert.md)
        raise _Infinite(value)  # not a missing value: refused, as at the top level
    if pa.types.is_map(arrow_type):
        return {str(k): _plain(v, arrow_type.item_type) for k, v in value}  # type: ignore[attr-defined]
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        return [_plain(v, arrow_type.value_type) for v in value]  # type: ignore[attr-defined]
    if pa.types.is_struct(arrow_type):
        return {f.name: _plain(value[f.name], f.type) for f in arrow_type}  # type: ignore[index]
    return value


class _Infinite(ValueError):
    """An infinity inside a nested value: JSON text has none, and writing null would drop a value."""


def _as_json_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Nested values as JSON text: lists of text, numbers and booleans by Arrow's compute functions, the rest
    (and text with rare control characters) value by value in Python. Unloadable for an infinity inside one."""
    if isinstance(column, pa.ChunkedArray):
        chunks, offset = [], 0
        for chunk in column.chunks:
            try:
                chunks.append(_as_json_text(chunk))
            except Unloadable as exc:
                raise Unloadable(offset + exc.row, exc.what) from None
            offset += len(chunk)
        return pa.chunked_array(chunks, pa.string())
    fast = _list_as_json(column)
    if fast is not None:
        return fast
    arrow_type = column.type
    texts: list[str | None] = []
    for row, value in enumerate(column.to_pylist()):
        try:
            texts.append(None if value is None else json_text(_plain(value, arrow_type)))
        except _Infinite as exc:
            raise Unloadable(
                row,
                f"{exc.args[0]} inside a nested value cannot be loaded (JSON text has no infinity); send null or a "
                "finite number instead",
            ) from None
    return pa.array(texts, pa.string())


_JSON_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_OTHER_CONTROLS = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"


def _json_scalars(values: pa.Array) -> pa.Array | None:
    """Each value as JSON text ('null' for null); None for a type (or text) left to the Python path."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if pc.any(pc.match_substring_regex(values, _OTHER_CONTROLS)).as_py():
            return None
        text = values
        for plain, escaped in _JSON_ESCAPES:
            text = pc.replace_substring(text, plain, escaped)
        text = pc.binary_join_element_wise('"', text, '"', "")
    elif pa.types.is_integer(t):
        text = pc.cast(values, pa.string())
    elif pa.types.is_floating(t):
        if not pc.all(pc.fill_null(pc.is_finite(values), True)).as_py():  # NaN and infinity are not JSON
            return None
        text = pc.cast(values, pa.string())
    elif pa.types.is_boolean(t):
        text = pc.if_else(values, "true", "false")
    elif pa.types.is_null(t):
        text = pa.nulls(len(values), pa.string())
    else:
        return None
    return pc.fill_null(pc.cast(text, pa.string()), "null")


def _list_as_json(column: pa.Array) -> pa.Array | None:
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        return None
    items = _json_scalars(column.values)
    if items is None:
        return None
    offsets = column.offsets
    first = offsets[0].as_py()
    items = items.slice(first, offsets[-1].as_py() - first)
    offsets = pc.subtract(offsets, pa.scalar(first, offsets.type))  # a fresh array: from_arrays refuses a slice
    kind = pa.ListArray if pa.types.is_list(column.type) else pa.LargeListArray
    texts = kind.from_arrays(offsets, items, mask=column.is_null())
    return pc.binary_join_element_wise("[", pc.binary_join(texts, ","), "]", "")


class Unloadable(ValueError):
    """A column holds a value no Exasol type stores; `row` counts from 0 in the column, `what` says what the value is
    and what to send instead."""

    def __init__(self, row: int, what: str) -> None:
        self.row = row
        self.what = what
        super().__init__(f"row {row}: {what}")


def _finite(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """NaN becomes NULL (pandas and numpy write NaN for a missing value; Exasol's DOUBLE has no NaN); infinity
    raises Unloadable (a value Exasol cannot store, not a missing one). One vectorised check when all are finite."""
    finite = pc.is_finite(column)
    if pc.all(finite).as_py() is not False:  # True, or None when every value is NULL
        return column
    infinite = pc.is_inf(column)
    if pc.any(infinite).as_py():
        row = pc.index(infinite, True).as_py()
        value = column[row].as_py()
        raise Unloadable(
            row, f"{value} cannot be loaded (Exasol's DOUBLE has no infinity); send NULL or a finite number instead"
        )
    return pc.if_else(finite, column, pa.scalar(None, column.type))


# Exasol's DATE and TIMESTAMP hold the years 1 to 9999: the days from 1970-01-01 to their first and last day
_FIRST_DAY, _LAST_DAY = (
    (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days,
    (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days,
)
_PER_DAY = {"day": 1, "s": 86_400, "ms": 86_400 * 10**3, "us": 86_400 * 10**6, "ns": 86_400 * 10**9}
_UNIT_NAMES = {"day": "days", "s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_INT64 = (-(2**63), 2**63 - 1)


def _within_exasol_years(column: pa.ChunkedArray | pa.Array, unit: str, kind: str) -> None:
    """Unloadable for the first date or timestamp (a count of `unit` from 1970-01-01) outside the years 1 to 9999.
    Beyond them the CSV writer writes a year Exasol refuses (10000-01-01), or text (`<value out of range: ...>`),
    and a cast to microseconds would wrap (2**62 ms became 1970-01-01). One vectorised check; nanoseconds (years
    1677 to 2262) need none. The usual answer comes from the column's smallest and largest value alone (one pass,
    nothing the size of the column allocated: a mask per batch held ~40 MiB more in the formatting threads' pools)."""
    low = max(_FIRST_DAY * _PER_DAY[unit], _INT64[0])
    high = min((_LAST_DAY + 1) * _PER_DAY[unit] - 1, _INT64[1])
    if (low, high) == _INT64:
        return
    extremes = pc.min_max(column)
    smallest, largest = extremes["min"], extremes["max"]
    if not smallest.is_valid or (low <= smallest.value and largest.value <= high):
        return  # every value NULL, or all within the years
    counts = pc.cast(column, pa.int32() if pa.types.is_date32(column.type) else pa.int64())  # the stored counts
    outside = pc.or_(pc.less(counts, low), pc.greater(counts, high))
    if not pc.any(outside).as_py():  # False, or None when every value is NULL
        return
    row = pc.index(outside, True).as_py()
    raise Unloadable(
        row,
        f"the {kind} {counts[row].as_py()} ({_UNIT_NAMES[unit]} from 1970-01-01) is outside the years 1 to 9999, "
        f"all that Exasol's {kind.upper()} holds; send NULL or a {kind} within them instead",
    )


def _as_hex(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pa.array([None if v is None else v.hex() for v in column.to_pylist()], pa.string())


def _utc_microseconds(column: pa.ChunkedArray | pa.Array, unit: str) -> pa.ChunkedArray | pa.Array:
    """Zoned values are stored as UTC instants: dropping the zone keeps UTC. Nanoseconds are cut to micro, down (a
    cast cuts toward zero, which moves an instant before 1970 up, even into the next day). Unloadable for a value
    outside Exasol's years; within them the cast to microseconds is exact, and a safe cast would say if it was not."""
    utc = pc.cast(column, pa.timestamp(unit))
    _within_exasol_years(utc, unit, "timestamp")
    if unit == "ns":
        utc = pc.floor_temporal(utc, unit="microsecond")
    return pc.cast(utc, pa.timestamp("us"))


def _dated(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A TIMESTAMP column in UTC microseconds, a DATE column as it is; either refused beyond Exasol's years."""
    t = column.type
    if pa.types.is_timestamp(t):
        return _utc_microseconds(column, t.unit)
    _within_exasol_years(column, "day" if pa.types.is_date32(t) else "ms", "date")
    return column


def _fixed_point(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Decimals as digits with a dot and their scale (0.00000001, 100). Arrow's text of a decimal is in E-notation
    when its exponent is below -6 (1E-8, 0E-8: a scale of 7 or more) or its scale negative (1E+2): those values are
    written by Python's fixed-point format, the others as Arrow writes them. A column of a scale from 0 to 6 is
    never in E-notation: it stays a decimal column, which the CSV writer formats itself, unquoted; the others become
    text (quoted in the CSV, which IMPORT reads into a DECIMAL all the same)."""
    if 0 <= column.type.scale < 7:
        return column
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([_fixed_point(chunk) for chunk in column.chunks], pa.string())
    text = pc.cast(column, pa.string())
    exponent = pc.match_substring(text, "E")
    if not pc.any(exponent).as_py():
        return text
    fixed = [format(value, "f") for value in column.filter(exponent).to_pylist()]
    return pc.replace_with_mask(text, exponent, pa.array(fixed, pa.string()))


def writable(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:  # noqa: PLR0911 - one per type
    """The column in a type pyarrow's CSV writer writes the way Exasol reads it (see the module docstring)."""
    t = column.type
    if pa.types.is_dictionary(t):
        return writable(column.cast(t.value_type))
    if isinstance(t, pa.ExtensionType):
        storage = (
            column.storage
            if isinstance(column, pa.Array)
            else pa.chunked_array([c.storage for c in column.chunks], t.storage_type)
        )
        return writable(storage)
    if pa.types.is_boolean(t):
        return pc.cast(column, pa.int8())
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return _dated(column)
    if pa.types.is_decimal(t):
        return _fixed_point(column)
    if pa.types.is_time(t):  # HH:MM:SS.ffffff whatever the unit (nanoseconds cut; a time of day is never negative)
        return pc.cast(column, pa.time64("us"), safe=False)
    if pa.types.is_float16(t):
        return writable(pc.cast(column, pa.float32()))
    if pa.types.is_floating(t):
        return _finite(column)
    if pa.types.is_duration(t):
        return pc.cast(column, pa.int64())  # a count of the type's unit (the header says which column, docs say unit)
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return _as_hex(column)
    if pa.types.is_string_view(t):
        return pc.cast(column, pa.string())
    if pa.types.is_nested(t):  # lists, maps, unions, and structs left inside lists
        return _as_json_text(column)
    return column


def same_name(name: str, where: str = "") -> BadInput:
    """The refusal of a file where two paths of fields become one column name."""
    return BadInput(
        f"{where}, column {printable(name)}" if where else f"column {printable(name)}",
        f"two fields become the column name {name!r} (a field named with a {NAME_SEPARATOR!r} beside a nested "
        "record of the same path); rename one of them",
    )


PATHS_KEY = b"redpss.paths"  # schema metadata: {column name: its path of field names}, for names holding a "."


def with_paths(table: pa.Table, paths: dict[str, list[str]]) -> pa.Table:
    """The table with the paths its column names were made of (only those holding a NAME_SEPARATOR: a name without
    one has one path only), for CsvSink to compare with the names of other blocks."""
    if not paths:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}), PATHS_KEY: json.dumps(paths).encode()})


def column_paths(table: pa.Table) -> dict[str, list[str]]:
    metadata = table.schema.metadata
    return json.loads(metadata[PATHS_KEY]) if metadata and PATHS_KEY in metadata else {}


def _leaf_paths(field: pa.Field, parents: list[str]) -> list[list[str]]:
    """The field paths of the columns a field becomes, in the order Table.flatten gives them."""
    path = [*parents, field.name]
    if not pa.types.is_struct(field.type):
        return [path]
    return [leaf for child in field.type for leaf in _leaf_paths(child, path)]


def flatten(table: pa.Table) -> pa.Table:
    """Struct columns become one column per field, named parent.child, to any depth; names must stay unique. The
    paths of names holding a NAME_SEPARATOR go with the table (`with_paths`)."""
    paths = [leaf for field in table.schema for leaf in _leaf_paths(field, [])]
    rows = table.num_rows
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    if not table.num_columns and rows:
        # only empty records ({"b": {}}): pyarrow's flatten leaves no column and with it no row; the rows are kept
        # (rows without a field: NULLs beside the file's other columns)
        table = pa.Table.from_batches([pa.RecordBatch.from_struct_array(pa.nulls(rows, pa.struct([])))])
    names = table.column_names
    if len(set(names)) != len(names):
        seen: set[str] = set()
        twice = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
        raise same_name(twice)
    return with_paths(table, {name: path for name, path in zip(names, paths, strict=True) if NAME_SEPARATOR in name})


class _InColumn(Exception):
    def __init__(self, name: str, error: Unloadable) -> None:
        self.name = name
        self.error = error


def _writable_named(table: pa.Table, name: str) -> pa.ChunkedArray | pa.Array:
    try:
        return writable(table[name])
    except Unloadable as exc:
        raise _InColumn(name, exc) from None


def _nulls_quoted(table: pa.Table) -> pa.Table:
    """A one-column table whose NULLs are written as `""`: a NULL alone in its row would be an empty line, which
    Exasol's IMPORT may skip (a row lost); it reads `""` as NULL. The column is written as text, its other values
    quoted: the writer's own text of each value (it casts to string the same way), which IMPORT reads alike."""
    column = pc.fill_null(pc.cast(table.column(0), pa.string()), "")
    return pa.table([column], names=table.column_names)


def quoted_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def header_line(names: list[str]) -> bytes:
    return (",".join(quoted_name(n) for n in names) + "\n").encode()


class _Output:
    """A file written front to back whose pages are handed to the kernel's writeback every WRITEBACK_BYTES.

    Without it the final fsync wrote the whole file at the end: 0.5 s of a 3 s conversion of 1.1 GB of CSV, after
    the work instead of beside it, and a big file left GBs of dirty pages that the kernel then flushes all at once
    on a server shared with the database. POSIX_FADV_DONTNEED on the range just written starts its writeback without
    waiting; Linux drops only the pages of the range already clean, which in a range just written are few unless the
    kernel was flushing already (measured: 1.2 of 1.3 GB still cached after a conversion, for the LOAD that reads it).
    sync_file_range(SYNC_FILE_RANGE_WRITE) would drop none, but Python offers it only through ctypes."""

    def __init__(self, path: Path) -> None:
        self.file: BinaryIO = path.open("wb")
        self._written = 0
        self._handed = 0

    def write(self, data: bytes | pa.Buffer) -> None:
        self.file.write(data)
        self._written += len(data)
        if self._written - self._handed >= WRITEBACK_BYTES:
            self.file.flush()
            os.posix_fadvise(self.file.fileno(), self._handed, self._written - self._handed, os.POSIX_FADV_DONTNEED)
            self._handed = self._written

    def close(self) -> None:
        self.file.close()


class _Segment:
    def __init__(self, path: Path, width: int) -> None:
        self.path = path
        self.width = width
        self.output = _Output(path)


class Arranged:
    """A table with the sink's columns in the sink's order, for the segment that was current when it was arranged;
    `first_row` counts the rows arranged before it (for the row number of an error)."""

    __slots__ = ("first_row", "segment", "table")

    def __init__(self, table: pa.Table, segment: _Segment, first_row: int) -> None:
        self.table = table
        self.segment = segment
        self.first_row = first_row


class CsvSink:
    """The CSV of one conversion, under a temporary name until the caller publishes it.

    Three steps per table, so that formatting (most of the work) can run in several threads: `arrange(table)` (in
    order) takes a flattened table in any column order, appends columns not seen before to the column list and
    gives the table in the sink's columns; `formatted(arranged)` (any thread, any order) is its CSV text;
    `append(arranged, text)` (in order) writes it. `finish()` returns the completed file (header first), fsynced.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.columns: list[str] = []
        self._index: dict[str, int] = {}
        self._segments: list[_Segment] = []
        self.rows = 0  # appended
        self._arranged_rows = 0
        self._header_bytes = 0
        self._fieldless = 0  # records without any field ({}) seen before the first column: rows of NULLs once known
        self._paths: dict[str, list[str]] = {}  # column name -> the path of fields it was first made of
        self._writing: _Segment | None = None  # the segment `append` wrote last

    def arrange(self, table: pa.Table) -> list[Arranged]:
        """The table in the sink's columns: none while no record had a field yet, two when the rows of such records
        are known to need the first columns. BadInput when a column name comes by another path of fields than
        before."""
        if not table.num_columns and not self.columns:
            self._fieldless += table.num_rows  # no column to write them in yet
            return []
        for name, path in column_paths(table).items():
            if self._paths.setdefault(name, path) != path:
                raise same_name(name)
        new = [n for n in table.column_names if n not in self._index]
        if new or not self._segments:
            for name in new:
                self._index[name] = len(self.columns)
                self.columns.append(name)
            self._open_segment()
        arranged = []
        if self._fieldless:
            fieldless, self._fieldless = self._fieldless, 0
            arranged.append(self._arranged(pa.table([pa.nulls(fieldless)] * len(self.columns), names=self.columns)))
        if table.column_names != self.columns:
            present = set(table.column_names)
            arrays = [table[n] if n in present else pa.nulls(table.num_rows) for n in self.columns]
            table = pa.table(arrays, names=self.columns)
        arranged.append(self._arranged(table))
        return arranged

    def _arranged(self, table: pa.Table) -> Arranged:
        arranged = Arranged(table, self._segments[-1], self._arranged_rows)
        self._arranged_rows += table.num_rows
        return arranged

    @staticmethod
    def formatted(arranged: Arranged) -> pa.Buffer:
        """The rows as CSV text (no header); BadInput naming row and column of a value no CSV field can hold."""
        table = arranged.table
        try:
            table = pa.table([_writable_named(table, n) for n in table.column_names], names=table.column_names)
        except _InColumn as exc:
            raise BadInput(
                f"row {arranged.first_row + exc.error.row + 1}, column {printable(exc.name)}", exc.error.what
            ) from None
        if table.num_columns == 1 and table.column(0).null_count:
            table = _nulls_quoted(table)
        text = pa.BufferOutputStream()
        pacsv.write_csv(table, text, _BODY_OPTIONS)
        return text.getvalue()

    def append(self, arranged: Arranged, text: pa.Buffer) -> None:
        """Write the text in its segment. Tables come in order, so once one of a later segment comes the earlier
        segment is complete and closed: a file whose columns grow in thousands of blocks held a descriptor per
        segment until it ended, and ran out of them (EMFILE) at each try."""
        segment = arranged.segment
        if segment is not self._writing:
            if self._writing is not None:
                self._writing.output.close()
            self._writing = segment
        segment.output.write(text)
        self.rows += arranged.table.num_rows

    def _open_segment(self) -> None:
        number = len(self._segments)
        path = self.target if number == 0 else self.target.with_name(f"{self.target.name}.{number}")
        segment = _Segment(path, len(self.columns))
        if number == 0:
            header = header_line(self.columns)
            segment.output.write(header)
            self._header_bytes = len(header)
        self._segments.append(segment)

    def finish(self) -> Path:
        """Close and fsync the output; with several segments, rewrite it once with every column in every row.
        BadInput when the source had records but none of them a field: no CSV can hold them."""
        if self._fieldless:
            raise BadInput(
                "every record",
                f"none of the {self._fieldless} record(s) has a field ({{}} in JSON, no column in Parquet), so there "
                "is no column to write them in; give the records their fields",
            )
        for segment in self._segments:
            segment.output.close()
        if len(self._segments) > 1:
            self._join()
        elif not self._segments:
            self.target.write_bytes(b"")
        with self.target.open("rb") as done:
            os.fsync(done.fileno())
        return self.target

    def discard(self) -> None:
        for segment in self._segments:
            segment.output.close()
            segment.path.unlink(missing_ok=True)
        joined = self.target.with_name(self.target.name + ".joined")
        joined.unlink(missing_ok=True)

    def _join(self) -> None:
        width = len(self.columns)
        joined = self.target.with_name(self.target.name + ".joined")
        out = _Output(joined)
        try:
            out.write(header_line(self.columns))
            for number, segment in enumerate(self._segments):
                skip = self._header_bytes if number == 0 else 0
                _copy_padded(segment.path, skip, width - segment.width, out.write)
        finally:
            out.close()
        for segment in self._segments:
            segment.path.unlink()
        joined.replace(self.target)


def _copy_padded(path: Path, skip: int, missing: int, write: Callable[[bytes], Any]) -> None:
    """Copy CSV rows, appending `missing` empty fields to each. A row ends at an LF outside quotes: the writer
    doubles every quote inside a field, so an even number of quotes before an LF means it ends a row."""
    pad = np.full(missing, _COMMA, dtype=np.uint8)
    quotes_before = 0
    with path.open("rb") as source:
        source.seek(skip)
        while block := source.read(_PAD_BLOCK):
            data = np.frombuffer(block, dtype=np.uint8)
            if not missing:
                write(block)
                continue
            marks = np.flatnonzero((data == _QUOTE) | (data == _LF))
            is_quote = data[marks] == _QUOTE
            parity = (np.cumsum(is_quote) + quotes_before) % 2
            quotes_before = int(parity[-1]) if len(parity) else quotes_before
            ends = marks[(~is_quote) & (parity == 0)]
            write(np.insert(data, np.repeat(ends, missing), np.tile(pad, len(ends))).tobytes())
