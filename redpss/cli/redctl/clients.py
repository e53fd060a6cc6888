"""How redctl reaches an instance: its config, its database, JMON's control socket and SCHED's port."""

from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass
from pathlib import Path

from redpss.cli.common import instance_paths
from redpss.core.config import Config, load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.errors import RedpssError
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.wire import BlockingClient, WireError


class NotRunning(RedpssError):
    """The daemon redctl wants to talk to is not running."""


@dataclass
class Instance:
    paths: InstancePaths
    config: Config

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Instance:
        paths = instance_paths(args)
        return cls(paths, load_config(paths.config_file))

    def db(self) -> DbSession:
        session = DbSession(DbSettings.from_config(self.config, client_name=f"redctl ({getpass.getuser()})"))
        session.connection()  # fail here, with the operator-facing message, if the database is not there
        return session

    def jmon(self) -> BlockingClient:
        socket_path = self.paths.tmp / "jmon.sock"
        return self._connect(socket_path, "JMON")

    def sched(self) -> BlockingClient:
        return self._connect(("127.0.0.1", self.config.redctl.sched_service_port), "SCHED")

    def _connect(self, address: tuple[str, int] | Path, daemon: str) -> BlockingClient:
        try:
            return BlockingClient(address, instance_secret(self.paths, create=False), "redctl")
        except (WireError, RedpssError) as exc:
            raise NotRunning(
                f"{daemon} of instance {self.paths.redenv} is not running ({exc}); "
                f"start the instance with `redctl start` (or `redctl start_trace` outside systemd)"
            ) from exc

    def tell_jmon(self, op: str, **fields: object) -> str:
        """Ask a running JMON to act at once; when it is not running, say the change applies at its next start."""
        try:
            with self.jmon() as client:
                client.request(op, **fields)
        except NotRunning:
            return " (JMON is not running; it applies this when it starts)"
        return ""
