"""The `main()` of every instance daemon: find the instance, load its config, set up logging, run the service.

A daemon module supplies only how to build its Service from the config; everything an operator sees at start-up
(which instance, which config file, why it did not start) is said here, the same way for every daemon.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from redpss.core.config import Config
from redpss.core.config.checks import load_instance_config
from redpss.core.daemon import LogRetention, Service, run_service
from redpss.core.errors import RedpssError
from redpss.core.logging import setup_logging
from redpss.core.paths import InstancePaths

ServiceFactory = Callable[[Config, InstancePaths, argparse.Namespace], Service]


def daemon_argument_parser(service: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"redpss-{service}", description=description)
    parser.add_argument("--instance", "-i", default=None, help="instance name, e.g. TST1 (default: $REDENV)")
    parser.add_argument("--debug", "-D", action="store_true", help="log at DEBUG level whatever the config says")
    return parser


def run_instance_daemon(
    service: str,
    build: ServiceFactory,
    argv: Sequence[str] | None = None,
    *,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Parse arguments, load the instance's config, and run the service built by `build`; return the exit code."""
    parser = parser or daemon_argument_parser(service, f"RED-PSS {service} daemon")
    args = parser.parse_args(argv)
    try:
        paths = InstancePaths.from_env(name=args.instance).require()
        config = load_instance_config(paths)  # the checks `redinfo --check` runs, before binding anything
    except RedpssError as exc:
        # Under systemd stderr lands in `journalctl -u redpss-<service>@<instance>`: the operator sees this text.
        print(f"redpss-{service}: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    level = "DEBUG" if args.debug else config.redctl.log_level
    setup_logging(service, instance=paths.redenv, level=level, log_file=paths.log_file(service))
    try:
        instance_service = build(config, paths, args)
    except RedpssError as exc:
        print(f"redpss-{service}: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return run_service(instance_service, retention=LogRetention(paths.log, config.redctl.log_retention))
