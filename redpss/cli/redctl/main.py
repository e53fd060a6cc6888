"""redctl's parser and dispatch."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from redpss.cli.common import add_instance_argument, run_command
from redpss.cli.redctl.commands import COMMAND_MODULES
from redpss.core.exitcodes import ExitCode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redctl", usage="redctl [options] command [command-options]", description="RED-PSS instance control"
    )
    parser.add_argument("-D", "--debug", action="store_true", help="show debug output")
    add_instance_argument(parser)
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="{command}")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return int(ExitCode.USAGE)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="redctl: %(message)s")
    from redpss.core.logging.actions import RedctlAction  # noqa: PLC0415 - only once a command runs

    action = RedctlAction.begin(args.instance, args.command, argv)  # who did what, when: redctl.log
    code = run_command("redctl", lambda: int(args.handler(args)))
    action.end(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
