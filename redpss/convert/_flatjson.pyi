"""The compiled parser of flat NDJSON records (_flatjson.c); see redpss.convert.flatjson."""

from _typeshed import ReadableBuffer

# a column: its validity bitmap (None: no NULL), values (string: int32 offsets), string bytes, NULL count
Column = tuple[ReadableBuffer | None, ReadableBuffer, ReadableBuffer | None, int]

def flat_records(
    data: ReadableBuffer, names: tuple[bytes, ...], kinds: bytes, /
) -> tuple[int, list[Column]] | None: ...
