"""redctl start [-S] | stop | abort | restart | status: the instance's daemons as systemd units.

Which daemons run is the config's decision (redpss.core.services.enabled_services); stop and abort reach every
daemon redctl controls, so a daemon disabled in the config since it was started is stopped too. The REST API is
restctl's. Each command ends by printing the units' states, which is what the operator wants to see next.
"""

from __future__ import annotations

import argparse
import sys

from redpss.cli import systemctl
from redpss.cli.common import add_json_argument, instance_paths, print_json
from redpss.cli.redctl.clients import Instance
from redpss.cli.redsysctl.instances import ensure_unit_link
from redpss.clone.blocked import blocked_reason
from redpss.core.errors import RedpssError
from redpss.core.exitcodes import ExitCode, LsbStatus
from redpss.core.paths import InstancePaths
from redpss.core.services import SERVICES, enabled_services, instance_target, journal_command
from redpss.ops.probe import probe_instance

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    import subprocess


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    start = subparsers.add_parser("start", help="start server")
    start.add_argument("-S", "--suspended", action="store_true", help="start with jobs and watchers suspended")
    start.set_defaults(handler=run_start)
    subparsers.add_parser("stop", help="stop server").set_defaults(handler=run_stop)
    subparsers.add_parser("abort", help="abort server (kill at once, no draining)").set_defaults(handler=run_abort)
    subparsers.add_parser("restart", help="restart server (ends the suspended mode)").set_defaults(handler=run_restart)
    status = subparsers.add_parser("status", help="show server status")
    add_json_argument(status)
    status.set_defaults(handler=run_status)


def _controlled_units(paths: InstancePaths) -> list[str]:
    """Every unit redctl stops: all of its daemons, enabled or not."""
    return [s.unit(paths.redenv) for s in SERVICES if s.controlled_by == "redctl"]


def _enabled_units(paths: InstancePaths) -> list[str]:
    """The units the config enables; a config error (exit 3) stops here, before anything starts."""
    from redpss.core.config import load_config  # noqa: PLC0415 - not needed to print the help

    config = load_config(paths.config_file)
    return [s.unit(paths.redenv) for s in enabled_services(config, "redctl")]


def _report(paths: InstancePaths, units: list[str]) -> LsbStatus:
    found = systemctl.states(units)
    width = max((len(u) for u in units), default=0)
    for unit, state in found.items():
        print(f"{unit:<{width}}  {state.describe()}")
    if paths.suspend_marker.exists():
        print(f"instance {paths.redenv} is suspended: no jobs or watchers start (end it with `redctl resume`)")
    if reason := blocked_reason(paths):
        print(f"instance {paths.redenv} starts no job: {reason}")
    return systemctl.lsb_status(found.values())


def _start(paths: InstancePaths, units: list[str], verb: str) -> int:
    ensure_unit_link(paths)
    action = systemctl.restart if verb == "restart" else systemctl.start
    # A unit that hit systemd's start limit (StartLimitBurst=) refuses every start until its failed state is reset:
    # the operator asking for a start is the moment to forget the old failures.
    systemctl.reset_failed(units)
    systemctl.start([instance_target(paths.redenv)])
    result = action(units)
    status = _report(paths, units)
    if result.returncode != 0 or status != LsbStatus.RUNNING:
        print(f"redctl: {verb} of instance {paths.redenv} failed; see: {journal_command(paths.redenv, units)}")
        if result.stderr.strip():
            print(result.stderr.strip())
        return int(ExitCode.FAILURE)
    return int(ExitCode.OK)


def run_start(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    systemctl.require_systemd()
    units = _enabled_units(paths)
    if args.suspended:
        paths.suspend_marker.touch()
    return _start(paths, units, "start")


def run_stop(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    units = _controlled_units(paths)
    result = systemctl.stop(units)
    _report(paths, units)
    if result.returncode != 0:
        print(f"redctl: stop of instance {paths.redenv} failed: {_said(result)}", file=sys.stderr)
        return int(ExitCode.FAILURE)
    return int(ExitCode.OK)


def run_abort(args: argparse.Namespace) -> int:
    """SIGKILL to every process of the units, then stop them (so Restart= does not bring them back)."""
    paths = instance_paths(args)
    units = _controlled_units(paths)
    running = [u for u, s in systemctl.states(units).items() if s.active != "inactive"]
    killed = systemctl.kill(running, "SIGKILL")
    stopped = systemctl.stop(units)
    systemctl.reset_failed(running)
    failed = [f"systemctl {what}: {_said(result)}" for what, result in (("kill", killed), ("stop", stopped))
              if result.returncode != 0]  # fmt: skip
    if not failed:
        print(
            f"aborted instance {paths.redenv}: sent SIGKILL to {len(running)} unit(s) "
            f"({', '.join(running) or 'none running'}), then stopped them without draining"
        )
    status = _report(paths, units)
    if failed or status != LsbStatus.NOT_RUNNING:
        still = "; units still running (above)" if status != LsbStatus.NOT_RUNNING else ""
        print(f"redctl: abort of instance {paths.redenv} failed: {'; '.join(failed) or 'see above'}{still}",
              file=sys.stderr)  # fmt: skip
        return int(ExitCode.FAILURE)
    return int(ExitCode.OK)


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """What a failed systemctl said (its exit code when it said nothing)."""
    return result.stderr.strip() or f"exit code {result.returncode}"


def run_restart(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    systemctl.require_systemd()
    units = _enabled_units(paths)
    paths.suspend_marker.unlink(missing_ok=True)  # the description: restarting ends the suspended mode
    systemctl.stop([u for u in _controlled_units(paths) if u not in units])
    return _start(paths, units, "restart")


def _status_without_systemd(args: argparse.Namespace) -> int:
    """No units to ask (a laptop, a container, `redctl start_trace`): ask the daemons themselves."""
    instance = Instance.from_args(args)
    probes = probe_instance(instance)
    running = sum(1 for p in probes if p.running)
    code = (
        LsbStatus.RUNNING
        if running == len(probes)
        else LsbStatus.NOT_RUNNING
        if not running
        else LsbStatus.DEAD_WITH_PIDFILE
    )
    if args.json:
        print_json(
            {
                "instance": instance.paths.redenv,
                "systemd": False,
                "suspended": instance.paths.suspend_marker.exists(),
                "foreign_database": blocked_reason(instance.paths) or None,
                "lsb_status": int(code),
                "daemons": [{"program": p.program, "running": p.running, "detail": p.detail} for p in probes],
            }
        )
        return int(code)
    print(f"{instance.paths.redenv}: not under systemd; asked the daemons directly (as run by redctl start_trace)")
    for probe in probes:
        print(f"  {probe.program:<14} {'running' if probe.running else 'stopped':<8} {probe.detail}")
    if instance.paths.suspend_marker.exists():
        print("  suspended: no new runs until `redctl resume`")
    if reason := blocked_reason(instance.paths):
        print(f"  starts no job: {reason}")
    return int(code)


def run_status(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    if not systemctl.systemd_running():
        return _status_without_systemd(args)  # reads the config once, for the daemons' addresses
    try:
        units = _enabled_units(paths)
    except RedpssError:
        units = _controlled_units(paths)  # a broken config must not hide what runs
    if args.json:
        found = systemctl.states(units)
        code = systemctl.lsb_status(found.values())
        print_json(
            {
                "instance": paths.redenv,
                "suspended": paths.suspend_marker.exists(),
                "foreign_database": blocked_reason(paths) or None,
                "lsb_status": int(code),
                "units": [s.as_dict() for s in found.values()],
            }
        )
        return int(code)
    return int(_report(paths, units))
