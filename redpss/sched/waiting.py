"""The runs SCHED accepted that wait to start, in one append-only journal, so a killed SCHED loses none unlogged.

A run that has to wait (queued behind a busy pool, a watcher's target waiting for its job, a retry waiting for its
time) gets a line when SCHED accepts it and another when it stops waiting (a worker got it, or it was logged
without starting). A line is one write() to a file kept open: no file is created or removed per run, which on a
busy disk waits for the journal of the file system (~0.02-0.6 ms) where an append costs a few microseconds; at a
thousand runs a second a file per waiting run held up every submit. Not fsync'd, as the in-flight records are not:
the journal guards against SCHED's death, which the page cache survives.

The journal is emptied when nothing waits and has grown past SHRINK_BYTES, and rewritten with what still waits
when it has grown past REWRITE_BYTES while runs wait (a backlog that never empties).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from redpss.sched.runs import RunRequest

log = logging.getLogger("redpss.sched.waiting")

SHRINK_BYTES = 1 << 20
REWRITE_BYTES = 64 << 20


class WaitingJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._size = 0
        self._lines: dict[str, str] = {}  # run id -> its line, for the runs waiting now
        self._failing = ""  # the current write problem, logged once per episode

    def add(self, request: RunRequest, since: float) -> None:
        line = json.dumps({"request": request.to_dict(), "since": since}, default=str) + "\n"
        self._lines[request.run_id] = line
        self._append(line)

    def remove(self, run_id: str) -> None:
        """The run no longer waits (no-op for a run that never waited)."""
        if self._lines.pop(run_id, None) is None:
            return
        emptied = not self._lines and self._size > SHRINK_BYTES
        if emptied or self._size > REWRITE_BYTES:
            self._rewrite()
        else:
            self._append(json.dumps({"done": run_id}) + "\n")

    def leftovers(self) -> list[tuple[RunRequest, float]]:
        """The runs a previous SCHED left waiting, in the order it accepted them; the journal is emptied."""
        waiting: dict[str, tuple[RunRequest, float]] = {}
        bad = 0
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            try:
                record = json.loads(line)
                if "done" in record:
                    waiting.pop(str(record["done"]), None)
                else:
                    request = RunRequest.from_dict(record["request"])
                    waiting[request.run_id] = (request, float(record["since"]))
            except (ValueError, KeyError, TypeError):
                bad += 1  # a line cut short by the kill: the runs before it are whole
        if bad:
            log.error("%d unreadable line(s) in %s skipped", bad, self.path)
        self._rewrite()
        return list(waiting.values())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, line: str) -> None:
        if self._failing:  # a line may have been cut short: start again from what waits now
            self._rewrite()
            return
        data = line.encode()
        try:
            if self._fd is None:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self._size = os.fstat(self._fd).st_size
            written = os.write(self._fd, data)
            self._size += written
            if written != len(data):
                raise OSError(28, "short write (disk full?)")
        except OSError as exc:
            self._failed(exc)
            return
        self._recovered()

    def _rewrite(self) -> None:
        """Replace the journal by the lines of the runs waiting now (nothing, when none wait)."""
        self.close()
        temporary = self.path.with_name(self.path.name + ".new")
        data = "".join(self._lines.values()).encode()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(28, "short write (disk full?)")
            finally:
                os.close(fd)
            temporary.replace(self.path)
            self._size = len(data)
        except OSError as exc:
            self._failed(exc)
            return
        self._recovered()

    def _failed(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        if not self._failing:
            log.error(
                "cannot record waiting runs in %s (%s): runs go on, but a run waiting when SCHED is killed will "
                "have no INTERRUPTED row",
                self.path,
                reason,
            )
        self._failing = reason

    def _recovered(self) -> None:
        if self._failing:
            log.warning("waiting runs are recorded in %s again", self.path)
            self._failing = ""
