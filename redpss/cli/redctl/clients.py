"""How redctl reaches an instance: the operations layer's Instance, named by the command line's --instance."""

from __future__ import annotations

import argparse

from redpss.cli.common import instance_paths
from redpss.ops.instance import CONNECT_TIMEOUT, NotRunning
from redpss.ops.instance import Instance as OpsInstance

__all__ = ["CONNECT_TIMEOUT", "Instance", "NotRunning"]


class Instance(OpsInstance):
    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Instance:
        """The instance named by --instance (or $REDENV), with its config loaded."""
        from redpss.core.config import load_config  # noqa: PLC0415 - not needed to print the help

        paths = instance_paths(args)
        return cls(paths, load_config(paths.config_file))
