"""devdb for an instance (`redpss-devdb --instance TST1`): everything from the instance's config.

An instance with `[redctl] devdb_enabled = true` runs the embedded database in place of Exasol: it listens on the
host and port of `exa_connection` (which must be this machine), lets exa_username log in with exa_password, and keeps
its DuckDB file in $REDENV_HOME/lib/devdb. So the other daemons connect exactly as they would to Exasol.
"""

from __future__ import annotations

from redpss.core.config import Config
from redpss.core.config.checks import embedded_database_address, not_local_problem
from redpss.core.errors import ConfigError
from redpss.core.paths import InstancePaths
from redpss.devdb.server import ServerSettings


def listen_address(config: Config) -> tuple[str, int]:
    """(host, port) of the first host of exa_connection; ConfigError unless it is on this machine."""
    address = embedded_database_address(config)
    if address is None:  # the same check every daemon and `redinfo --check` run (core.config.checks)
        raise ConfigError(config.path, [not_local_problem(config)])
    return address


def settings_for_instance(config: Config, paths: InstancePaths) -> ServerSettings:
    host, port = listen_address(config)
    return ServerSettings(
        data_dir=paths.devdb_dir,
        host=host,
        port=port,
        user=config.default.exa_username,
        password=config.default.exa_password.reveal(),
        database_name=config.default.exa_dbname,
    )
