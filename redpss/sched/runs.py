"""What travels between JMON, the SCHED master and its workers: a run request and a run result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

POOLS = ("DEFAULT", "LOADER", "ACTION")
JOB_TYPES = ("SQL", "LOAD", "ACTION", "SENDFILE", "NOOP")
CONDITION_TYPES = ("QUERY", "FILE")
OVERLAP_POLICIES = ("SKIP", "QUEUE")

# Final statuses of a run; SKIPPED rows stand for ticks that started nothing.
OK, FAILED, TIMEOUT, INTERRUPTED, SKIPPED = "OK", "FAILED", "TIMEOUT", "INTERRUPTED", "SKIPPED"


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    kind: str  # JOB | WATCHER
    schema: str
    id: int
    name: str
    pool: str = "DEFAULT"
    job_type: str = "SQL"  # jobs: SQL | LOAD | ACTION | SENDFILE | NOOP
    command: str = ""  # jobs: the statement / load / action; watchers: the condition
    condition_type: str = ""  # watchers: QUERY | FILE
    timeout: float = 3600.0
    scheduled_at: float = 0.0
    trigger: str = "SCHEDULE"  # SCHEDULE | MANUAL | WATCHER | RETRY
    attempt: int = 1
    max_retries: int = 0
    retry_delay: float = 60.0
    target: dict[str, Any] | None = None  # watchers: the target job's request fields (without run_id)
    origin: str = "jmon"  # who submitted it: jmon, redctl, or sched (watcher targets)
    alert_mail: str = ""  # jobs: who is mailed when a run fails for good (after its last retry); "" nobody
    # jobs: the job's OVERLAP_POLICY. JMON applies it to scheduled ticks; SCHED to the runs a watcher starts
    overlap_policy: str = "SKIP"
    # a watcher's target under OVERLAP_POLICY QUEUE: it waits in its pool until no run of its job is in flight
    waits_for_job: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.kind, self.schema, self.id)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        """A request from a message; ValueError naming what is missing or wrong."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run fields: {', '.join(unknown)}")
        try:
            request = cls(**data)
        except TypeError as exc:
            raise ValueError(f"incomplete run request: {exc}") from None
        if request.kind not in ("JOB", "WATCHER"):
            raise ValueError(f"kind must be JOB or WATCHER, not {request.kind!r}")
        if request.pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {request.pool!r}")
        if request.kind == "JOB" and request.job_type not in JOB_TYPES:
            raise ValueError(f"job type must be one of {', '.join(JOB_TYPES)}, not {request.job_type!r}")
        if request.overlap_policy not in OVERLAP_POLICIES:
            allowed = ", ".join(OVERLAP_POLICIES)
            raise ValueError(f"overlap policy must be one of {allowed}, not {request.overlap_policy!r}")
        if request.kind == "WATCHER" and request.condition_type not in CONDITION_TYPES:
            allowed = ", ".join(CONDITION_TYPES)
            raise ValueError(f"condition type must be one of {allowed}, not {request.condition_type!r}")
        return request


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: str
    message: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0
    worker: str = ""
    condition_met: bool | None = None  # watchers
    exec_error: bool = False  # watchers: the condition itself could not be evaluated
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def note_partial(exc: BaseException, done: str, extra: dict[str, object]) -> None:
    """What a handler had done when `exc` ended its run (a LOAD's files loaded before the database went away): the
    run's message says it after the error, and `extra` (rows_loaded) goes into its log row."""
    vars(exc).update(partial_done=done, extra=extra)
