"""redctl preclone [--force] / postclone [--force]: an instance's database replaced by another's backup.

preclone saves the instance-owned state in $REDENV_HOME/tmp/preclone; after the restore JMON puts it back at its
start, or postclone does it explicitly (also to finish a restore that was interrupted). Each step of the restore is
written to redctl.log and the journal as JMON would write it.
"""

from __future__ import annotations

import argparse

from redpss.cli.redctl.clients import Instance


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("preclone", help="save state before cloning from another instance")
    parser.add_argument("--force", action="store_true", help="replace a preclone that is still pending")
    parser.set_defaults(handler=run_preclone)
    parser = subparsers.add_parser("postclone", help="restore the saved state after cloning (JMON does it at start)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="take over another instance's database without a preclone: every job and watcher inactive",
    )
    parser.set_defaults(handler=run_postclone)


def run_preclone(args: argparse.Namespace) -> int:
    from redpss.ops.clone import preclone  # noqa: PLC0415 - the database layer only when the command runs

    instance = Instance.from_args(args)
    saved = preclone(instance, force=args.force)
    print(
        f"saved the state of {instance.paths.redenv} in {saved.path}: {saved.jobs} job(s) and {saved.watchers} "
        f"watcher(s) with their activation, {saved.members} member(s) of the REST roles, "
        f"{'suspended' if saved.suspended else 'not suspended'}"
    )
    print(
        "next: stop the instance (`redctl stop`), restore the other database's backup, start the instance "
        "(`redctl start`); JMON restores this state before it schedules anything"
    )
    return 0


def run_postclone(args: argparse.Namespace) -> int:
    from redpss.clone.steplog import recording_steps  # noqa: PLC0415 - as in run_preclone
    from redpss.ops.clone import postclone  # noqa: PLC0415

    instance = Instance.from_args(args)
    with recording_steps(instance.paths):
        outcome = postclone(instance, force=args.force)
    for step in outcome.steps:
        print(step)
    print(f"the database is {instance.paths.redenv}'s now")
    return 0
