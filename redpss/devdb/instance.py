"""devdb for an instance (`redpss-devdb --instance TST1`): everything from the instance's config.

An instance with `[redctl] devdb_enabled = true` runs the embedded database in place of Exasol: it listens on the
host and port of `exa_connection` (which must be this machine), lets exa_username log in with exa_password, and keeps
its DuckDB file in $REDENV_HOME/lib/devdb. So the other daemons connect exactly as they would to Exasol.
"""

from __future__ import annotations

from redpss.core.config import Config
from redpss.core.db import first_address
from redpss.core.errors import ConfigError
from redpss.core.paths import InstancePaths
from redpss.devdb.server import ServerSettings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
EXASOL_DEFAULT_PORT = 8563  # what pyexasol assumes when a DSN names no port


def listen_address(config: Config) -> tuple[str, int]:
    """(host, port) of the first host of exa_connection; ConfigError unless it is on this machine."""
    address = first_address(config.default.exa_connection, default_port=EXASOL_DEFAULT_PORT)
    if address is None or address[0] not in LOCAL_HOSTS:
        raise ConfigError(
            config.path,
            [
                f"[DEFAULT] exa_connection = {config.default.exa_connection!r}: with [redctl] devdb_enabled = true it "
                "must name this machine, e.g. 127.0.0.1:8563, where the embedded database listens"
            ],
        )
    host, port = address
    return ("127.0.0.1" if host == "localhost" else host), port


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
