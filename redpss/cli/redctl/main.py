"""redctl's parser and dispatch.

The parser is built for the command at hand: every subcommand appears in `redctl -h` from the COMMANDS table, and
only the module of the command being run is imported and registers its full arguments. So `redctl -h` costs what
a bare argparse program costs, and `redctl status` never loads the database driver.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from redpss.cli.common import add_instance_argument, refuse_root_in_another_users_tree, run_command
from redpss.cli.redctl.commands import COMMANDS, command_module
from redpss.core.exitcodes import ExitCode

_VALUE_OPTIONS = ("-i", "--instance")  # top-level options followed by a value
# Commands whose code never loads the logging module (tests/cli/test_fast_cli.py checks it), so nothing they do can
# emit a log record: setting up logging for them (several ms of `redctl status`) would change no output.
_WITHOUT_LOGGING = frozenset({"status"})


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv (the first word that is not an option or an option's value), if known."""
    words = iter(argv)
    for word in words:
        if word in _VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """redctl's parser; `command`'s module registers its subcommands in full, the others are listed by name."""
    parser = argparse.ArgumentParser(
        prog="redctl", usage="redctl [options] command [command-options]", description="RED-PSS instance control"
    )
    parser.add_argument("-D", "--debug", action="store_true", help="show debug output")
    add_instance_argument(parser)
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="{command}")
    if command is not None:
        command_module(command).register(subparsers)  # the command run, with every argument it takes
    for name, (_module, help_text) in COMMANDS.items():
        if name not in subparsers.choices:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import sys  # noqa: PLC0415

    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(chosen_command(words))
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help()
        return int(ExitCode.USAGE)
    if args.debug or args.command not in _WITHOUT_LOGGING:
        import logging  # noqa: PLC0415 - only once a command runs: `redctl -h` stays as fast as bare argparse

        logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="redctl: %(message)s")
    from redpss.core.logging.actions import RedctlAction  # noqa: PLC0415 - only once a command runs

    refused = run_command("redctl", lambda: refuse_root_in_another_users_tree("redctl"))
    if refused:
        return refused
    action = RedctlAction.begin(args.instance, args.command, words)  # who did what, when: redctl.log
    code = run_command("redctl", lambda: int(args.handler(args)), status=args.command == "status")
    action.end(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
