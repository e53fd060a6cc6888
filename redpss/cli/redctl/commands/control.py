"""redctl commands that steer a running instance: reload, suspend, resume, show, watch."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from typing import Any

from redpss.cli.common import add_json_argument, print_json, print_table
from redpss.cli.redctl.clients import Instance
from redpss.cli.redctl.display import display_text
from redpss.ops import control

CLEAR_SCREEN = "\033[H\033[2J"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("reload", help="reload job config")
    parser.set_defaults(handler=reload)
    parser = subparsers.add_parser("suspend", help="suspend all jobs")
    parser.set_defaults(handler=suspend)
    parser = subparsers.add_parser("resume", help="resume all jobs")
    parser.set_defaults(handler=resume)
    parser = subparsers.add_parser("show", help="show status for jobs and processes")
    add_json_argument(parser)
    parser.set_defaults(handler=show)
    parser = subparsers.add_parser("watch", help="watch status for jobs and processes")
    parser.add_argument("--interval", type=_interval, default=2.0, help="seconds between refreshes (default 2)")
    parser.add_argument("--count", type=int, default=0, help="stop after this many refreshes (default: until Ctrl+C)")
    parser.set_defaults(handler=watch)


def _interval(text: str) -> float:
    """--interval: seconds from 0.1 to a day (argparse names the option when refused)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 86400:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0.1 to 86400")
    return seconds


def reload(args: argparse.Namespace) -> int:
    outcome = control.reload(Instance.from_args(args))
    print(
        f"reloaded {outcome.definitions} definition(s); interval/cron changes applied"
        + (f"; {outcome.invalid} invalid definition(s), see the log" if outcome.invalid else "")
    )
    return 0


def _suspend(args: argparse.Namespace, suspend: bool) -> int:
    instance = Instance.from_args(args)
    control.set_suspended(instance, suspend)
    if suspend:
        print(f"{instance.paths.redenv} suspended: no new runs start, running ones finish (until `redctl resume`)")
    else:
        print(f"{instance.paths.redenv} resumed: runs start as scheduled")
    return 0


def suspend(args: argparse.Namespace) -> int:
    return _suspend(args, True)


def resume(args: argparse.Namespace) -> int:
    return _suspend(args, False)


def _when(epoch: Any) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(float(epoch)).strftime("%Y-%m-%d %H:%M:%S")


def render(instance: Instance, data: dict[str, Any]) -> None:
    state = "SUSPENDED" if data.get("suspended") else "RUNNING"
    print(f"instance {instance.paths.redenv}: {state}; definitions read {_when(data.get('last_poll_ok'))}")
    print()
    rows = []
    for entry in data.get("entries", []):
        kind, schema, id_ = entry["key"]
        running = entry.get("running") or []
        status = (
            "BLOCKED"
            if entry.get("blocked")
            else "RUNNING"
            if running
            else "QUEUED"
            if entry.get("queued")
            else "ACTIVE"
            if entry.get("active")
            else "INACTIVE"
        )
        lateness = entry.get("last_lateness")
        rows.append(
            {
                "kind": kind,
                "schema": schema,
                "id": id_,
                "name": display_text(str(entry.get("name") or "")),
                "state": status,
                "last_run": _when(entry.get("last_started")),  # the last run that began; a skipped tick is none
                "next_run": _when(entry.get("next_due")),
                "lateness_ms": None if lateness is None else f"{float(lateness) * 1000:.1f}",
            }
        )
    print_table(rows, ("kind", "schema", "id", "name", "state", "last_run", "next_run", "lateness_ms"))
    for invalid in data.get("invalid", []):
        print(f"  invalid: {display_text(str(invalid['reason']), 400)}")
    _render_csvsrv(data.get("entries", []))
    if data.get("mail"):
        from redpss.mail.spoolstat import describe  # noqa: PLC0415 - only where a spool is shown

        print(f"SENDMAIL spool: {display_text(describe(data['mail']), 400)}")
    if data.get("sendfile"):
        from redpss.sendfile.queuestat import describe_queue  # noqa: PLC0415 - only where the queue is shown

        print(f"SENDFILE queue: {describe_queue(data['sendfile'])}")
    print()
    sched = data.get("sched")
    if not sched:
        print("SCHED: not connected")
        return
    processes = [
        {
            "pool": pool["pool"],
            "worker": worker["worker"],
            "run_id": worker.get("run_id"),
            "job": display_text(str(worker.get("job") or "")),
            "since": _when(worker.get("started_at")),
        }
        for pool in sched.get("pools", [])
        for worker in pool["workers"]
    ]
    print_table(processes, ("pool", "worker", "run_id", "job", "since"))
    queued = ", ".join(f"{p['pool']} {p['queued']}" for p in sched.get("pools", []))
    print(f"queued: {queued}; run log rows waiting: {sched.get('runlog_backlog', 0)}")
    runlog = sched.get("runlog") or {}
    if runlog.get("spool_error"):
        print(
            f"run log spool failing: {display_text(str(runlog['spool_error']), 400)}; "
            f"{runlog.get('memory_only', 0)} row(s) held in memory only"
        )


def _render_csvsrv(entries: list[dict[str, Any]]) -> None:
    """CSVSRV, the description's name for what loads arriving CSV files: FILE watchers starting LOAD jobs."""
    loaders = [e for e in entries if e.get("role") == "CSVSRV"]
    names = ", ".join(f"{e['key'][1]} watcher {e['key'][2]} {display_text(str(e.get('name') or ''))}" for e in loaders)
    print(f"CSVSRV (FILE watchers starting LOAD jobs): {names or 'none defined'}")


def show(args: argparse.Namespace) -> int:
    instance = Instance.from_args(args)
    data = control.show(instance)
    if args.json:
        print_json(data)
    else:
        render(instance, data)
    return 0


def watch(args: argparse.Namespace) -> int:
    instance = Instance.from_args(args)
    shown = 0
    try:
        while True:
            data = control.show(instance)
            if sys.stdout.isatty():
                sys.stdout.write(CLEAR_SCREEN)
            print(f"every {args.interval:g} s, Ctrl+C to stop -- {dt.datetime.now():%H:%M:%S}")
            render(instance, data)
            sys.stdout.flush()
            shown += 1
            if args.count and shown >= args.count:
                return 0
            time.sleep(args.interval)  # the refresh period the operator asked for
    except KeyboardInterrupt:
        return 0
