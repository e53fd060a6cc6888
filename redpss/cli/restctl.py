"""restctl {start | stop | status | restart}: the REST API of an instance (unit redpss-rest@<INSTANCE>).

The API runs only where [rest] rest_enabled = true. When it is disabled, `start` and `restart` refuse (exit 1, the
operator asked for something the config forbids), while `stop` and `status` say so and exit 0: nothing is wrong.
`stop` still stops a unit left running from before the config changed, also when the config is now broken. A unit
that is not installed is never addressed: `stop` succeeds, `status` says so (3 when the API is enabled), `start`
fails naming the missing file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from redpss.cli import systemctl
from redpss.cli.common import add_instance_argument, instance_paths, refuse_root_in_another_users_tree, run_command
from redpss.cli.redsysctl.instances import ensure_unit_link, rest_unit
from redpss.core.config import Config, load_config
from redpss.core.errors import ConfigError
from redpss.core.exitcodes import ExitCode, LsbStatus
from redpss.core.paths import InstancePaths
from redpss.core.services import instance_target, journal_command

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
    return run_command(
        "restctl", lambda: refuse_root_in_another_users_tree("restctl") or _run(args), status=args.command == "status"
    )


def _run(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    config = _config_unless_stopping(paths, args.command)
    unit = rest_unit(paths)
    enabled = config is None or config.rest.rest_enabled  # a broken config: the API may be running
    early = _nothing_to_do(args.command, paths, unit, enabled)
    if early is None and args.command == "status" and not systemctl.systemd_running():
        # no unit to ask: the API's address is in the config, whose error now ends the command
        return _status_without_systemd(paths, config or load_config(paths.config_file))
    if early is not None:
        return early
    result = None
    if args.command == "stop":
        result = systemctl.stop([unit])
    elif args.command in ("start", "restart"):
        ensure_unit_link(paths)
        systemctl.reset_failed([unit])
        systemctl.start([instance_target(paths.redenv)])
        result = (systemctl.start if args.command == "start" else systemctl.restart)([unit])
    state = systemctl.states([unit])[unit]
    print(f"{unit}  {state.describe()}")
    if result is not None and result.returncode != 0:
        print(f"restctl: {args.command} failed: {result.stderr.strip()}; see: {journal_command(paths.redenv, [unit])}")
        return int(ExitCode.FAILURE)
    if args.command == "status":
        return int(systemctl.lsb_status([state])) if enabled else int(ExitCode.OK)
    return int(ExitCode.OK)


def _config_unless_stopping(paths: InstancePaths, command: str) -> Config | None:
    """The instance's config; for `stop` and `status` None when it is broken (said as a warning), so an API
    started before the config was broken can still be stopped and shown. `start` and `restart` refuse."""
    try:
        return load_config(paths.config_file)
    except ConfigError as exc:
        if command not in ("stop", "status"):
            raise
        print(f"restctl: warning: {exc}\nrestctl: {command} goes on with the unit {rest_unit(paths)}", file=sys.stderr)
        return None


def _nothing_to_do(command: str, paths: InstancePaths, unit: str, enabled: bool) -> int | None:
    """The exit code when the API is disabled, systemd is absent or the unit is not installed; None to go on."""
    if not enabled:
        print(
            f"restctl: the REST API of instance {paths.redenv} is disabled ([rest] rest_enabled = false in "
            f"{paths.config_file})"
        )
        if command in ("start", "restart"):
            return int(ExitCode.FAILURE)
    if not systemctl.systemd_running():
        return None if enabled else int(ExitCode.OK)  # disabled and no systemd: nothing can be running
    state = systemctl.states([unit])[unit]
    if not state.installed and state.active == "inactive":
        return _not_installed(command, unit, enabled)
    if not enabled and not state.live:
        return int(ExitCode.OK)  # disabled and not running: nothing to stop or to show
    return None


def _status_without_systemd(paths: InstancePaths, config: Config) -> int:
    """No unit to ask (a container, `redctl start_trace`): ask the API itself over HTTPS, as the watchdog does."""
    from redpss.rest.probe import answers, probe_address, probe_context  # noqa: PLC0415 - ssl only for status

    host, port = probe_address(config)
    if answers((host, port), probe_context()):
        print(f"restctl: the REST API of instance {paths.redenv} answers on https://{host}:{port} (not under systemd)")
        return int(LsbStatus.RUNNING)
    print(f"restctl: the REST API of instance {paths.redenv} is not running (nothing answers on https://{host}:{port})")
    return int(LsbStatus.NOT_RUNNING)


def _not_installed(command: str, unit: str, enabled: bool) -> int:
    """The unit file is not installed: nothing runs, so stop succeeds and status says stopped (LSB); start fails."""
    template = unit.split("@", maxsplit=1)[0] + "@.service"
    if command in ("start", "restart"):
        print(f"restctl: cannot {command}: the unit {template} is not installed in /etc/systemd/system")
        return int(ExitCode.FAILURE)
    if command == "status" and enabled:
        print(f"restctl: {unit} is not installed ({template} is missing): the REST API is not running")
        return int(LsbStatus.NOT_RUNNING)
    return int(ExitCode.OK)


if __name__ == "__main__":
    raise SystemExit(main())
