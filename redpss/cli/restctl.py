"""restctl {start | stop | status | restart}: the REST API of an instance (unit redpss-rest@<INSTANCE>).

The API runs only where [rest] rest_enabled = true. When it is disabled, `start` and `restart` refuse (exit 1, the
operator asked for something the config forbids), while `stop` and `status` say so and exit 0: nothing is wrong.
`stop` still stops a unit left running from before the config changed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from redpss.cli import systemctl
from redpss.cli.common import add_instance_argument, instance_paths, run_command
from redpss.cli.redsysctl.instances import ensure_unit_link, rest_unit
from redpss.core.config import load_config
from redpss.core.exitcodes import ExitCode, LsbStatus
from redpss.core.services import instance_target

COMMANDS = ("start", "stop", "status", "restart")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restctl",
        usage="restctl {start | stop | status | restart}",
        description="restctl starts and stops the gunicorn application server for the REST API",
    )
    add_instance_argument(parser)
    parser.add_argument("command", choices=COMMANDS, metavar="{start | stop | status | restart}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("restctl", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    config = load_config(paths.config_file)
    unit = rest_unit(paths)
    enabled = config.rest.rest_enabled
    if not enabled:
        print(
            f"restctl: the REST API of instance {paths.redenv} is disabled ([rest] rest_enabled = false in "
            f"{paths.config_file})"
        )
        if args.command in ("start", "restart"):
            return int(ExitCode.FAILURE)
    if not enabled and not systemctl.systemd_running():
        return int(ExitCode.OK)  # disabled and no systemd: nothing can be running
    if args.command == "status" and not systemctl.systemd_running():
        print(f"restctl: {systemctl.NoSystemd()}")
        return int(LsbStatus.UNKNOWN if enabled else ExitCode.OK)
    if args.command == "stop":
        result = systemctl.stop([unit])
    elif args.command in ("start", "restart"):
        ensure_unit_link(paths)
        systemctl.start([instance_target(paths.redenv)])
        result = (systemctl.start if args.command == "start" else systemctl.restart)([unit])
    else:
        result = None
    state = systemctl.states([unit])[unit]
    print(f"{unit}  {state.describe()}")
    if result is not None and result.returncode != 0:
        print(f"restctl: {args.command} failed: {result.stderr.strip()}; see: journalctl -u {unit}")
        return int(ExitCode.FAILURE)
    if args.command == "status":
        return int(systemctl.lsb_status([state])) if enabled else int(ExitCode.OK)
    return int(ExitCode.OK)


if __name__ == "__main__":
    raise SystemExit(main())
