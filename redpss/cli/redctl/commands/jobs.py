"""redctl commands on DB jobs and watchers: list, toggle, start now, and watcher executor errors."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from typing import Any

from redpss.cli.common import add_json_argument, print_json, print_table
from redpss.cli.redctl.clients import Instance
from redpss.cli.redctl.display import display_text
from redpss.core.errors import UsageError
from redpss.ops import jobs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text, handler in (
        ("list_db_jobs", "list DB jobs", list_jobs),
        ("list_db_watcher", "list DB watcher", list_watchers),
        ("we_list_error", "list errors of watcher executors", list_errors),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        add_json_argument(parser)
        parser.set_defaults(handler=handler)
    for name, help_text, handler, noun in (
        ("toggle_db_job", "toggle DB job between active and inactive", toggle_job, "job"),
        ("toggle_db_watcher", "toggle DB watcher between active and inactive", toggle_watcher, "watcher"),
        ("start_db_job", "start a DB job immediately", start_db_job, "job"),
        ("start_job", "start an already scheduled job immediately", start_job, "job"),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument(noun, help=f"the {noun}: SCHEMA.ID (e.g. APP1.17) or ID")
        if name.startswith("start_"):
            parser.add_argument(
                "--force", action="store_true", help="start it even while the instance is suspended (logged)"
            )
        parser.set_defaults(handler=handler)
    parser = subparsers.add_parser("we_reset_error", help="reset errors of watcher executors")
    parser.add_argument("watcher", nargs="?", help="the watcher: SCHEMA.ID or ID (omit with --all)")
    parser.add_argument("--all", action="store_true", help="reset every watcher's error")
    parser.set_defaults(handler=reset_errors)


def _listing(
    args: argparse.Namespace, rows_of: Callable[[Instance], list[dict[str, Any]]], columns: tuple[str, ...]
) -> int:
    rows = rows_of(Instance.from_args(args))
    if args.json:
        print_json(rows)
    else:
        print_table([{c: _shown(r.get(c.upper())) for c in columns} for r in rows], columns)
    return 0


def _shown(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return display_text(value)
    return value


def list_jobs(args: argparse.Namespace) -> int:
    return _listing(
        args,
        jobs.list_jobs,
        (
            "schema_name",
            "job_id",
            "job_name",
            "pool",
            "job_type",
            "active",
            "interval_seconds",
            "cron_expr",
            "timeout_seconds",
        ),
    )


def list_watchers(args: argparse.Namespace) -> int:
    return _listing(
        args,
        jobs.list_watchers,
        (
            "schema_name",
            "watcher_id",
            "watcher_name",
            "condition_type",
            "target_job_id",
            "active",
            "interval_seconds",
            "cron_expr",
        ),
    )


def list_errors(args: argparse.Namespace) -> int:
    return _listing(args, jobs.list_errors, ("schema_name", "watcher_id", "watcher_name", "error_at", "error_message"))


def _toggle(args: argparse.Namespace, kind: str, text: str) -> int:
    outcome = jobs.toggle(Instance.from_args(args), kind, text)
    state = "active" if outcome.active else "inactive"
    print(f"{kind.lower()} {outcome.schema}.{outcome.id} ({display_text(outcome.name)}) is now {state}{outcome.note}")
    return 0


def toggle_job(args: argparse.Namespace) -> int:
    return _toggle(args, "JOB", args.job)


def toggle_watcher(args: argparse.Namespace) -> int:
    return _toggle(args, "WATCHER", args.watcher)


def _start(args: argparse.Namespace, scheduled_only: bool) -> int:
    by = f"redctl ({getpass.getuser()})"
    started = jobs.start(Instance.from_args(args), args.job, by=by, force=args.force, scheduled_only=scheduled_only)
    forced = " despite the suspended instance (--force)" if started.forced else ""
    print(
        f"job {started.schema}.{started.id} ({display_text(started.name)}) started as run {started.run_id} "
        f"({started.state}){forced}"
    )
    return 0


def start_db_job(args: argparse.Namespace) -> int:
    return _start(args, scheduled_only=False)


def start_job(args: argparse.Namespace) -> int:
    return _start(args, scheduled_only=True)


def reset_errors(args: argparse.Namespace) -> int:
    if bool(args.watcher) == bool(args.all):
        raise UsageError("name one watcher (SCHEMA.ID or ID) or give --all")
    outcome = jobs.reset_errors(Instance.from_args(args), None if args.all else args.watcher, by=getpass.getuser())
    print(f"reset the executor error of {len(outcome.watchers)} watcher(s){outcome.note}")
    return 0
