"""The JSON2CSV daemon (program redpss-json2csv): JSON files in data/input become CSV; see redpss.convert.service."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from redpss.convert.service import ConvertService
from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.entry import run_instance_daemon
from redpss.core.paths import InstancePaths


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return ConvertService("json", config, paths)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("json2csv", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
