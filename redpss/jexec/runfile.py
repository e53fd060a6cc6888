"""The file of one run's output (log/JEXEC/<run_id>.log): kept while it can be, never the reason a run fails or hangs.

A script's output is read from its pipes as it comes; if writing it to the file raised (a full disk, the folder not
writable), the reading would stop, the pipe fill up and the script block until its timeout. So a write that fails
ends the file with one ERROR in JEXEC's log, and the output still goes to the journal and into the tail returned to
the requester. A file is also limited in size (`jexec_output_limit_mb`): a script that prints without end must not
fill the disk the instance's logs and spools share; beyond the limit one note says where the rest is.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger("redpss.jexec")


class RunFile:
    """Append-only text file of one run, written until it fails or reaches `limit` bytes."""

    def __init__(self, path: Path, run_id: str, limit: int) -> None:
        self.path = path
        self.run_id = run_id
        self.limit = limit
        self.written = 0
        self.closed_because = ""  # why nothing more is written, "" while it is
        self._fd: int | None = None
        try:
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            self._failed(exc)

    def write(self, text: str) -> None:
        if self._fd is None:
            return
        data = text.encode("utf-8", "replace")
        if self.written + len(data) > self.limit:
            note = (
                f"# the output beyond {self.limit} bytes is not kept in this file; the journal has it "
                f"(journalctl RUN_ID={self.run_id})\n"
            )
            self._write(note.encode())
            if self._fd is not None:  # else the note could not be written, and closed_because says why
                self.closed_because = f"its output reached the limit of {self.limit} bytes"
            self.close()
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self._failed(exc)
            self.close()
            return
        self.written += len(data)

    def _failed(self, exc: OSError) -> None:
        self.closed_because = f"it cannot be written ({exc.strerror or exc})"
        log.error(
            "run %s: %s cannot be written (%s); the run goes on, its output goes to the journal and its tail",
            self.run_id,
            self.path,
            exc.strerror or exc,
            extra={"RUN_ID": self.run_id},
        )

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):  # a late write error (NFS) must not end the run's reading
                os.close(fd)
