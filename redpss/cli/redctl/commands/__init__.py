"""The redctl commands, one module per group; each module has `register(subparsers)` setting `handler`."""

from __future__ import annotations

from redpss.cli.redctl.commands import control, db, jobs, lifecycle, trace, version

# Order is the order of `redctl -h`. A module registers one or more subcommands.
COMMAND_MODULES = [version, lifecycle, trace, control, jobs, db]
