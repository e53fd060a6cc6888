"""redctl commands on DB jobs and watchers: list, toggle, start now, and watcher executor errors."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from redpss.cli.common import add_json_argument, print_json, print_table
from redpss.cli.redctl.clients import Instance
from redpss.cli.redctl.display import display_text
from redpss.cli.redctl.keys import resolve
from redpss.core.errors import UsageError

JOB_LIST = (
    "SELECT SCHEMA_NAME, JOB_ID, JOB_NAME, POOL, JOB_TYPE, ACTIVE, INTERVAL_SECONDS, CRON_EXPR, TIMEOUT_SECONDS, "
    "OVERLAP_POLICY, MISSED_POLICY FROM REDSYS.ALL_ADM_JOBS ORDER BY SCHEMA_NAME, JOB_ID"
)
WATCHER_LIST = (
    "SELECT SCHEMA_NAME, WATCHER_ID, WATCHER_NAME, CONDITION_TYPE, TARGET_JOB_ID, ACTIVE, INTERVAL_SECONDS, "
    "CRON_EXPR FROM REDSYS.ALL_ADM_WATCHER ORDER BY SCHEMA_NAME, WATCHER_ID"
)
ERROR_LIST = (
    "SELECT e.SCHEMA_NAME, e.WATCHER_ID, w.WATCHER_NAME, e.ERROR_AT, e.RUN_ID, e.ERROR_MESSAGE "
    "FROM REDSYS.ALL_ADM_WATCHER_EXEC_ERROR e LEFT JOIN REDSYS.ALL_ADM_WATCHER w "
    "ON w.SCHEMA_NAME = e.SCHEMA_NAME AND w.WATCHER_ID = e.WATCHER_ID "
    "WHERE e.RESET_AT IS NULL ORDER BY e.ERROR_AT"
)


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


def _listing(args: argparse.Namespace, sql: str, columns: tuple[str, ...]) -> int:
    instance = Instance.from_args(args)
    session = instance.db()
    try:
        rows = session.fetch_dicts(sql)
    finally:
        session.close()
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
        JOB_LIST,
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
        WATCHER_LIST,
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
    return _listing(args, ERROR_LIST, ("schema_name", "watcher_id", "watcher_name", "error_at", "error_message"))


def _toggle(args: argparse.Namespace, kind: str, text: str) -> int:
    instance = Instance.from_args(args)
    session = instance.db()
    try:
        schema, id_, name = resolve(session, kind, text)
        table, column = ("ADM_JOBS", "JOB_ID") if kind == "JOB" else ("ADM_WATCHER", "WATCHER_ID")
        session.execute(
            f"UPDATE {schema}.{table} SET ACTIVE = NOT ACTIVE, CHANGED_AT = CURRENT_TIMESTAMP "  # noqa: S608
            f"WHERE {column} = {{id!d}}",
            {"id": id_},
        )
        active = session.fetchall(f"SELECT ACTIVE FROM {schema}.{table} WHERE {column} = {{id!d}}", {"id": id_})  # noqa: S608
        session.commit()
    finally:
        session.close()
    state = "active" if active and active[0][0] else "inactive"
    note = instance.tell_jmon("poll")
    print(f"{kind.lower()} {schema}.{id_} ({name}) is now {state}{note}")
    return 0


def toggle_job(args: argparse.Namespace) -> int:
    return _toggle(args, "JOB", args.job)


def toggle_watcher(args: argparse.Namespace) -> int:
    return _toggle(args, "WATCHER", args.watcher)


def _start(args: argparse.Namespace, op: str) -> int:
    instance = Instance.from_args(args)
    session = instance.db()
    try:
        schema, id_, name = resolve(session, "JOB", args.job)
    finally:
        session.close()
    with instance.jmon() as jmon:
        by = f"redctl ({getpass.getuser()})"
        reply = jmon.request(op, kind="JOB", schema=schema, id=id_, force=args.force, by=by)
    forced = " despite the suspended instance (--force)" if args.force and reply.get("suspended") else ""
    print(
        f"job {schema}.{id_} ({display_text(name)}) started as run {reply.get('run_id')} "
        f"({reply.get('state', 'submitted')}){forced}"
    )
    return 0


def start_db_job(args: argparse.Namespace) -> int:
    return _start(args, "start_db_job")


def start_job(args: argparse.Namespace) -> int:
    return _start(args, "start_job")


def reset_errors(args: argparse.Namespace) -> int:
    if bool(args.watcher) == bool(args.all):
        raise_usage("name one watcher (SCHEMA.ID or ID) or give --all")
    instance = Instance.from_args(args)
    session = instance.db()
    user = getpass.getuser()
    try:
        if args.all:
            targets = [
                (str(r[0]), int(r[1]))
                for r in session.fetchall(
                    "SELECT DISTINCT SCHEMA_NAME, WATCHER_ID FROM REDSYS.ALL_ADM_WATCHER_EXEC_ERROR "
                    "WHERE RESET_AT IS NULL"
                )
            ]
        else:
            schema, id_, _ = resolve(session, "WATCHER", args.watcher)
            targets = [(schema, id_)]
        for schema, id_ in targets:
            session.execute(
                f"UPDATE {schema}.ADM_WATCHER_EXEC_ERROR SET RESET_AT = CURRENT_TIMESTAMP, RESET_BY = {{user}} "  # noqa: S608
                "WHERE WATCHER_ID = {id!d} AND RESET_AT IS NULL",
                {"user": user, "id": id_},
            )
        session.commit()
    finally:
        session.close()
    note = instance.tell_jmon("we_reset")
    print(f"reset the executor error of {len(targets)} watcher(s){note}")
    return 0


def raise_usage(message: str) -> None:
    raise UsageError(message)
