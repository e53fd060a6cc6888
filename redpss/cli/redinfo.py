"""redinfo: one screen about an instance (versions, paths, config, units, database, disk), or --check of its config.

--check runs exactly what every daemon checks at start (redpss.core.config.checks), so an OK means they will start.

Passwords are never shown. The database check is a TCP connect to exa_connection's first host with a short timeout:
it tells "nothing listens there" from "something does", which is the first question when the instance cannot work.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redpss.cli import systemctl
from redpss.cli.common import add_instance_argument, add_json_argument, instance_paths, print_json, run_command
from redpss.cli.redctl.commands.version import versions
from redpss.cli.redsysctl.instances import all_units, instance_version, unit_link
from redpss.core.config import Config, Secret
from redpss.core.config.checks import load_instance_config
from redpss.core.db import first_address
from redpss.core.errors import ConfigError
from redpss.core.exitcodes import ExitCode
from redpss.core.net import tcp_reachable
from redpss.core.paths import InstancePaths
from redpss.mail.spoolstat import describe as describe_spool
from redpss.mail.spoolstat import spool_summary

DB_CONNECT_TIMEOUT = 2.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redinfo", description="show everything about a RED-PSS instance")
    add_instance_argument(parser)
    add_json_argument(parser)
    parser.add_argument(
        "--check", action="store_true", help="only validate red_params.conf: exit 0 when valid, 3 listing every problem"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command("redinfo", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    paths = instance_paths(args)
    if args.check:
        load_instance_config(paths)  # what every daemon checks at start; ConfigError lists every problem, exit 3
        print(f"{paths.config_file}: OK")
        return int(ExitCode.OK)
    info = collect(paths)
    if args.json:
        print_json(info)
    else:
        show(info)
    return int(ExitCode.OK)


def db_reachable(dsn: str, timeout: float = DB_CONNECT_TIMEOUT) -> dict[str, Any]:
    address = first_address(dsn)
    if address is None:
        return {"address": dsn, "reachable": False, "detail": "cannot read host:port from exa_connection"}
    reachable, why = tcp_reachable(*address, timeout=timeout)
    return {
        "address": f"{address[0]}:{address[1]}",
        "reachable": reachable,
        "detail": "TCP connect ok" if reachable else why,
    }


def du(folder: Path) -> int:
    """Bytes used by the files below `folder` (0 when it is missing); symlinks are not followed."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except OSError:
                continue
    return total


def config_summary(config: Config) -> dict[str, dict[str, Any]]:
    """Every key of every section, passwords masked."""
    summary: dict[str, dict[str, Any]] = {}
    for section in ("default", "redctl", "redinfo", "rest"):
        values = vars(getattr(config, section))
        summary[section] = {
            k: ("********" if v else "(empty)") if isinstance(v, Secret) else v for k, v in values.items()
        }
    return summary


def collect(paths: InstancePaths) -> dict[str, Any]:
    info: dict[str, Any] = {
        "instance": paths.redenv,
        "versions": {**versions(), "instance code": instance_version(paths)},
        "paths": {
            "REDHOME": str(paths.redhome),
            "REDENV_HOME": str(paths.home),
            "config": str(paths.config_file),
            "log": str(paths.log),
            "data": str(paths.data),
            "unit link": str(unit_link(paths)),
        },
        "autostart": paths.autostart_marker.exists(),
        "suspended": paths.suspend_marker.exists(),
        "disk": {"data": du(paths.data), "log": du(paths.log)},
        "mail": spool_summary(paths),
    }
    try:
        config = load_instance_config(paths)
        info["config"] = config_summary(config)
        info["config_problems"] = []
        info["database"] = db_reachable(config.default.exa_connection)
    except ConfigError as exc:
        info["config"] = None
        info["config_problems"] = exc.problems
        info["database"] = None
    if systemctl.systemd_running():
        info["units"] = {
            u: s.describe() for u, s in systemctl.states(all_units(paths)).items() if s.load != "not-found"
        }
    else:
        info["units"] = None
    return info


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def show(info: dict[str, Any]) -> None:
    flags = [name for name in ("autostart", "suspended") if info[name]]
    print(f"RED-PSS instance {info['instance']}" + (f" ({', '.join(flags)})" if flags else ""))
    print("versions:  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    for name, value in info["paths"].items():
        print(f"{name + ':':<12}{value}")
    print(f"disk:       data {_size(info['disk']['data'])}, log {_size(info['disk']['log'])}")
    print(f"mail spool: {describe_spool(info['mail'])}")
    if info["config"] is None:
        print("config:     INVALID (run `redinfo --check`):")
        for problem in info["config_problems"]:
            print(f"  - {problem}")
    else:
        d, r, rest = info["config"]["default"], info["config"]["redctl"], info["config"]["rest"]
        print(
            f"config:     database {d['exa_dbname']} at {d['exa_connection']} as {d['exa_username']} "
            f"(password {d['exa_password']}), log level {r['log_level']}, retention {r['log_retention']} days"
        )
        print(
            f"            devdb {'on' if r['devdb_enabled'] else 'off'}, CFI {'on' if r['cfi_enabled'] else 'off'}, "
            f"MAIL2CMD {'on' if r['mail2cmd_enabled'] else 'off'}, REST {'on' if rest['rest_enabled'] else 'off'}"
        )
        db = info["database"]
        print(f"database:   {db['address']} {'reachable' if db['reachable'] else 'NOT reachable'} ({db['detail']})")
    if info["units"] is None:
        print("units:      systemd is not running here (use `redctl start_trace`)")
    else:
        print("units:" + ("" if info["units"] else "      none loaded"))
        for unit, state in info["units"].items():
            print(f"  {unit:<36} {state}")


if __name__ == "__main__":
    raise SystemExit(main())
