"""`python -m redpss.devdb` / `redpss-devdb`: run the embedded database until SIGTERM.

Two ways to say what to serve: `--instance TST1` (or REDENV) takes everything from the instance's config, as its
unit and `redctl start_trace` do; `--data DIR --port PORT ...` runs a free-standing database for tests and tools.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from redpss.core.config import Config, load_config
from redpss.core.daemon import Service, run_service
from redpss.core.entry import run_instance_daemon
from redpss.core.exitcodes import ExitCode
from redpss.core.logging import setup_logging
from redpss.core.paths import InstancePaths

PASSWORD_ENV = "REDPSS_DEVDB_PASSWORD"  # noqa: S105 - the variable's name, not a password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redpss-devdb",
        description="Embedded default database: Exasol's WebSocket protocol over a DuckDB file (test double, demo). "
        "Without --data it serves the instance named by --instance or REDENV, configured from red_params.conf.",
    )
    parser.add_argument("--data", required=True, type=Path, help="folder of the DuckDB file (created if missing)")
    parser.add_argument("--port", required=True, type=int, help="TCP port for ws://, wss:// and the HTTP transport")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate for wss:// (default: self-signed in DATA/tls)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument("--user", default="sys", help="the administrator, with the DBA role (default sys)")
    parser.add_argument(
        "--password", default=None, help=f"its password (default: ${PASSWORD_ENV}, else 'exasol', Exasol's default)"
    )
    parser.add_argument(
        "--scripts",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE, which registers EXECUTE SCRIPT stand-ins with redpss.devdb.scripts.register_script",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR (default INFO)")
    return parser


def _instance_service(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    from redpss.devdb.instance import settings_for_instance  # noqa: PLC0415 - after logging is set up
    from redpss.devdb.service import DevDbService, Reloaded  # noqa: PLC0415

    def reread() -> Reloaded:
        fresh = load_config(paths.config_file)
        return Reloaded(None if args.debug else fresh.redctl.log_level, settings_for_instance(fresh, paths))

    return DevDbService(settings_for_instance(config, paths), reread)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--data" not in arguments and not any(a in ("-h", "--help") for a in arguments):
        return run_instance_daemon("devdb", _instance_service, arguments)
    args = build_parser().parse_args(arguments)
    if (args.tls_cert is None) != (args.tls_key is None):
        print("redpss-devdb: --tls-cert and --tls-key go together", file=sys.stderr)
        return int(ExitCode.USAGE)
    setup_logging("devdb", level=args.log_level.upper())
    for module in args.scripts:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            print(f"redpss-devdb: --scripts {module}: {exc}", file=sys.stderr)
            return int(ExitCode.CONFIG)
    from redpss.devdb.server import ServerSettings  # noqa: PLC0415 - after logging is set up
    from redpss.devdb.service import DevDbService  # noqa: PLC0415

    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV, "exasol")
    settings = ServerSettings(
        data_dir=args.data,
        host=args.host,
        port=args.port,
        user=args.user,
        password=password,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    logging.getLogger("redpss.devdb").info("devdb data folder %s", args.data)
    return run_service(DevDbService(settings))


if __name__ == "__main__":
    sys.exit(main())
