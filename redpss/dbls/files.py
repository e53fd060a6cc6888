"""The per-schema log files below log/DB: one dated file per schema and day, written by DBLS alone.

Each schema's folder is log/DB/<SCHEMA>/, with `<SCHEMA>.log` linking to today's `<SCHEMA>-YYYY-MM-DD.log`: the
daily files of every other log (redpss.core.logging.daily), so the same retention removes whole days. A batch is
appended with one write per schema; the acknowledgement follows the write (the data is in the kernel's page cache,
so it survives DBLS being killed; see docs/decisions.md for why there is no fsync per batch).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from redpss.core.logging.daily import DailyFileHandler, day_of

log = logging.getLogger("redpss.dbls.files")


class SchemaLogFile(DailyFileHandler):
    """The dated files of one schema; `append` writes raw bytes (a whole batch) to the file of `day`."""

    def append(self, data: bytes, when: float) -> None:
        fd = self._file_for(day_of(when))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


class SchemaFiles:
    """Every schema's file, opened on first use; names must have passed `batch.schema_folder_name`."""

    def __init__(self, log_db: Path) -> None:
        self.log_db = log_db
        self._files: dict[str, SchemaLogFile] = {}

    def write(self, lines_by_schema: dict[str, list[str]]) -> None:
        """Append each schema's lines to its file of today; OSError when a write fails (disk full, ...)."""
        now = time.time()
        for schema, lines in lines_by_schema.items():
            self._file(schema).append("".join(lines).encode("utf-8", "surrogatepass"), now)

    def _file(self, schema: str) -> SchemaLogFile:
        handle = self._files.get(schema)
        if handle is None:
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
