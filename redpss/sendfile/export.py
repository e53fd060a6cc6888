"""The export: the database streams CSV through pyexasol's HTTP transport; we write it to a file as it comes.

CSV is written byte for byte as the database sends it (Exasol's dialect: LF line ends, NULL as an empty field,
BOOLEAN 1/0, TIMESTAMP quoted). Parquet is made from the same stream: pyarrow's streaming CSV reader, typed from the
column metadata the database reports for the query, writes one row group per block, so memory stays bounded by the
block size whatever the size of the table. A size limit (mail delivery) stops the export as soon as it is passed.
The file is not fsync'd: it is scratch for one delivery, and a request cut short by a crash is exported again from
its spooled request at the next start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1024 * 1024
BLOCK = 16 * 1024 * 1024  # pyarrow CSV block: one Parquet row group each (~ hundreds of thousands of rows)


class ExportTooLarge(Exception):
    """The file passed the size limit of its destination; the export was stopped there."""


@dataclass(frozen=True)
class Exported:
    path: Path
    rows: int
    bytes: int


def column_types(connection: Any, query: str) -> list[tuple[str, dict[str, Any]]]:
    """The query's columns with the database's type metadata (no row is read)."""
    statement = connection.execute(f"SELECT * FROM ({query}) WHERE FALSE")  # noqa: S608 - request.query()
    try:
        return list(statement.columns().items())
    finally:
        statement.close()


def arrow_type(meta: dict[str, Any]) -> Any:
    """The Arrow type of an Exasol column: exact numbers stay exact, dates and timestamps stay typed."""
    import pyarrow as pa  # noqa: PLC0415 - only the daemon's worker needs pyarrow

    kind = str(meta.get("type", "")).upper()
    if kind == "DECIMAL":
        precision, scale = int(meta.get("precision", 36)), int(meta.get("scale", 0))
        if scale == 0 and precision <= 18:
            return pa.int64()
        return pa.decimal128(precision, scale)
    return {
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"),
    }.get(kind, pa.string())  # CHAR, VARCHAR, INTERVAL, GEOMETRY, HASHTYPE as text, as Exasol writes them


def _exported_rows(connection: Any) -> int:
    statement = connection.last_statement()
    return int(statement.rowcount()) if statement is not None else -1


def export_csv(connection: Any, query: str, path: Path, *, limit: int | None, column_names: bool) -> Exported:
    """Stream the query's CSV into `path` (created new); ExportTooLarge once it passes `limit` bytes."""

    def write(pipe: BinaryIO, dst: Path) -> int:
        written = 0
        with dst.open("xb") as out:
            while chunk := pipe.read(CHUNK):
                written += len(chunk)
                if limit is not None and written > limit:
                    raise ExportTooLarge(f"more than {limit} bytes")
                out.write(chunk)
        return written

    params = {"with_column_names": True} if column_names else {}
    size = _run(connection, write, path, query, params)
    return Exported(path, _exported_rows(connection), size)


def export_parquet(connection: Any, query: str, path: Path, *, limit: int | None) -> Exported:
    """Stream the query into a Parquet file typed from the column metadata, a row group per CSV block."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.csv as pacsv  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    columns = column_types(connection, query)
    names = [name for name, _ in columns]
    schema = pa.schema([(name, arrow_type(meta)) for name, meta in columns])

    def write(pipe: BinaryIO, dst: Path) -> int:
        reader = pacsv.open_csv(
            pipe,
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK, use_threads=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=schema,
                true_values=["1", "TRUE", "true"],
                false_values=["0", "FALSE", "false"],
                null_values=[""],  # Exasol writes NULL as an empty field; "NA", "null", "nan" are text
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                timestamp_parsers=[pacsv.ISO8601],
            ),
        )
        with pq.ParquetWriter(dst, schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                if limit is not None and writer.file_handle is not None and dst.stat().st_size > limit:
                    raise ExportTooLarge(f"more than {limit} bytes")
        return dst.stat().st_size

    size = _run(connection, write, path, query, {})
    if limit is not None and size > limit:
        raise ExportTooLarge(f"{size} bytes")
    return Exported(path, _exported_rows(connection), size)


def _run(
    connection: Any, write: Callable[[BinaryIO, Path], int], path: Path, query: str, params: dict[str, Any]
) -> int:
    try:
        return int(connection.export_to_callback(write, path, query, export_params=params))
    except BaseException as exc:
        path.unlink(missing_ok=True)
        cause: BaseException | None = exc
        while cause is not None:  # pyexasol wraps the callback's exception in ExaExportError
            if isinstance(cause, ExportTooLarge):
                raise cause from None
            cause = cause.__cause__
        raise
