"""IMPORT and EXPORT statements: where the files come from or go to, and the CSV they carry.

Sources and targets: pyexasol's HTTP transport tunnels (http:// and https:// addresses it names) and, for IMPORT,
FTP/FTPS servers, given as a URL or through a CONNECTION object. Files ending in .gz are gzip-compressed (pyexasol
does that with compression=True); other compressed formats are refused.
"""

# DuckDB SQL is built here from identifiers devdb parsed and quoted itself; values travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import socket
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from redpss.devdb import catalog, ftpfetch, tunnel
from redpss.devdb.commands import Export, Import, Location
from redpss.devdb.csvio import Exported, load_csv
from redpss.devdb.errors import DevDbError, Unsupported
from redpss.devdb.names import require_object
from redpss.devdb.translate import DEFAULT_SCHEMA, ColumnRef, Kind, ObjectName, StarRef, translate

if TYPE_CHECKING:
    from redpss.devdb.session import Session


class Transfers:
    def __init__(self, tmp_dir: Path) -> None:
        self.tunnels = tunnel.Tunnels()
        self.tmp_dir = tmp_dir

    def run_import(self, session: Session, command: Import) -> int:
        target = ObjectName(command.schema or session.schema or DEFAULT_SCHEMA, command.table)
        require_object(session.cursor, target)
        count = 0
        with tempfile.TemporaryDirectory(dir=self.tmp_dir) as scratch:
            for index, location in enumerate(command.locations):
                url, user, password = self._resolve(session, location)
                scheme = urlsplit(url).scheme.lower()
                if scheme in ("http", "https"):
                    paths = [self._download(session, location, url, Path(scratch), index)]
                else:
                    paths = ftpfetch.fetch(url, user, password, location.files, Path(scratch), _closer(session))
                for path in paths:
                    session.check_cancelled()
                    count += load_csv(
                        session.cursor, target, command.columns, _plain(path, Path(scratch)), command.options
                    )
        session.pad_chars(target)  # CHAR values as Exasol stores them (chars.py)
        return count

    def run_export(self, session: Session, command: Export) -> int:
        sql, sources = _export_query(session, command)
        described = [(str(r[0]), str(r[1])) for r in session.cursor.execute(f"DESCRIBE {sql}").fetchall()]
        types = catalog.result_types(session.cursor, described, sources)
        exported = Exported(session.cursor, sql, [name for name, _ in described], types, command.options)
        if len(command.locations) != 1 or len(command.locations[0].files) != 1:
            raise Unsupported("EXPORT to several files", "export_parallel is not available; use one FILE")
        location = command.locations[0]
        url, _, _ = self._resolve(session, location)
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise Unsupported(
                f"EXPORT to {urlsplit(url).scheme}://", "devdb exports through pyexasol's HTTP transport only"
            )
        name = location.files[0]
        chunks: Iterable[bytes] = exported.chunks()
        if name.lower().endswith(".gz"):
            chunks = _gzip(chunks)
        elif not name.lower().endswith(".csv"):
            raise Unsupported(f"the file format of {name!r}", "use .csv or .gz")
        sock = self._open(session, url, location)
        try:
            tunnel.put(sock, name, _cancellable(session, chunks))
        except OSError as exc:
            session.check_cancelled()
            raise DevDbError(f"EXPORT through the HTTP transport failed: {exc}") from exc
        finally:
            sock.close()
        return exported.rows

    def _resolve(self, session: Session, location: Location) -> tuple[str, str | None, str | None]:
        if location.url is not None:
            return location.url, location.user, location.password
        assert location.connection is not None
        found = catalog.find_connection(session.cursor, location.connection)
        if found is None:
            raise DevDbError(f"connection {location.connection} not found")
        return found.address, location.user or found.user, location.password or found.password

    def _open(self, session: Session, url: str, location: Location) -> socket.socket:
        parts = urlsplit(url)
        sock = self.tunnels.take(f"{parts.hostname}:{parts.port}")
        sock.settimeout(tunnel.IO_TIMEOUT)
        session.on_cancel(lambda: _shutdown(sock))
        if parts.scheme.lower() == "https":
            try:
                return tunnel.secure(sock, location.public_key)
            except (OSError, DevDbError):
                sock.close()
                raise
        return sock

    def _download(self, session: Session, location: Location, url: str, scratch: Path, index: int) -> Path:
        if len(location.files) != 1:
            raise Unsupported("IMPORT of several files from one HTTP transport address")
        name = location.files[0]
        path = scratch / (f"http-{index}.csv.gz" if name.lower().endswith(".gz") else f"http-{index}.csv")
        sock = self._open(session, url, location)
        try:
            with path.open("wb") as out:
                tunnel.get(sock, name, out)
        except OSError as exc:
            session.check_cancelled()
            raise DevDbError(f"IMPORT through the HTTP transport failed: {exc}") from exc
        finally:
            sock.close()
        return path


def _export_query(session: Session, command: Export) -> tuple[str, list[Any]]:
    if command.query is not None:
        statement = translate(command.query, session.info())
        if statement.kind != Kind.QUERY:
            raise DevDbError("EXPORT ( ... ) needs a query")
        return statement.sql, statement.sources
    assert command.table is not None
    obj = ObjectName(command.schema or session.schema or DEFAULT_SCHEMA, command.table)
    require_object(session.cursor, obj)
    table = f'"{obj.schema}"."{obj.name}"'
    if command.columns:
        names = ", ".join(f'"{name}"' for name in command.columns)
        return f"SELECT {names} FROM {table}", [ColumnRef((obj,), name) for name in command.columns]
    return f"SELECT * FROM {table}", [StarRef((obj,))]


def _plain(path: Path, scratch: Path) -> Path:
    """The path of an uncompressed copy (gzip files are unpacked next to it)."""
    if not path.name.endswith(".gz"):
        return path
    plain = scratch / (path.name[:-3] + ".plain.csv")
    inflater = zlib.decompressobj(wbits=31)
    with path.open("rb") as packed, plain.open("wb") as out:
        while block := packed.read(1 << 20):
            out.write(inflater.decompress(block))
        out.write(inflater.flush())
    return plain


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    deflater = zlib.compressobj(wbits=31)
    for chunk in chunks:
        yield deflater.compress(chunk)
    yield deflater.flush()


def _cancellable(session: Session, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        session.check_cancelled()
        yield chunk


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _closer(session: Session) -> Any:
    def register(client: Any) -> None:
        session.on_cancel(lambda: _shutdown(client.sock) if client.sock is not None else None)

    return register
