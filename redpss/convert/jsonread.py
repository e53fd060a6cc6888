"""JSON sources as a stream of Arrow tables, in bounded memory: newline-delimited JSON and one top-level array.

Both forms are cut into blocks of whole records, each parsed by pyarrow's multi-threaded JSON reader:

- NDJSON: a block ends at the last line break read.
- Array: a vectorised scan (numpy) finds the strings, the nesting depth and the commas between the array's elements;
  it replaces line breaks (in valid JSON only whitespace) by spaces and those commas by line breaks, so the block
  becomes NDJSON byte for byte: offsets in a block are offsets in the file, and error positions stay exact.

A block pyarrow refuses is parsed again record by record with Python's json module: a syntax error becomes BadInput
naming the line and character; records whose fields change type (a number here, text there) are converted as text,
numbers in the text they were sent in. Records must be JSON objects; nested objects become columns named
parent.child, arrays become JSON text. Two paths of fields that give one name (`{"a.b": 1, "a": {"b": 2}}`) are
refused, within a block and (csvout.CsvSink) between blocks.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from redpss.convert.csvout import NAME_SEPARATOR, flatten, json_text, same_name, with_paths
from redpss.convert.errors import BadInput
from redpss.convert.flatjson import DECLINES_BEFORE_GIVING_UP, FlatSchema, flat_schema, read_flat
from redpss.convert.pipeline import mapped_in_order, prefetched

# What is read at once; a block is this plus the part of a record left from the last read. Measured on 2 cores
# (200 MB of NDJSON): 2 MiB blocks and 3 parsers 114 MiB peak; 4 MiB and 2 parsers 126 MiB; 8 MiB 180 MiB and 16 MiB
# 275 MiB, all within 10% of the same CPU seconds (bigger blocks gain nothing: pyarrow's parser is the cost).
READ_BYTES = 2 << 20
# A record (an NDJSON line, an element of an array) is held whole until it ends: beyond this it is refused, or one
# line of gigabytes (a whole API response on one line) took memory without bound, and seconds squared to find its end.
MAX_RECORD_BYTES = 64 << 20
# levels of nesting a record may have: deeper ones are refused before any parser sees them (pyarrow's crashes the
# process from ~50,000 levels, a 100 KB line; flattening recursed out from ~5,000). A CSV column from a value 128
# levels down is not a thing an IMPORT needs
MAX_DEPTH = 128
# bytes of one record read by Python's parser (a record pyarrow's refused or could not keep exactly), whose objects
# take ~40 times as much memory; such blocks are parsed one at a time (_PYTHON_PATH)
PYTHON_RECORD_BYTES = 4 << 20
_PYTHON_PATH = threading.Lock()
PARSERS = 3  # blocks parsed at once, each by one thread (pyarrow's own threads cost more than they gain on a block)
_BACKSLASH, _QUOTE, _COMMA = ord("\\"), ord('"'), ord(",")
_OPEN_BRACE, _CLOSE_BRACE, _OPEN_BRACKET, _CLOSE_BRACKET = ord("{"), ord("}"), ord("["), ord("]")


class Block:
    """Whole records as NDJSON bytes, starting at `offset` in the source file; `data` is bytes, or a view from the
    start of its buffer."""

    __slots__ = ("checked", "data", "offset")

    def __init__(self, data: bytes | memoryview, offset: int, checked: bool = False) -> None:
        self.data = data
        self.offset = offset
        self.checked = checked  # one record per line known (an array's, by its scan): parse_block need not look


def detect_form(path: Path) -> str:
    """'ndjson' or 'array', from the first character that is not whitespace; BadInput for anything else."""
    offset = 0
    with path.open("rb") as source:
        while head := source.read(65536):
            if offset == 0 and head.startswith(b"\xef\xbb\xbf"):
                head, offset = head[3:], 3
            stripped = head.lstrip()
            if stripped:
                if stripped[:1] == b"[":
                    return "array"
                if stripped[:1] == b"{":
                    return "ndjson"
                raise BadInput(
                    position(path, offset + len(head) - len(stripped)),
                    "the file starts with neither '{' (one JSON object per line) nor '[' (an array of objects)",
                )
            offset += len(head)
    raise BadInput("line 1", "the file holds no JSON records (it is empty or only whitespace)")


def position(path: Path, offset: int) -> str:
    """'line L, character C' of byte `offset` (error path only: counts the line breaks before it)."""
    line, last_break = 1, -1
    done = 0
    with path.open("rb") as source:
        while done < offset:
            chunk = source.read(min(8 << 20, offset - done))
            if not chunk:
                break
            breaks = chunk.count(b"\n")
            if breaks:
                line += breaks
                last_break = done + chunk.rfind(b"\n")
            done += len(chunk)
    return f"line {line}, character {offset - last_break}"


class ReadBuffers:
    """The buffers NDJSON is read into, handed back once their block is parsed (the parsed table holds copies).
    Reading into a fresh buffer each time cost more than the read itself: the kernel maps and zeroes new pages
    (0.14 CPU s per 400 MB against 0.02 s into buffers used again)."""

    def __init__(self) -> None:
        self._free: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        while self._free:
            buffer = self._free.pop()
            if len(buffer) >= size:
                return buffer
        return bytearray(size)

    def give_back(self, block: Block) -> None:
        if isinstance(block.data, memoryview) and isinstance(block.data.obj, bytearray):
            self._free.append(block.data.obj)


def ndjson_blocks(
    path: Path,
    source: io.BufferedIOBase,
    start: int = 0,
    read_bytes: int = 0,
    buffers: ReadBuffers | None = None,
) -> Generator[Block, None, None]:
    """Blocks of whole lines. Each read goes straight into a buffer behind the part of a line left from the read
    before (joining `rest + data` copied every block once more); a block is a view of its buffer, which the
    caller may hand back to `buffers` once the block is parsed. BadInput for a line over MAX_RECORD_BYTES."""
    read_bytes = read_bytes or READ_BYTES  # looked up at the call: tests make blocks small
    buffers = buffers or ReadBuffers()
    offset = start
    rest = b""
    while True:
        buffer = buffers.take(len(rest) + read_bytes)
        buffer[: len(rest)] = rest
        got = source.readinto(memoryview(buffer)[len(rest) : len(rest) + read_bytes])
        if not got:
            break
        end = len(rest) + got
        cut = buffer.rfind(b"\n", len(rest), end) + 1  # `rest` holds no line break: only the new bytes are searched
        if cut:
            yield Block(memoryview(buffer)[:cut], offset)
            offset += cut
            rest = bytes(buffer[cut:end])
        else:
            rest = bytes(buffer[:end])
        if len(rest) > MAX_RECORD_BYTES:
            raise record_too_long(path, offset, "a line")
    if rest.strip():
        yield Block(rest, offset)


def record_too_long(path: Path, offset: int, what: str) -> BadInput:
    """The refusal of a record (`what`: a line, an element of the array) over MAX_RECORD_BYTES starting at `offset`."""
    mib, odd = divmod(MAX_RECORD_BYTES, 1 << 20)
    limit = f"{MAX_RECORD_BYTES:,} bytes" if odd else f"{mib} MiB"
    return BadInput(
        position(path, offset),
        f"{what} is longer than {limit}, more than one record may be; split it into records of that size at most",
    )


class ArrayScanner:
    """Turns the text of one top-level JSON array into NDJSON blocks (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blocks(self, source: io.BufferedIOBase, start: int = 0, read_bytes: int = 0) -> Generator[Block, None, None]:
        read_bytes = read_bytes or READ_BYTES  # looked up at the call: tests make blocks small
        offset = start  # file offset of `rest`
        depth = 0  # nesting depth at `offset`: 0 before the opening bracket, 1 between elements
        rest = b""
        closed = False
        while not closed:
            data = source.read(read_bytes)
            buffer = rest + data if rest else data
            if not data:
                raise BadInput(
                    position(self.path, offset + len(buffer)), "the file ends before the array's closing ']'"
                )
            scanned = self._scan(buffer, offset, depth)
            if scanned is None:  # no element ends in the buffer yet: read on
                if len(buffer) > MAX_RECORD_BYTES:
                    raise record_too_long(self.path, offset, "an element of the array")
                rest = buffer
                continue
            block, cut, closed = scanned
            if block and not block.isspace():  # (strip() would copy the block)
                yield Block(block, offset, checked=True)
            offset += cut
            rest = buffer[cut:]
            depth = 1
        tail = rest
        while True:
            if tail.strip():
                where = offset + len(tail) - len(tail.lstrip())
                raise BadInput(position(self.path, where), "there is more after the array's closing ']'")
            offset += len(tail)
            tail = source.read(read_bytes)
            if not tail:
                return

    def _scan(self, buffer: bytes, offset: int, depth: int) -> tuple[bytes, int, bool] | None:
        """(NDJSON bytes, bytes consumed, array closed) for the elements that end in `buffer`; None if none does."""
        data = np.frombuffer(buffer, dtype=np.uint8)
        marks = np.flatnonzero(
            (data == _QUOTE) | (data == _COMMA) | (data == _OPEN_BRACE) | (data == _CLOSE_BRACE)
            | (data == _OPEN_BRACKET) | (data == _CLOSE_BRACKET)
        )  # fmt: skip
        chars = data[marks]
        quotes = chars == _QUOTE
        _drop_escaped_quotes(data, marks, quotes)
        outside = ((np.cumsum(quotes, dtype=np.int32) & 1) == 0) & ~quotes  # structural, not inside a string
        opens = (chars == _OPEN_BRACE) | (chars == _OPEN_BRACKET)
        closes = (chars == _CLOSE_BRACE) | (chars == _CLOSE_BRACKET)
        steps = (opens.astype(np.int8) - closes.astype(np.int8)) * outside
        depths = depth + np.cumsum(steps, dtype=np.int32)  # depth after each mark
        if len(depths) and int(depths.max()) > MAX_DEPTH + 1:  # + the array's own bracket
            at = offset + int(marks[int(np.argmax(depths))])
            raise BadInput(
                position(self.path, at),
                f"a value nested more than {MAX_DEPTH} levels deep; flatten the record (at most {MAX_DEPTH} are read)",
            )
        closing = np.flatnonzero(closes & outside & (depths == 0))
        closed = bool(len(closing))
        separating = np.flatnonzero(outside & (chars == _COMMA) & (depths == 1))  # indices into marks
        if closed:
            end = int(marks[closing[0]])
            cut = end + 1
            separating = separating[separating < closing[0]]
        elif len(separating):
            cut = int(marks[separating[-1]]) + 1
        else:
            return None
        separators = marks[separating]
        # the elements that end in this buffer, as indices into marks of what bounds them: the opening bracket (or
        # the buffer's start), the separators, the closing bracket
        bounds = np.concatenate(([0 if depth == 0 else -1], separating, closing[:1]))
        values = np.flatnonzero(opens & outside & (depths == 2))  # where a value inside the array begins
        self._check_elements(data, marks, bounds, values[values < bounds[-1]], offset, whole=closed and depth == 0)
        line_breaks = np.flatnonzero((data[:cut] == 10) | (data[:cut] == 13))
        if len(line_breaks):
            # one inside a string is not JSON (it is written \n there); made a blank like those between the values,
            # it would have changed the text without a word
            inside = (np.searchsorted(marks[quotes], line_breaks) & 1).astype(bool)
            if inside.any():
                at = offset + int(line_breaks[int(np.argmax(inside))])
                raise BadInput(position(self.path, at), "a line break inside a string; JSON writes it as \\n")
        out = data[:cut].copy()
        out[line_breaks] = 32
        out[separators] = 10
        if depth == 0:
            out[int(marks[0])] = 32  # the opening bracket (detect_form saw it first)
        if closed:
            out[end] = 32
        return out.tobytes(), cut, closed

    def _check_elements(
        self,
        data: np.ndarray,
        marks: np.ndarray,
        bounds: np.ndarray,
        values: np.ndarray,
        offset: int,
        *,
        whole: bool,
    ) -> None:
        """BadInput for an element that is no record, which pyarrow's parser would take without a word or crash on:
        a missing one (only blanks between two separators, after the opening bracket or before the closing one: an
        empty line it skips), null (a row of NULLs; at a block's start it crashes the parser), a number or
        true/false, and two values without a comma between them (two rows). `bounds` are the marks around the
        elements, `values` the marks where a value begins. An element without any mark inside is found by counting
        and looked at byte by byte; in any other only blanks may come before its first mark and after its last, and
        where each element begins is looked at only when there are not as many values as elements. The blocks of an
        array need no other look (Block.checked)."""
        starts = np.where(bounds[:-1] < 0, 0, marks[np.maximum(bounds[:-1], 0)] + 1)
        ends = marks[bounds[1:]]
        markless = np.diff(bounds) == 1
        for at in np.flatnonzero(markless):
            self._markless_element(data, int(starts[at]), int(ends[at]), offset, whole and len(bounds) == 2)
        if not markless.all():
            filled = ~markless
            self._blank_between(data, starts[filled], marks[bounds[:-1][filled] + 1], offset)  # before the first mark
            self._blank_between(data, marks[bounds[1:][filled] - 1] + 1, ends[filled], offset)  # after the last
        if len(values) != len(bounds) - 1:
            twice = np.flatnonzero(np.diff(np.searchsorted(bounds, values)) == 0)
            if len(twice):
                raise BadInput(
                    position(self.path, offset + int(marks[values[twice[0] + 1]])),
                    "more than one JSON value between two commas of the array",
                )

    def _markless_element(self, data: np.ndarray, start: int, stop: int, offset: int, empty_array: bool) -> None:
        text = data[start:stop].tobytes()
        if not text.strip():
            if empty_array:
                return  # `[ ]`
            raise BadInput(
                position(self.path, offset + start),
                "an element of the array is missing (nothing between two commas, or a comma right after '[' or "
                "before ']')",
            )
        where = offset + start + len(text) - len(text.lstrip())
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise BadInput(position(self.path, where), f"invalid JSON: {getattr(exc, 'msg', exc)}") from None
        found = "null" if value is None else type(value).__name__
        raise BadInput(position(self.path, where), f"a record must be a JSON object, found {found}")

    def _blank_between(self, data: np.ndarray, starts: np.ndarray, stops: np.ndarray, offset: int) -> None:
        """BadInput for the first range [start, stop) that holds more than blanks (a value beside an element's
        object: `null {...}`, `{...} 5`). The ranges are mostly empty or a few blanks long: looked at a byte at a
        time for all of them at once, longer ones one by one."""
        for step in range(_SHORT_GAP):
            within = starts + step < stops
            if not within.any():
                return
            at = (starts + step)[within]
            stray = ~np.isin(data[at], _JSON_BLANKS)
            if stray.any():
                where = int(at[np.argmax(stray)])
                raise BadInput(
                    position(self.path, offset + where), "more than one JSON value between two commas of the array"
                )
        for start, stop in zip(starts + _SHORT_GAP, stops, strict=True):
            if start < stop and data[start:stop].tobytes().strip():
                where = int(start) + int(np.flatnonzero(~np.isin(data[start:stop], _JSON_BLANKS))[0])
                raise BadInput(
                    position(self.path, offset + where), "more than one JSON value between two commas of the array"
                )


_SHORT_GAP = 16  # blanks around an element looked at for all elements at once
_JSON_BLANKS = np.array([ord(c) for c in " \t\r\n"], dtype=np.uint8)


def _drop_escaped_quotes(data: np.ndarray, marks: np.ndarray, quotes: np.ndarray) -> None:
    """Unmark the quotes escaped by an odd run of backslashes right before them. The quotes right behind a
    backslash are found in the whole buffer at once (two comparisons, few hits); their runs are counted back one
    byte at a time for all of them at once."""
    candidates = np.flatnonzero((data[1:] == _QUOTE) & (data[:-1] == _BACKSLASH)) + 1
    if not len(candidates):
        return
    run = np.zeros(len(candidates), dtype=np.int64)
    alive = np.ones(len(candidates), dtype=bool)
    step = 1
    while alive.any():
        at = candidates - step
        alive &= at >= 0
        alive[alive] = data[at[alive]] == _BACKSLASH
        run += alive
        step += 1
    quotes[np.searchsorted(marks, candidates[run % 2 == 1])] = False


def _check_utf8(data: pa.Buffer) -> None:
    """ArrowInvalid unless the bytes are UTF-8 (pyarrow's JSON reader passes invalid bytes through into strings);
    Arrow's vectorised check, several times faster than decoding in Python."""
    offsets = pa.py_buffer(np.array([0, data.size], dtype=np.int64).tobytes())
    pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, data]).cast(pa.large_string())


