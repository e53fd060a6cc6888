"""redsysctl's parser and commands."""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redpss.cli import systemctl
from redpss.cli.common import print_json, print_table, refuse_root_in_another_users_tree, run_command
from redpss.cli.redsysctl import versions
from redpss.cli.redsysctl.instances import (
    active_units,
    all_units,
    ensure_unit_link,
    instance_program,
    instance_version,
    link_programs,
    unit_link,
)
from redpss.core.config import load_config, render_config
from redpss.core.errors import InstanceError, RedpssError, UsageError
from redpss.core.exitcodes import ExitCode, LsbStatus
from redpss.core.net import listening_ports
from redpss.core.paths import InstancePaths, create_instance_tree, iter_instances, redhome_from_env
from redpss.core.ports import allocate_ports

USAGE = """\
USAGE:
Manage the current instance (uses REDENV):
  redsysctl {start | stop | status | restart}
Manage a specific instance:
  redsysctl {start | stop | status | restart} instance
Start/stop all instances:
  redsysctl {start-all | stop-all | restart-all | status-all}
List, create and drop instances:
  redsysctl list [--json]
  redsysctl create instance
  redsysctl drop instance [--yes]
Versions side by side (RPM installs, $REDHOME/lib/<series>):
  redsysctl versions                   installed versions and the instances on each
  redsysctl move instance series       run the instance on another installed version (restarts it if it ran)
"""
SINGLE = ("start", "stop", "status", "restart")
ALL = ("start-all", "stop-all", "restart-all", "status-all")
COMMANDS = (*SINGLE, *ALL, "list", "create", "drop", "versions", "move")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redsysctl",
        usage="redsysctl command [instance] (see below)",
        description=USAGE,
        add_help=True,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=COMMANDS, metavar="command")
    parser.add_argument("instance", nargs="?", default=None)
    parser.add_argument("series", nargs="?", default=None, help="move: the version series, e.g. 0.2")
    parser.add_argument("--json", action="store_true", help="list: machine-readable output")
    parser.add_argument("--yes", action="store_true", help="drop: do not ask for confirmation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # options anywhere: `drop --yes TST3` as `drop TST3 --yes`
    dispatch = _dispatch_versions if args.command in ("versions", "move") else _dispatch
    status = args.command in ("status", "status-all")
    return run_command(
        "redsysctl", lambda: refuse_root_in_another_users_tree("redsysctl") or dispatch(args), status=status
    )


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if args.series:
        raise UsageError(f"{command} takes at most one argument (the instance)")
    if command in ALL or command == "list":
        if args.instance:
            raise UsageError(f"{command} takes no instance (it acts on every instance)")
        redhome = redhome_from_env()
        if command == "list":
            return list_instances(redhome, as_json=args.json)
        return for_all(redhome, command.removesuffix("-all"))
    if command in ("create", "drop") and not args.instance:
        raise UsageError(f"{command} needs the instance name, e.g. redsysctl {command} TST1")
    if not args.instance and not os.environ.get("REDENV", "").strip():
        print(f"redsysctl: {command} needs an instance: name it or set REDENV\n", file=sys.stderr)
        print(USAGE, file=sys.stderr, end="")
        return int(ExitCode.USAGE)
    paths = InstancePaths.from_env(name=args.instance)
    if command == "create":
        return create(paths)
    if command == "drop":
        return drop(paths, confirmed=args.yes)
    return act(paths.require(), command)


def _dispatch_versions(args: argparse.Namespace) -> int:
    if args.command == "versions":
        if args.instance:
            raise UsageError("versions takes no instance (it lists every installed version)")
        return list_versions(redhome_from_env())
    if not args.instance or not args.series:
        raise UsageError("move needs the instance and the version series, e.g. redsysctl move TST1 0.2")
    return move(InstancePaths.from_env(name=args.instance).require(), args.series)


def _instance_env(paths: InstancePaths) -> dict[str, str]:
    return {**os.environ, **paths.environment()}


def _call(paths: InstancePaths, program: str, verb: str, transcript: list[str] | None = None) -> int:
    """`program -i INSTANCE VERB`; a program that cannot be run is reported and counts as failed, so `start-all`
    at boot goes on with the next instance. With `transcript`, what it prints is collected there, not shown."""
    argv = [instance_program(paths, program), "-i", paths.redenv, verb]
    sys.stdout.flush()
    try:
        if transcript is None:
            return subprocess.run(argv, check=False, env=_instance_env(paths)).returncode
        done = subprocess.run(
            argv,
            check=False,
            env=_instance_env(paths),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        transcript.append(done.stdout)
        return done.returncode
    except OSError as exc:
        message = (
            f"redsysctl: {paths.redenv}: cannot run {argv[0]}: {exc.strerror or exc}; link the instance to an "
            f"installed version with: redsysctl move {paths.redenv} <series> (see: redsysctl versions)"
        )
        if transcript is None:
            print(message, file=sys.stderr)
        else:
            transcript.append(message + "\n")
        return int(LsbStatus.UNKNOWN if verb == "status" else ExitCode.FAILURE)


def _rest_enabled(paths: InstancePaths) -> bool:
    try:
        return load_config(paths.config_file).rest.rest_enabled
    except RedpssError:
        return False  # redctl reports the config problem itself


def act(paths: InstancePaths, verb: str, transcript: list[str] | None = None) -> int:
    """One instance: redctl VERB, and restctl VERB where the REST API is enabled (stop/status: always)."""
    systemctl.require_systemd()
    codes = [_call(paths, "redctl", verb, transcript)]
    if verb in ("stop", "status") or _rest_enabled(paths):
        codes.append(_call(paths, "restctl", verb, transcript))
    if verb == "stop":
        systemctl.stop([u for u in all_units(paths) if u.endswith(".target")])
    if verb == "status":
        return int(systemctl.worst_status(codes))
    return int(ExitCode.OK if all(c == 0 for c in codes) else ExitCode.FAILURE)


def for_all(redhome: Path, verb: str) -> int:
    """start-all: the .autostart instances; stop-all/status-all: every instance; restart-all: those running or
    marked for autostart (an instance started by hand comes back too)."""
    systemctl.require_systemd()
    instances = list(iter_instances(redhome))
    if verb == "start":
        chosen = [p for p in instances if p.autostart_marker.exists()]
    elif verb == "restart":
        chosen = [p for p in instances if p.autostart_marker.exists() or active_units(p)]
    else:
        chosen = instances
    codes: dict[str, int] = {}
    if verb in ("start", "restart") and len(chosen) > 1:
        codes = _all_at_once(chosen, verb)
    else:
        for paths in chosen:
            print(f"--- {paths.redenv} ({paths.home})")
            codes[paths.redenv] = act(paths, verb)
    skipped = sorted({p.redenv for p in instances} - {p.redenv for p in chosen})
    if skipped and verb == "start":
        print(f"not started (no .autostart): {', '.join(skipped)}")
    if not instances:
        print(f"no instances under {redhome / 'env'}")
    if verb == "status":
        return int(_status_summary(codes))
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        print(f"redsysctl: {verb} did not succeed for: {', '.join(failed)}")
        return int(ExitCode.FAILURE)
    return int(ExitCode.OK)


PARALLEL_STARTS = 4  # instances start-all and restart-all take at once


def _all_at_once(chosen: list[InstancePaths], verb: str) -> dict[str, int]:
    """Start (restart) the instances side by side, PARALLEL_STARTS at a time, each one's output (stdout and stderr
    together) shown whole once it is done, in order. One after the other, each waiting for its daemons' READY (JMON
    waits up to a minute for a database still coming up at boot), a few instances outlast redsys.service's
    TimeoutStartSec and the rest never start."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - start-all and restart-all only

    def one(paths: InstancePaths) -> tuple[int, list[str]]:
        transcript: list[str] = []
        try:
            return act(paths, verb, transcript), transcript
        except Exception as exc:  # this instance failed; the others' outcomes still count and are shown
            transcript.append(f"redsysctl: {paths.redenv}: {verb} failed: {exc}\n")
            return int(ExitCode.FAILURE), transcript

    codes: dict[str, int] = {}
    # a few at a time: each start has its daemons' start-up work, which on a small machine compete for the CPUs
    with ThreadPoolExecutor(max_workers=min(len(chosen), PARALLEL_STARTS)) as pool:
        for paths, (code, transcript) in zip(chosen, pool.map(one, chosen), strict=True):
            print(f"--- {paths.redenv} ({paths.home})")
            print("".join(transcript), end="", flush=True)
            codes[paths.redenv] = code
    return codes


def _status_summary(codes: dict[str, int]) -> LsbStatus:
    """status-all in LSB terms: 0 every instance runs, 1 something failed, 3 stopped on purpose (nothing failed)."""
    groups = {
        "running": [n for n, c in codes.items() if c == LsbStatus.RUNNING],
        "stopped": [n for n, c in codes.items() if c == LsbStatus.NOT_RUNNING],
        "failed": [n for n, c in codes.items() if c not in (LsbStatus.RUNNING, LsbStatus.NOT_RUNNING)],
    }
    print("; ".join(f"{label}: {', '.join(names)}" for label, names in groups.items() if names) or "no instances")
    return systemctl.worst_status(codes.values()) if codes else LsbStatus.NOT_RUNNING


def list_instances(redhome: Path, *, as_json: bool) -> int:
    """Every instance with its version, autostart flag and the state of each unit (like pg_lsclusters)."""
    rows: list[dict[str, Any]] = []
    running = systemctl.systemd_running()
    for paths in iter_instances(redhome):
        units = systemctl.states(all_units(paths)) if running else {}
        rows.append(
            {
                "instance": paths.redenv,
                "version": instance_version(paths),
                "autostart": paths.autostart_marker.exists(),
                "suspended": paths.suspend_marker.exists(),
                "home": str(paths.home),
                "units": {u: s.active for u, s in units.items() if s.load != "not-found" or s.active != "inactive"},
            }
        )
    if as_json:
        print_json(rows)
        return int(ExitCode.OK)
    table = [
        {
            **r,
            "autostart": "yes" if r["autostart"] else "no",
            "suspended": "yes" if r["suspended"] else "no",
            "units": " ".join(f"{u.split('@')[0].removeprefix('redpss-')}:{a}" for u, a in r["units"].items())
            or ("-" if running else "(systemd not running)"),
        }
        for r in rows
    ]
    print_table(table, ["instance", "version", "autostart", "suspended", "home", "units"])
    return int(ExitCode.OK)


def create(paths: InstancePaths) -> int:
    """Build the instance tree with a sample config (mode 0600); enable nothing; refuse an existing instance."""
    if paths.home.exists() or unit_link(paths).is_symlink():
        raise InstanceError(
            f"instance {paths.redenv} exists already ({paths.home}); drop it first or pick another name"
        )
    ports = allocate_ports(paths, listening_ports())  # before anything is written: a full port space stops here
    create_instance_tree(paths)
    from redpss.cfi.tls import ensure_certificate  # noqa: PLC0415 - pyOpenSSL only for `create`

    ensure_certificate(paths)  # self-signed, for CFISRV; the operator may replace it (docs/cfi.md)
    config = paths.config_file
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(render_config({**ports, "redctl": {**ports.get("redctl", {}), "cfi_password": _new_password()}}))
    linked = link_programs(paths)
    ensure_unit_link(paths)
    print(f"created instance {paths.redenv} in {paths.home}")
    print(f"  programs linked into {paths.bin}: {len(linked)}")
    print(f"  ports: {_port_summary(ports)} (a block apart from every other instance's)")
    print(
        f"  next: set exa_password (and check the other keys) in {config}, then run: redinfo -i {paths.redenv} "
        f"--check; start it with: redsysctl start {paths.redenv}; autostart at boot: touch {paths.autostart_marker}"
    )
    return int(ExitCode.OK)


def _new_password() -> str:
    """A random password for the instance's FTPS account (db_install hands it to the database's connection)."""
    import secrets  # noqa: PLC0415

    return secrets.token_urlsafe(24)


def _port_summary(ports: dict[str, dict[str, str]]) -> str:
    numbers = sorted(int(port) for keys in ports.values() for port in keys.values())
    return f"{numbers[0]}-{numbers[-1]}" if numbers else "-"


def drop(paths: InstancePaths, *, confirmed: bool) -> int:
    """Delete the instance tree and its unit link; refuse while any of its units runs."""
    paths.require()
    if systemctl.systemd_running():
        busy = active_units(paths)
        if busy:
            raise InstanceError(
                f"instance {paths.redenv} still runs {', '.join(busy)}; stop it first: redsysctl stop {paths.redenv}"
            )
    accounts = _sftp_accounts(paths)
    if accounts:
        commands = "; ".join(f"redftp_userdel {paths.redenv} {account}" for account in accounts)
        raise InstanceError(
            f"instance {paths.redenv} still has {len(accounts)} sFTP user(s), who could log in and upload into a "
            f"dropped instance; remove them first (their uploads go with them: copy what you need): {commands}"
        )
    if not confirmed:
        if not sys.stdin.isatty():
            raise UsageError(f"drop deletes {paths.home} with all its data and logs; add --yes to confirm")
        answer = input(f"delete {paths.home} with all its data and logs? type {paths.redenv} to confirm: ")
        if answer.strip() != paths.redenv:
            print("nothing deleted")
            return int(ExitCode.FAILURE)
    # Renamed aside first, in one step: an instance is there or gone, never half deleted and still listed (create
    # would refuse the name, drop fail again on the same file); what cannot be deleted stays in the renamed folder.
    aside = paths.home.with_name(f".dropped-{paths.home.name}-{os.getpid()}")
    try:
        paths.home.rename(aside)
    except OSError as exc:
        raise InstanceError(f"cannot drop {paths.redenv}: renaming {paths.home} failed: {exc.strerror}") from None
    unit_link(paths).unlink(missing_ok=True)
    left = _remove_tree(aside)
    if left:
        print(
            f"redsysctl: dropped instance {paths.redenv}, but {len(left)} file(s) or folder(s) could not be deleted "
            f"(first: {left[0]}); they are in {aside}: remove it as root",
            file=sys.stderr,
        )
        return int(ExitCode.FAILURE)
    print(f"dropped instance {paths.redenv} ({paths.home})")
    return int(ExitCode.OK)


def _remove_tree(folder: Path) -> list[str]:
    """Delete `folder` with everything that can be deleted; what could not, with why."""
    left: list[str] = []

    def note(_function: object, path: str, exc: BaseException) -> None:
        if getattr(exc, "errno", None) != errno.ENOTEMPTY:  # a folder that keeps what could not be deleted
            left.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")

    if sys.version_info >= (3, 12):  # onerror is deprecated there
        shutil.rmtree(folder, onexc=note)
    else:
        shutil.rmtree(folder, onerror=lambda function, path, info: note(function, path, info[1]))
    return left


def _sftp_accounts(paths: InstancePaths) -> list[str]:
    """The instance's sFTP users (redftp_<instance>_<user>), by the short names redftp_userdel takes."""
    import pwd  # noqa: PLC0415

    from redpss.redftp.names import SYSTEM_NAME_PREFIX  # noqa: PLC0415

    prefix = f"{SYSTEM_NAME_PREFIX}{paths.redenv.lower()}_"
    return sorted(entry.pw_name.removeprefix(prefix) for entry in pwd.getpwall() if entry.pw_name.startswith(prefix))


def list_versions(redhome: Path) -> int:
    """The versions installed side by side under $REDHOME/lib and the instances recording each."""
    on: dict[str, list[str]] = {}
    for paths in iter_instances(redhome):
        try:
            series = versions.recorded(paths) or "-"
        except InstanceError as exc:  # one bad record must not hide the others' versions
            print(f"redsysctl: {exc}", file=sys.stderr)
            series = "? (bad .version)"
        on.setdefault(series, []).append(paths.redenv)
    rows = [
        {"series": series, "version": versions.dist_version(venv) or "?", "instances": " ".join(on.pop(series, []))}
        for series, venv in versions.installed(redhome).items()
    ]
    rows += [
        {"series": series, "version": "(not installed)", "instances": " ".join(names)} for series, names in on.items()
    ]
    print_table(rows, ["series", "version", "instances"])
    return int(ExitCode.OK)


def move(paths: InstancePaths, series: str) -> int:
    """Run the instance on another installed version: new record and links, then a restart if it was running."""
    was_running = systemctl.systemd_running() and bool(active_units(paths))
    old, new = versions.move(paths, series)
    print(f"instance {paths.redenv}: version {old or '(unrecorded)'} -> {new}")
    if not was_running:
        print(f"  it is not running; it starts on {new} next time")
        return int(ExitCode.OK)
    return act(paths, "restart")
