"""Runs SCHED accepted and has not logged yet, recorded so that a restarted SCHED knows what it held.

A run that has to wait (in its pool's queue, or for a retry) is noted in the waiting journal (redpss/sched/waiting.py)
when SCHED accepts it. Before a worker gets the run, the master writes a small file for it naming the worker, and
then notes in the journal that it no longer waits; the file is removed once the run's log row is with the row
writer. What is left at start belongs to runs a killed master never saw finish: a run that was running ended with
its worker (see worker.die_with_master), a run that was waiting never started; either way the next start logs it
INTERRUPTED and says which, as a graceful stop does for its queue.

The files are written and removed, in the order asked for, on one thread of their own: the event loop never waits
for the file system (creating or removing a file waits for the file system's journal while other processes fsync),
and the writes do not queue behind the run log's fsyncs in the shared thread pool.

The file is not fsync'd: it guards against the master's death (kill -9, a crash), after which the page cache still
holds it; a machine that loses power loses its workers' sessions with it, and an fsync per run would cost more than
a run itself (see docs/decisions.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from redpss.sched.runs import RunRequest
from redpss.sched.waiting import WaitingJournal

log = logging.getLogger("redpss.sched.inflight")


@dataclass(frozen=True)
class LeftOver:
    """A run a previous SCHED accepted and never saw finish; `worker` is "" for one that had not started."""

    request: RunRequest
    started_at: float  # when a worker got it, or when it began to wait
    worker: str

    @property
    def started(self) -> bool:
        return bool(self.worker)


class InFlight:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._failing = ""  # the current write problem, logged once per episode
        self._disk = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sched-inflight")
        self.journal = WaitingJournal(folder.with_name("sched-waiting.journal"))

    def waiting(self, request: RunRequest, since: float) -> None:
        """Record `request` as accepted and waiting to start (in a queue, or for its retry's time)."""
        self.journal.add(request, since)

    async def started(self, request: RunRequest, started_at: float, worker: str) -> bool:
        """Record `request` as handed to `worker`; False (said once at ERROR) when it cannot be written."""
        written = await asyncio.wrap_future(self._disk.submit(self._write, request, started_at, worker))
        self.journal.remove(request.run_id)  # after its file: a kill in between leaves both, and the file decides
        return written

    def finished(self, run_id: str) -> None:
        """Remove the run's records (its file after any write of it asked for before)."""
        self.journal.remove(run_id)
        self._disk.submit(self._remove, run_id)

    def close(self) -> None:
        """Carry out what was asked for, then stop the thread."""
        self._disk.shutdown(wait=True)
        self.journal.close()

    def _write(self, request: RunRequest, started_at: float, worker: str) -> bool:
        record = {"request": request.to_dict(), "started_at": started_at, "worker": worker}
        path = self._path(request.run_id)
        try:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                data = json.dumps(record, default=str).encode()
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write")
            finally:
                os.close(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()
            reason = exc.strerror or str(exc)
            if not self._failing:
                log.error(
                    "cannot record runs in flight in %s (%s): runs go on, but a run running or waiting when SCHED "
                    "is killed will have no INTERRUPTED row",
                    self.folder,
                    reason,
                )
            self._failing = reason
            return False
        if self._failing:
            log.warning("runs in flight are recorded in %s again", self.folder)
            self._failing = ""
        return True

    def _remove(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(run_id).unlink()

    def leftovers(self) -> list[LeftOver]:
        """Runs a previous SCHED never saw finish, oldest first; unreadable files are named and removed."""
        found = self._files_left()
        with_file = {(left.request.run_id, left.request.attempt) for left in found}
        for request, since in self.journal.leftovers():
            if (request.run_id, request.attempt) not in with_file:  # else a worker had it: its file says how far
                found.append(LeftOver(request, since, ""))
        return sorted(found, key=lambda left: left.started_at)

    def _files_left(self) -> list[LeftOver]:
        found: list[LeftOver] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.run")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                found.append(
                    LeftOver(RunRequest.from_dict(data["request"]), float(data["started_at"]), str(data["worker"]))
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("unreadable record of a run in flight %s removed: %s", path, exc)
                path.unlink(missing_ok=True)
        return found

    def _path(self, run_id: str) -> Path:
        safe = "".join(c for c in run_id if c.isalnum() or c in "-_")[:100] or "run"
        return self.folder / f"{safe}.run"