def _as_text(arrow_type: pa.DataType) -> pa.DataType:
    """The type with every timestamp inside it replaced by string."""
    if pa.types.is_timestamp(arrow_type):
        return pa.string()
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(f.name, _as_text(f.type)) for f in arrow_type])
    if pa.types.is_list(arrow_type):
        return pa.list_(_as_text(arrow_type.value_type))
    return arrow_type


def _has_timestamp(arrow_type: pa.DataType) -> bool:
    return bool(_as_text(arrow_type) != arrow_type)


class FieldTypes:
    """What the blocks of one file learn about its top-level fields, for the parsing of the blocks after them.

    - Strings pyarrow took for timestamps are kept as text (JSON has no timestamp type, so its strings are written
      as sent: a date stays a date); any block may find such a field.
    - The scalar fields of the first block, with their inferred types, are given to the parser of the later blocks
      as an explicit schema: inferring them cost 7-8% of pyarrow's parse time (on the benchmark's rows; most of it
      deciding integer or DOUBLE). A block whose values do not fit them (a number where the first block had text,
      a fraction where it had integers, any change pyarrow refuses) is parsed again by inference, and the file's
      later blocks are inferred too. The one change pyarrow accepts, an integer in a DOUBLE field, is looked for:
      a block with a DOUBLE of 2**53 or more is parsed again by inference, so a big integer stays exact (and if
      it is still a DOUBLE, Python's parser takes the block: see parse_block). Nested, list and all-null fields are
      always inferred.

    Blocks are parsed by several threads at once: the options are replaced whole, never changed in place.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.first_learned = threading.Event()  # set once the first block is parsed (or failed)
        self._text: dict[str, pa.DataType] = {}
        self._known: dict[str, pa.DataType] = {}
        self._use_known = True
        self.order: dict[str, int] = {}  # the first block's fields in the order they were inferred in
        self._inferring: pajson.ParseOptions | None = None  # the text fields only
        self._knowing: pajson.ParseOptions | None = None  # the first block's scalar fields and the text fields
        self._flat: FlatSchema | None = None  # the same for the compiled parser (flatjson), while it is offered
        self._declined = 0

    def options(self) -> pajson.ParseOptions | None:
        return self._knowing if self._use_known and self._knowing is not None else self._inferring

    def inference_options(self) -> pajson.ParseOptions | None:
        return self._inferring

    def stop_knowing(self) -> None:
        self._use_known = False

    def flat(self) -> FlatSchema | None:
        """The known fields for the compiled parser when the known fields are used and it is still offered."""
        return self._flat if self._use_known else None

    def flat_outcome(self, read: bool) -> None:
        """Count the compiled parser's declined blocks in a row; from DECLINES_BEFORE_GIVING_UP on, the file's
        later blocks go to pyarrow at once (a block read starts the count again: an odd record now and then in a
        long file does not cost the file its fast path)."""
        with self._lock:
            self._declined = 0 if read else self._declined + 1
            if self._declined >= DECLINES_BEFORE_GIVING_UP:
                self._flat = None

    def learn(self, schema: pa.Schema, first: bool) -> None:
        """Remember the fields of `schema` that hold timestamps and, from the first block, its scalar fields."""
        found = {f.name: _as_text(f.type) for f in schema if _has_timestamp(f.type)}
        with self._lock:
            if first:
                self.order = {name: number for number, name in enumerate(schema.names)}
                self._known = {f.name: _as_text(f.type) for f in schema if _is_plain_scalar(f.type)}
            self._text.update(found)
            text = list(self._text.items())
            self._inferring = pajson.ParseOptions(explicit_schema=pa.schema(text)) if text else None
            known = list({**self._known, **self._text}.items())
            self._knowing = pajson.ParseOptions(explicit_schema=pa.schema(known)) if known else None
            self._flat = flat_schema(pa.schema(known)) if self._declined < DECLINES_BEFORE_GIVING_UP else None

    def in_order(self, table: pa.Table) -> pa.Table:
        """The table's columns in the order the first block's were inferred in, the fields it lacked after them
        (an explicit schema puts its fields first)."""
        order = self.order
        known = sorted((n for n in table.column_names if n in order), key=order.__getitem__)
        names = known + [n for n in table.column_names if n not in order]
        return table if names == table.column_names else table.select(names)


def _is_plain_scalar(arrow_type: pa.DataType) -> bool:
    return not (pa.types.is_nested(arrow_type) or pa.types.is_null(arrow_type))


def parse_block(path: Path, block: Block, field_types: FieldTypes | None = None, first: bool = True) -> pa.Table:
    """The block's records as one flattened table; BadInput naming line and character for invalid JSON.

    The blocks after the first wait until the first has taught `field_types` its fields, so every block of a file
    is parsed and ordered the same way whichever thread is faster (the columns' order did vary between runs)."""
    if field_types is None:
        field_types = FieldTypes()
    elif not first:
        field_types.first_learned.wait()  # json_tables parses the first block first: it is always set
    try:
        return _parse_block(path, block, field_types, first)
    finally:
        if first:
            field_types.first_learned.set()


def _parse_block(path: Path, block: Block, field_types: FieldTypes, first: bool) -> pa.Table:
    flat = None if first else _flat_table(block, field_types)
    if flat is not None:
        return flat
    lines = None if block.checked else _lines(block.data)
    if lines is not None:  # an array's elements were measured by its scan
        _refuse_deep_nesting(path, block, lines.objects)
    if lines is not None and lines.null_record:
        return _parse_by_python(path, block)  # which refuses it; pyarrow crashes on a block of `null` lines alone
    data = pa.py_buffer(block.data)
    options = pajson.ReadOptions(block_size=max(1 << 20, len(block.data) + 1), use_threads=False)
    try:
        _check_utf8(data)
        table, exact = _read(data, options, field_types)
        timestamps = _has_timestamp_field(table.schema)
        if first or timestamps:
            field_types.learn(table.schema, first)
        if timestamps:  # strings taken for timestamps: parsed again with them as text
            table, exact = _read(data, options, field_types)
    except pa.ArrowInvalid:
        return _parse_by_python(path, block)
    if lines is not None and table.num_rows > lines.filled:  # two records on one line: pyarrow takes both
        return _parse_by_python(path, block)  # which names the line
    flat = flatten(field_types.in_order(table))
    if not exact and _beyond_exact_doubles(flat):
        # pyarrow made an integer beyond int64, or beside a fraction, a DOUBLE that lost digits: Python's parser
        # keeps every number as sent (the block's values are then written as text)
        return _parse_by_python(path, block)
    return flat


def _flat_table(block: Block, field_types: FieldTypes) -> pa.Table | None:
    """The block read by the compiled parser with the known fields (flatjson), or None where that parser is not
    offered or declines it, or where a DOUBLE of it is 2^53 or more (a case _read handles, counted as declined). A
    block it reads holds one flat object per line, so the checks of the lines and their nesting pyarrow's path
    needs are not made."""
    flat = field_types.flat()
    if flat is None:
        return None
    data = pa.py_buffer(block.data)
    try:
        _check_utf8(data)
    except pa.ArrowInvalid:
        return None  # the path of every other block names the place
    table = read_flat(data, flat)
    beyond = table is not None and _beyond_exact_doubles(table)  # counted as declined: _read parses it twice more
    field_types.flat_outcome(table is not None and not beyond)
    if table is None or beyond:
        return None
    return flatten(field_types.in_order(table))


def _read(data: pa.Buffer, options: pajson.ReadOptions, field_types: FieldTypes) -> tuple[pa.Table, bool]:
    """The block parsed with what the file's blocks learned; again by inference when its values do not fit the
    first block's types. ArrowInvalid when pyarrow refuses the block. With the table, whether its DOUBLEs are
    known to be below 2^53 already (looked at here for the learned types; the caller looks at the others)."""
    parse_options = field_types.options()
    inferring = field_types.inference_options()
    try:
        table = pajson.read_json(data, read_options=options, parse_options=parse_options)
    except pa.ArrowInvalid:
        if parse_options is inferring:
            raise
        field_types.stop_knowing()
    else:
        if parse_options is inferring:
            return table, False
        if not _beyond_exact_doubles(table):
            return table, True
        # a DOUBLE field of the first block holds a number a DOUBLE cannot hold exactly: inferred, an integer
        # column of this block stays exact (as before the field's type was known); only this block
    return pajson.read_json(data, read_options=options, parse_options=inferring), False


_EXACT_IN_DOUBLE = float(2**53)  # every integer up to this has a DOUBLE of its own


_BLANKS = np.array([ord(c) for c in " \t\r"], dtype=np.uint8)
_BLANKS_OR_N = np.array([ord(c) for c in " \t\rn"], dtype=np.uint8)
_NULL_LINE = re.compile(rb"[ \t\r]*null")  # a line that starts with null: pyarrow crashes on one that starts a block


class _Lines(NamedTuple):
    filled: int  # lines holding something (a record, or what pyarrow refuses)
    null_record: bool  # a line that is `null`
    objects: int = 0  # lines known to start with `{` (the usual block: all of them; else none are counted)


def _lines(data: bytes | memoryview) -> _Lines:
    """The lines of a block, as pyarrow reads them (a line ends with LF, CRLF or CR), for what pyarrow's parser takes
    without a word: two records on one line (more rows than lines) and a line `null` (a row of NULLs, as `{}` gives;
    a block of such lines alone crashes it). A line holding an object starts with `{`. The usual block (no CR,
    every line an object) is known from a few whole-block numpy passes; any other is looked at line by line, and
    the few lines that start with neither `{` nor a line break one by one."""
    text = np.frombuffer(data, dtype=np.uint8)
    size = len(text)
    if not size:
        return _Lines(0, False)
    # where the lines after a break start: a few thousand indices, so the first characters of all lines are looked
    # at without another array of the block's size (two more such arrays and their page faults took 2 ms per
    # 2 MiB block, ~10% of a conversion's CPU)
    after = np.flatnonzero(text == 10) + 1
    breaks = len(after)
    ended = bool(breaks) and int(after[-1]) == size
    whole: bytes | bytearray = data.obj if isinstance(data, memoryview) else data  # type: ignore[assignment]
    if (
        whole.find(b"\r", 0, size) < 0  # memchr
        and text[0] == _OPEN_BRACE
        and bool(np.all(text[after[:-1] if ended else after] == _OPEN_BRACE))
    ):
        return _Lines(breaks + (not ended), False, breaks + (not ended))
    ends = text == 10
    lone_cr = text == 13
    lone_cr[:-1] &= ~ends[1:]
    starts = np.flatnonzero(ends | lone_cr) + 1
    starts = np.concatenate(([0], starts[starts < size]))
    heads = starts.copy()  # each line's first character past a few blanks
    for _ in range(8):
        indented = np.isin(text[heads], _BLANKS) & (heads < size - 1)
        if not indented.any():
            break
        heads[indented] += 1
    first = text[heads]
    blank = np.count_nonzero((first == 10) | ((heads == size - 1) & np.isin(first, _BLANKS)))
    odd = starts[np.isin(first, _BLANKS_OR_N)]  # `null`, or blanks still: looked at one by one
    null_record = any(_NULL_LINE.match(data, int(at)) for at in odd)
    return _Lines(len(starts) - int(blank), null_record)


def _refuse_deep_nesting(path: Path, block: Block, objects: int) -> None:
    """BadInput for a record nested deeper than MAX_DEPTH. A line can be no deeper than its opening brackets are
    many: counted for the whole block first (each of the `objects` lines known to start with `{` has one at least,
    so with few more than those there is no deep one: two numpy counts, ~0.4 ms per 2 MiB, for flat records; the
    bytes' own count() took 2 ms), else per line, and only a line with more than MAX_DEPTH of them is measured
    (brackets inside strings left out)."""
    data = block.data
    size = len(data)
    text = np.frombuffer(data, dtype=np.uint8)
    if np.count_nonzero(text == _OPEN_BRACE) + np.count_nonzero(text == _OPEN_BRACKET) <= MAX_DEPTH + max(
        objects - 1, 0
    ):
        return
    breaks = np.flatnonzero((text == 10) | (text == 13))
    per_line = np.bincount(np.searchsorted(breaks, np.flatnonzero((text == _OPEN_BRACE) | (text == _OPEN_BRACKET))))
    for line in np.flatnonzero(per_line > MAX_DEPTH):
        start = int(breaks[line - 1]) + 1 if line else 0
        end = int(breaks[line]) if line < len(breaks) else size
        depth, at = _deepest(text[start:end])
        if depth > MAX_DEPTH:
            raise BadInput(
                position(path, block.offset + start + at),
                f"a value nested more than {MAX_DEPTH} levels deep; flatten the record (at most {MAX_DEPTH} are read)",
            )


def _deepest(line: np.ndarray) -> tuple[int, int]:
    """(the greatest depth of brackets outside strings in `line`, where it is first reached)."""
    marks = np.flatnonzero(
        (line == _QUOTE) | (line == _OPEN_BRACE) | (line == _CLOSE_BRACE)
        | (line == _OPEN_BRACKET) | (line == _CLOSE_BRACKET)
    )  # fmt: skip
    if not len(marks):
        return 0, 0
    chars = line[marks]
    quotes = chars == _QUOTE
    _drop_escaped_quotes(line, marks, quotes)
    outside = ((np.cumsum(quotes, dtype=np.int32) & 1) == 0) & ~quotes
    opens = (chars == _OPEN_BRACE) | (chars == _OPEN_BRACKET)
    closes = (chars == _CLOSE_BRACE) | (chars == _CLOSE_BRACKET)
    depths = np.cumsum((opens.astype(np.int32) - closes.astype(np.int32)) * outside, dtype=np.int32)
    deepest = int(np.argmax(depths))
    return int(depths[deepest]), int(marks[deepest])


def _beyond_exact_doubles(table: pa.Table) -> bool:
    """Whether a DOUBLE of the table, also one inside a list or a nested record, is 2^53 or more: pyarrow made an
    integer a DOUBLE there (beside a fraction, or beyond int64), and it may have lost digits."""
    return any(_holds_inexact_double(chunk) for column in table.columns for chunk in column.chunks)


def _holds_inexact_double(values: pa.Array) -> bool:
    kind = values.type
    if pa.types.is_floating(kind):
        extremes = pc.min_max(values).as_py()
        low, high = extremes["min"], extremes["max"]
        if low is None or not (math.isfinite(low) and math.isfinite(high)):
            return False  # all NULL, or an infinity: refused by the CSV writer, naming row and column
        return bool(low <= -_EXACT_IN_DOUBLE or high >= _EXACT_IN_DOUBLE)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _holds_inexact_double(values.flatten())
    if pa.types.is_struct(kind):
        return any(_holds_inexact_double(field) for field in values.flatten())
    return False


def _has_timestamp_field(schema: pa.Schema) -> bool:
    return any(_has_timestamp(f.type) for f in schema)


class _SameName(ValueError):
    """Two paths of fields give the column name `name`."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _flat_into(
    record: dict[str, object], parents: tuple[str, ...], row: dict[str, object], paths: dict[str, tuple[str, ...]]
) -> None:
    """The record's fields into `row` by their flattened names; `paths` holds the path of each name the block has
    met, so a name made by another path (in this record or an earlier one) raises _SameName instead of taking the
    other's place."""
    for key, value in record.items():
        path = (*parents, key)
        if isinstance(value, dict):
            _flat_into(value, path, row, paths)
            continue
        name = NAME_SEPARATOR.join(path)
        if paths.setdefault(name, path) != path:
            raise _SameName(name)
        row[name] = value


class _Number(str):
    """A JSON number with a fraction or an exponent, in the text it was sent in: as a float it would be written
    otherwise (12345678901234567.25 as 1.2345678901234568e+16, 1.50 as 1.5, 1E2 as 100.0)."""


def _text(value: object) -> str | None:
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _json_as_sent(value)
    return json.dumps(value)


def _json_as_sent(value: object) -> str:
    """Compact JSON text of a parsed value (as csvout.json_text), its numbers in the text they were sent in."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_as_sent(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_text(key)}:{_json_as_sent(item)}" for key, item in value.items()) + "}"
    return json_text(value)


class _NotFinite(ValueError):
    pass


def _constant(name: str) -> None:
    """NaN (accepted like pyarrow's parser does) is NULL, as in a float column; infinity is refused."""
    if name != "NaN":
        raise _NotFinite(f"the record holds {name}, which")


def _finite_number(text: str) -> _Number:
    """The number as sent, once it is known to fit a DOUBLE (1e400 does not: refused like infinity)."""
    if not math.isfinite(float(text)):
        raise _NotFinite(f"the record holds {text}, a number beyond DOUBLE's range, which")
    return _Number(text)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _holds_lone_surrogate(value: object) -> bool:
    """Whether a decoded JSON value holds a string that UTF-8 cannot encode (a surrogate escape without its pair)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    return False


def _checked_record(record: object, text: str, path: Path, at: int) -> dict[str, object]:
    """The record (its text `text`, at byte `at` of `path`) if it is an object of text UTF-8 can hold; BadInput
    saying what it is instead."""
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(record):
        raise BadInput(
            position(path, at),
            "a string holds half of a UTF-16 surrogate pair (an escape such as \\ud800 without its partner), "
            "which is no character; send the pair or the character itself",
        )
    if not isinstance(record, dict):
        found = "null" if record is None else type(record).__name__
        raise BadInput(position(path, at), f"a record must be a JSON object, found {found}")
    return record


def _parse_by_python(path: Path, block: Block) -> pa.Table:
    """The slow path for a block pyarrow refused: find the bad record, or convert records of mixed types as text.
    Python's objects take ~40 times a record's bytes: one block at a time, records of at most PYTHON_RECORD_BYTES."""
    with _PYTHON_PATH:
        return _parse_in_python(path, block)


def _parse_in_python(path: Path, block: Block) -> pa.Table:
    columns: dict[str, list[str | None]] = {}
    paths: dict[str, tuple[str, ...]] = {}
    count = 0
    decoder = json.JSONDecoder(parse_constant=_constant, parse_float=_finite_number)
    position_in_block = 0
    for line in bytes(block.data).split(b"\n"):
        start = position_in_block
        position_in_block += len(line) + 1
        body = line.lstrip()
        if not body.strip():
            continue
        at = block.offset + start + len(line) - len(body)  # file offset of the record's first character
        if len(body) > PYTHON_RECORD_BYTES:
            raise BadInput(
                position(path, at),
                f"a record of {len(body) >> 20} MiB that pyarrow's parser refused or could not keep exactly (an "
                f"integer beyond 2^53, values of mixed types); such a record is read up to "
                f"{PYTHON_RECORD_BYTES >> 20} MiB: split it",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(position(path, at + exc.start), "the text is not UTF-8") from None
        try:
            record, end = decoder.raw_decode(text)
        except json.JSONDecodeError as exc:
            raise BadInput(position(path, at + len(text[: exc.pos].encode())), f"invalid JSON: {exc.msg}") from None
        except _NotFinite as exc:
            raise BadInput(
                position(path, at), f"{exc} cannot be loaded (Exasol's DOUBLE has no infinity); send null or a number"
            ) from None
        if text[end:].strip():
            where = at + len(text[:end].encode()) + len(text[end:]) - len(text[end:].lstrip())
            raise BadInput(position(path, where), "more than one JSON value on this line")
        row: dict[str, object] = {}
        try:
            _flat_into(_checked_record(record, text, path, at), (), row, paths)
        except _SameName as exc:
            raise same_name(exc.name, position(path, at)) from None
        for name, value in row.items():
            values = columns.get(name)
            if values is None:
                values = columns[name] = [None] * count
            values.append(_text(value))
        count += 1
        for values in columns.values():
            if len(values) < count:
                values.append(None)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return with_paths(table, {name: list(keys) for name, keys in paths.items() if NAME_SEPARATOR in name})


def json_tables(path: Path, source: io.BufferedIOBase) -> Iterator[pa.Table]:
    """The file's records as flattened tables, one per block, in order; PARSERS blocks are parsed at once while the
    caller writes the one before."""
    form = detect_form(path)
    start = 3 if source.read(3) == b"\xef\xbb\xbf" else 0
    source.seek(start)
    # an array's scan (about as much CPU as parsing) runs in a thread of its own, one block ahead of the parsers
    buffers = ReadBuffers()
    blocks = (
        ndjson_blocks(path, source, start, buffers=buffers)
        if form == "ndjson"
        else prefetched(ArrayScanner(path).blocks(source, start))
    )
    field_types = FieldTypes()

    def parse(numbered: tuple[int, Block]) -> pa.Table:
        number, block = numbered
        return parse_block(path, block, field_types, number == 0)

    with ThreadPoolExecutor(PARSERS, thread_name_prefix="convert-parse") as parsers:
        parsed = mapped_in_order(parsers, parse, enumerate(blocks), PARSERS - 1)
        try:
            for (_, block), table in parsed:
                buffers.give_back(block)  # the parsed table holds copies: the next read may reuse it
                yield table
        finally:
            parsed.close()
            blocks.close()  # stops the array scan's thread
