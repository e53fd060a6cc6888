"""The per-schema log files below log/DB: one dated file per schema and day, written by DBLS alone.

Each schema's folder is log/DB/<SCHEMA>/, with `<SCHEMA>.log` linking to today's `<SCHEMA>-YYYY-MM-DD.log`: the daily
files of every other log (redpss.core.logging.daily), so the same retention removes whole days. A batch is appended with
one writev per schema (its blocks as they came); the acknowledgement follows the write (the data is in the kernel's page
cache, so it survives DBLS being killed; see docs/decisions.md for why there is no fsync per batch).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

from redpss.core.logging.daily import DailyFileHandler, day_of

log = logging.getLogger("redpss.dbls.files")
STILL_THERE_CHECK = 1.0  # seconds
IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024  # buffers one writev takes
# Schemas whose file stays open between requests, the most recently written ones: a database with more schemas than
# this (or a client naming new schemas without end) costs reopening, never the unit's file descriptors (4,096).
MAX_OPEN_FILES = 256


class SchemaLogFile(DailyFileHandler):
    """The dated files of one schema; `append` writes raw bytes (a whole batch) to the file of `day`.

    Whether the file was removed or replaced by hand is checked at most once per STILL_THERE_CHECK seconds, not
    with two system calls for every buffer.
    """

    _checked = 0.0

    def append(self, blocks: Sequence[bytes | memoryview], when: float) -> tuple[int, int]:
        """Write the blocks to the file of `when`'s day with one writev (more only if the kernel takes less); the
        file's descriptor and its size before, for `take_back`. A write that fails part-way (disk full, file size
        limit) is taken back before the OSError is raised: no torn line is left."""
        fd = self._file_for(day_of(when))
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            self._write_all(fd, blocks)
        except OSError:
            take_back([(fd, start)])
            raise
        return fd, start

    @staticmethod
    def _write_all(fd: int, blocks: Sequence[bytes | memoryview]) -> None:
        written = os.writev(fd, blocks) if len(blocks) <= IOV_MAX else 0
        if written == sum(map(len, blocks)):
            return  # the usual case: the kernel took everything at once
        pending = [memoryview(block) for block in blocks if block]
        while True:  # drop what is written, then write the rest; a request may hold more blocks than one call takes
            while pending and written >= len(pending[0]):
                written -= len(pending.pop(0))
            if not pending:
                return
            pending[0] = pending[0][written:]
            written = os.writev(fd, pending[:IOV_MAX])

    def _still_there(self) -> bool:
        now = time.monotonic()
        if now - self._checked < STILL_THERE_CHECK:
            return True
        self._checked = now
        return super()._still_there()


class SchemaFiles:
    """Every schema's file, opened on first use and kept open while it is among the `max_open` written last; names
    must have passed `batch.schema_folder_name`."""

    def __init__(self, log_db: Path, max_open: int = MAX_OPEN_FILES) -> None:
        self.log_db = log_db
        self.max_open = max_open
        self._files: OrderedDict[str, SchemaLogFile] = OrderedDict()  # least recently written first

    def write(self, blocks_by_schema: Mapping[str, Sequence[bytes | memoryview]]) -> None:
        """Append each schema's blocks to its file of today; OSError when a write fails (disk full, ...), and then
        nothing of the request stays in any file: the client is told to send the buffer again, which must not
        write its lines twice. DBLS is the only writer of these files and writes from one thread."""
        now = time.time()
        done: list[tuple[int, int]] = []
        try:
            for schema, blocks in blocks_by_schema.items():
                done.append(self._file(schema).append(blocks, now))
        except OSError:
            take_back(done)
            raise
        finally:
            self._close_least_recent()  # only now: take_back may still need every descriptor of this request

    @property
    def open_files(self) -> int:
        return len(self._files)

    def _close_least_recent(self) -> None:
        while len(self._files) > self.max_open:
            _schema, handle = self._files.popitem(last=False)
            handle.close()

    def _file(self, schema: str) -> SchemaLogFile:
        handle = self._files.get(schema)
        if handle is not None:
            self._files.move_to_end(schema)
        else:
            folder = self.log_db / schema
            if folder.is_symlink():
                raise OSError(f"{folder} is a symbolic link; DBLS writes only into real folders below {self.log_db}")
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
            handle = self._files[schema] = SchemaLogFile(folder / f"{schema}.log")
        return handle

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def take_back(appends: Sequence[tuple[int, int]]) -> None:
    """Cut files back to the sizes they had before (descriptor, size); a failure here is logged, not raised."""
    for fd, size in appends:
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            log.error("cannot take back a partly written log buffer (descriptor %d to %d bytes): %s", fd, size, exc)
