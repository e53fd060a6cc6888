"""The state of an instance in one answer: each daemon, suspended or not, JMON's last poll, what waits in spools."""

from __future__ import annotations

from redpss.clone.blocked import blocked_reason
from redpss.ops.instance import NotRunning
from redpss.ops.probe import probe_instance

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.ops.instance import Instance


def daemons(instance: Instance, only: frozenset[str] | None = None) -> dict[str, dict[str, Any]]:
    """Program name -> whether it serves and what the probe saw (services registry, daemons redctl controls)."""
    return {p.program: {"running": p.running, "detail": p.detail} for p in probe_instance(instance, only)}


def instance_status(instance: Instance) -> dict[str, Any]:
    """Daemons, suspended, JMON's last successful poll (epoch seconds) and the run log rows waiting to be written."""
    found = daemons(instance)
    shown: dict[str, Any] = {}
    from redpss.core.wire import WireError  # noqa: PLC0415 - loaded by instance.jmon() already

    try:
        with instance.jmon() as jmon:
            shown = jmon.request("show")
    except (NotRunning, WireError):  # the status says what it can without JMON (its probe says how it is)
        pass
    sched = shown.get("sched") or {}
    runlog = sched.get("runlog") or {}
    mail = shown.get("mail") or {}  # SENDMAIL's spool as JMON reads it, where SENDMAIL runs
    return {
        "instance": instance.paths.redenv,
        "suspended": bool(shown["suspended"]) if "suspended" in shown else instance.paths.suspend_marker.exists(),
        "last_poll_ok": shown.get("last_poll_ok"),
        # why JMON starts no job: the database is another instance's (redpss.clone); None when it schedules
        "foreign_database": blocked_reason(instance.paths) or None,
        "daemons": found,
        "spool": {
            "runlog_backlog": int(sched.get("runlog_backlog") or 0),
            "runlog_memory_only": int(runlog.get("memory_only") or 0),
            **({"mail_waiting": int(mail.get("count") or 0), "mail_dead": int(mail.get("dead") or 0)} if mail else {}),
        },
        "pools": [
            {"pool": p["pool"], "size": len(p.get("workers", [])), "busy": _busy(p), "queued": int(p["queued"])}
            for p in sched.get("pools", [])
        ],
    }


def _busy(pool: dict[str, Any]) -> int:
    return sum(1 for worker in pool.get("workers", []) if worker.get("run_id"))
