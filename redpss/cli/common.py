"""What every RED-PSS command shares: instance selection, error reporting, exit codes and --json output.

Commands stay thin: they parse, call one function, print. Errors are RedpssError with a message written for the
operator; this module prints it as `<prog>: <message>` on stderr and exits with the error's exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from redpss.core.errors import run_reporting

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.core.paths import InstancePaths


def add_instance_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--instance", default=None, help="instance name, e.g. TST1 (default: $REDENV)")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def instance_paths(args: argparse.Namespace) -> InstancePaths:
    """The instance named by -i/--instance or REDENV; InstanceError when it is malformed or missing."""
    from redpss.core.paths import InstancePaths  # noqa: PLC0415 - not needed to print the help

    return InstancePaths.from_env(name=getattr(args, "instance", None)).require()


def print_json(data: Any) -> None:
    import json  # noqa: PLC0415 - only for --json output

    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain aligned table; an empty listing prints the header and '(none)' so the operator sees it ran."""
    widths = {c: max([len(c)] + [len(_cell(r.get(c))) for r in rows]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(_cell(row.get(c)).ljust(widths[c]) for c in columns).rstrip())
    if not rows:
        print("(none)")


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def refuse_root_in_another_users_tree(prog: str) -> int:
    """0; as root in an installation whose instance trees ($REDHOME/env) belong to another user (redsys), a
    UsageError: root would run programs that user can replace (each instance's bin/redctl) and leave files behind
    that the daemons, running as that user, cannot change. A tree of root's own (a test, a trial) is root's to run."""
    import os  # noqa: PLC0415 - the check is cheap; keep the module's imports light for `-h`

    if os.geteuid() != 0:
        return 0
    from redpss.core.errors import UsageError  # noqa: PLC0415
    from redpss.core.paths import redhome_from_env  # noqa: PLC0415

    env = redhome_from_env() / "env"
    try:
        owner = env.stat().st_uid
    except OSError:
        return 0
    if owner == 0:
        return 0
    import pwd  # noqa: PLC0415

    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    raise UsageError(
        f"run {prog} as {name}, the owner of {env}, not as root: root would run programs {name} can replace and "
        f"leave files {name}'s daemons cannot change (e.g. sudo -u {name} -i {prog} ...)"
    )


def run_command(prog: str, handler: Callable[[], int], *, status: bool = False) -> int:
    """Run a command's handler; RedpssError becomes its message on stderr and its exit code (LSB's 4, unknown,
    for a `status` command)."""
    return run_reporting(prog, handler, status=status)
