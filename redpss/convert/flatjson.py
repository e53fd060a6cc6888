"""The fast path of JSON2CSV's NDJSON blocks: flat records of known fields, read by the compiled parser
(`_flatjson.c`) into Arrow arrays without a copy.

pyarrow's JSON reader alone costs more CPU per MB than polars' whole conversion. The file's first block is read
by pyarrow (its types inferred); the later blocks are given to this parser with the first block's fields. It
reads a block only when it can read it exactly as pyarrow would with those fields as its explicit schema, and
declines anything else (a new field, another type, a nested value, a line pyarrow reads in its own way), which
pyarrow then reads as before. A file whose blocks it declines twice in a row stops being offered to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

try:
    from redpss.convert import _flatjson
except ImportError:  # a source tree whose extension is not built: pyarrow reads every block (test_flatjson checks)
    _flatjson = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

    from redpss.convert._flatjson import Column

_KINDS = {pa.int64(): b"i", pa.float64(): b"d", pa.bool_(): b"b", pa.string(): b"s"}
DECLINES_BEFORE_GIVING_UP = 2  # blocks of one file declined in a row before its later ones go to pyarrow at once


class FlatSchema(NamedTuple):
    """The fields the parser reads, as it takes them."""

    schema: pa.Schema
    names: tuple[bytes, ...]
    kinds: bytes


def available() -> bool:
    return _flatjson is not None


def flat_schema(schema: pa.Schema) -> FlatSchema | None:
    """The schema for the parser, or None when it has no field or a field of a type the parser does not read."""
    if _flatjson is None or not len(schema) or any(field.type not in _KINDS for field in schema):
        return None
    names = tuple(name.encode() for name in schema.names)
    return FlatSchema(schema, names, b"".join(_KINDS[field.type] for field in schema))


def read_flat(data: ReadableBuffer, flat: FlatSchema) -> pa.Table | None:
    """The block's records as a table of `flat`'s fields, or None when the parser declines the block."""
    found = _flatjson.flat_records(data, flat.names, flat.kinds)
    if found is None:
        return None
    rows, columns = found
    arrays = [_array(field.type, rows, column) for field, column in zip(flat.schema, columns, strict=True)]
    return pa.Table.from_arrays(arrays, schema=flat.schema)


def _array(arrow_type: pa.DataType, rows: int, column: Column) -> pa.Array:
    validity, values, text, nulls = column
    buffers = [None if validity is None else pa.py_buffer(validity), pa.py_buffer(values)]
    if text is not None:
        buffers.append(pa.py_buffer(text))
    return pa.Array.from_buffers(arrow_type, rows, buffers, null_count=nulls)
