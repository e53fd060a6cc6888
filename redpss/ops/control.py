"""Steering a running instance through JMON's control socket: show, reload, suspend and resume."""

from __future__ import annotations

from redpss.core.record import Record
from redpss.ops.instance import NotRunning

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.ops.instance import Instance


class Reloaded(Record):
    definitions: Any  # how many job and watcher definitions JMON read
    invalid: int  # how many of them it refused (the log says why)


def show(instance: Instance) -> dict[str, Any]:
    """JMON's view of the instance: every job and watcher with its state, SCHED's pools and workers."""
    with instance.jmon() as jmon:
        data: dict[str, Any] = jmon.request("show")
    data["mail"] = mail_spool(instance)
    data["sendfile"] = sendfile_queue(instance)
    return data


def mail_spool(instance: Instance) -> dict[str, Any]:
    """SENDMAIL's spool, read from its folder (count, oldest, next try, dead letters), also while SENDMAIL is down."""
    from redpss.mail.spoolstat import spool_summary  # noqa: PLC0415 - a folder listing, loaded by `show` only

    return spool_summary(instance.paths)


def sendfile_queue(instance: Instance) -> dict[str, Any]:
    """SENDFILE's requests waiting (count, oldest, unreadable), read from its spool folder, also while it is down."""
    from redpss.sendfile.queuestat import queue_summary, spool_folder  # noqa: PLC0415 - loaded by `show` only

    return queue_summary(spool_folder(instance.paths))


def reload(instance: Instance) -> Reloaded:
    """Have JMON re-read the definitions (interval and cron changes apply without restart)."""
    with instance.jmon() as jmon:
        reply = jmon.request("reload")
    return Reloaded(reply.get("definitions"), int(reply.get("invalid") or 0))


def set_suspended(instance: Instance, suspended: bool) -> None:
    """Suspend (no run starts, running ones finish) or resume; with JMON stopped, the marker file says it."""
    marker = instance.paths.suspend_marker
    try:
        with instance.jmon() as jmon:
            jmon.request("suspend" if suspended else "resume")
    except NotRunning:
        if suspended:
            marker.touch(exist_ok=True)
        else:
            marker.unlink(missing_ok=True)
