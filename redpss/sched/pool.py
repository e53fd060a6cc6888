"""Worker processes and the pools they form, seen from the SCHED master.

A WorkerProcess is one `python -m redpss.sched.worker` child with its own database session, spoken to over its
stdin/stdout. A Pool owns its workers and its queue of waiting runs; the master decides what runs where.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from redpss.sched.runs import RunRequest, RunResult

log = logging.getLogger("redpss.sched.pool")

READY_TIMEOUT = 60.0  # seconds a new worker may take to import and report ready
MAX_QUEUE = 20000  # runs a pool may hold waiting; beyond it a submit is refused with POOL_FULL


class WorkerDied(Exception):
    """The worker process ended (or broke its protocol) while the master expected an answer."""


class WorkerProcess:
    def __init__(self, pool: str, index: int, instance: str, generation: int = 0) -> None:
        self.pool = pool
        self.index = index
        self.instance = instance
        self.generation = generation  # the master's settings generation it started with (see SchedService.reload)
        self.ready = False  # reported ready: only then may it get a run
        self.replacing = False  # being killed and replaced (SchedService._replace): another end of it does nothing
        self.process: asyncio.subprocess.Process | None = None
        self.current: RunRequest | None = None
        self.started_at = 0.0  # when the current (or last) run started (wall clock) ...
        self.started_run = ""  # ... and which run that was

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    @property
    def label(self) -> str:
        return f"{self.pool}-{self.index}[{self.pid}]"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "redpss.sched.worker",
            "--instance",
            self.instance,
            "--pool",
            self.pool,
            "--index",
            str(self.index),
            "--master-pid",
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=os.environ.copy(),
            limit=16 * 1024 * 1024,
        )
        line = await asyncio.wait_for(self._readline(), READY_TIMEOUT)
        try:
            ready = json.loads(line).get("ready")
        except (ValueError, AttributeError):  # not JSON, or not an object: something else wrote to its stdout
            ready = False
        if not ready:
            raise WorkerDied(f"worker {self.label} did not report ready: {line[:200]!r}")
        self.ready = True

    async def _readline(self) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise WorkerDied(f"worker {self.label} exited with code {code}")
        return line

    def started(self, request: RunRequest) -> float | None:
        """When `request` began on this worker; None if it has not (yet): a forced stop may come before."""
        return self.started_at if self.started_run == request.run_id else None

    async def run(self, request: RunRequest) -> RunResult:
        assert self.process is not None and self.process.stdin is not None
        self.current = request
        self.started_at, self.started_run = time.time(), request.run_id
        answered = False
        try:
            self.process.stdin.write(json.dumps(request.to_dict()).encode() + b"\n")
            await self.process.stdin.drain()
            line = await self._readline()
            answered = True
        except (ConnectionError, BrokenPipeError) as exc:
            code = await self.process.wait()
            raise WorkerDied(f"worker {self.label} exited with code {code}") from exc
        finally:
            self.current = None
            if not answered:
                # Cancelled (its timeout, a forced stop) or dead mid-run: it is about to be killed and replaced. It
                # must not look idle meanwhile: the master's awaits between here and the kill let other runs be
                # dispatched, and one given to this worker was lost with it.
                self.ready = False
        try:
            return RunResult.from_dict(json.loads(line))
        except (ValueError, TypeError) as exc:
            self.ready = False
            raise WorkerDied(f"worker {self.label} answered with garbage: {line[:200]!r}") from exc

    def kill(self) -> None:
        self.ready = False  # never given a run again: the master replaces it
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self, timeout: float = 10.0) -> None:
        """Close stdin (the worker exits after its current run), kill it if it does not within `timeout`."""
        if self.process is None or self.process.returncode is not None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.process.wait()


class RunQueue:
    """A pool's waiting runs in order, and the set of their run ids: a submit asks whether its run is already
    waiting, and with thousands waiting (a backlog) a scan per submit cost more than the run itself."""

    def __init__(self) -> None:
        self._runs: deque[RunRequest] = deque()
        self._ids: set[str] = set()

    def append(self, request: RunRequest) -> None:
        self._runs.append(request)
        self._ids.add(request.run_id)

    def popleft(self) -> RunRequest:
        request = self._runs.popleft()
        self._ids.discard(request.run_id)
        return request

    def take(self, index: int) -> RunRequest:
        """Remove and return the run at `index` (a run may start before the ones ahead of it that must wait)."""
        request = self._runs[index]
        del self._runs[index]
        self._ids.discard(request.run_id)
        return request

    def holds(self, run_id: str) -> bool:
        return run_id in self._ids

    def __iter__(self) -> Iterator[RunRequest]:
        return iter(self._runs)

    def __len__(self) -> int:
        return len(self._runs)


@dataclass
class Pool:
    name: str
    size: int
    workers: list[WorkerProcess] = field(default_factory=list)
    queue: RunQueue = field(default_factory=RunQueue)

    def idle(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.current is None and w.ready]

    @property
    def busy(self) -> int:
        return sum(1 for w in self.workers if w.current is not None)

    def describe(self) -> dict[str, object]:
        return {
            "pool": self.name,
            "size": self.size,
            "busy": self.busy,
            "queued": len(self.queue),
            "workers": [
                {
                    "worker": w.label,
                    "pid": w.pid,
                    "run_id": w.current.run_id if w.current else None,
                    "job": f"{w.current.schema}.{w.current.name}" if w.current else None,
                    "kind": w.current.kind if w.current else None,
                    "started_at": w.started_at if w.current else None,
                }
                for w in self.workers
            ],
        }
