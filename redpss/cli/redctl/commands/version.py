"""redctl version: the versions an operator is asked for first when something breaks."""

from __future__ import annotations

import argparse

import redpss
from redpss.cli.common import add_json_argument, print_json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("version", help="show versions")
    add_json_argument(parser)
    parser.set_defaults(handler=run, needs_instance=False)


def versions() -> dict[str, str]:
    import platform  # noqa: PLC0415 - only when versions are asked for: keeps `redctl -h` fast
    from importlib import metadata  # noqa: PLC0415

    found = {"redpss": redpss.__version__, "python": platform.python_version()}
    for package in ("pyexasol", "duckdb", "pyftpdlib", "starlette", "gunicorn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def run(args: argparse.Namespace) -> int:
    found = versions()
    if args.json:
        print_json(found)
    else:
        for name, version in found.items():
            print(f"{name:<10} {version}")
    return 0
