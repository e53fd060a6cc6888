"""Everything an instance's daemons check before they start, in one function that `redinfo --check` calls too.

`load_config` validates the file on its own; a daemon also needs the file to fit the instance around it: the
embedded database must listen on this machine, the ports must be apart from every other instance's, the shared
secret (once created) must be private, the folders a daemon writes must be there, a configured CA bundle must
exist. `load_instance_config` runs all of it and lists every problem at once, so an OK from `redinfo --check` means
the daemons will not refuse the config at start. A check added here applies to both.

This module imports the database settings and the port registry, which import the config package; so it is
imported by its full name (`redpss.core.config.checks`), not from `redpss.core.config`.
"""

from __future__ import annotations

import os
from pathlib import Path

from redpss.core.config.loader import load_config
from redpss.core.config.schema import Config
from redpss.core.db.settings import first_address
from redpss.core.errors import ConfigError, StartupError
from redpss.core.paths import InstancePaths
from redpss.core.ports import EXASOL_DEFAULT_PORT, port_collisions
from redpss.core.secret import instance_secret

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# Folders a daemon writes at start: its log file, and its control socket and spools in tmp/.
WRITTEN_FOLDERS = ("log", "tmp")


def load_instance_config(paths: InstancePaths) -> Config:
    """The instance's validated config; ConfigError listing every problem of the file and of the instance."""
    around = instance_problems(paths)
    try:
        config = load_config(paths.config_file)
    except ConfigError as exc:
        raise ConfigError(exc.path, [*exc.problems, *around]) from None
    problems = [*config_problems(config, paths), *around]
    if problems:
        raise ConfigError(str(paths.config_file), problems)
    return config


def config_problems(config: Config, paths: InstancePaths) -> list[str]:
    """What a valid config still gets wrong about this instance and this server."""
    return [
        *embedded_database_problems(config),
        *ca_file_problems(config),
        *port_collisions(config, paths),
        *action_pool_problems(config),
    ]


def action_pool_problems(config: Config) -> list[str]:
    """SCHED's ACTION workers beyond what JEXEC runs at once: the runs beyond it would all be refused."""
    redctl = config.redctl
    if redctl.sched_action_pool_size <= redctl.jexec_max_running:
        return []
    return [
        f"[redctl] sched_action_pool_size = {redctl.sched_action_pool_size} is more than jexec_max_running = "
        f"{redctl.jexec_max_running}: JEXEC would refuse the ACTION jobs beyond it; raise jexec_max_running (leave "
        "room for the database's calls) or lower the pool"
    ]


def instance_problems(paths: InstancePaths) -> list[str]:
    """What the instance tree gets wrong, whatever the config says: missing folders, a shared secret others read."""
    problems = []
    for name in WRITTEN_FOLDERS:
        folder: Path = getattr(paths, name)
        if not folder.is_dir():
            problems.append(f"folder {folder} is missing; create it: mkdir -m 750 {folder}")
        elif not os.access(folder, os.W_OK | os.X_OK):
            problems.append(f"folder {folder} is not writable for this user; the daemons write there")
    if (paths.etc / "instance.secret").exists():  # created at the first start when missing
        try:
            instance_secret(paths, create=False)
        except StartupError as exc:
            problems.append(str(exc))
    return problems


def embedded_database_address(config: Config) -> tuple[str, int] | None:
    """Where the embedded database listens: exa_connection's first host and port if that is this machine."""
    address = first_address(config.default.exa_connection, default_port=EXASOL_DEFAULT_PORT)
    if address is None or address[0] not in LOCAL_HOSTS:
        return None
    host, port = address
    return ("127.0.0.1" if host == "localhost" else host), port


def embedded_database_problems(config: Config) -> list[str]:
    if not config.redctl.devdb_enabled or embedded_database_address(config) is not None:
        return []
    return [not_local_problem(config)]


def not_local_problem(config: Config) -> str:
    return (
        f"[DEFAULT] exa_connection = {config.default.exa_connection!r}: with [redctl] devdb_enabled = true it must "
        "name this machine, e.g. 127.0.0.1:8563, where the embedded database listens"
    )


def ca_file_problems(config: Config) -> list[str]:
    ca_file = config.default.exa_ca_file
    if not config.default.exa_encryption or not ca_file:
        return []
    path = Path(ca_file)
    if not path.is_file():
        return [f"[DEFAULT] exa_ca_file = {ca_file!r}: no such file; name the CA bundle (PEM) or leave it empty"]
    if not os.access(path, os.R_OK):
        return [f"[DEFAULT] exa_ca_file = {ca_file!r}: not readable for this user"]
    return []
