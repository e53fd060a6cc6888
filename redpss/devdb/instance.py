"""devdb for an instance (`redpss-devdb --instance TST1`): everything from the instance's config.

An instance with `[redctl] devdb_enabled = true` runs the embedded database in place of Exasol: it listens on the
host and port of `exa_connection` (which must be this machine), lets exa_username log in with exa_password, and keeps
its DuckDB file in $REDENV_HOME/lib/devdb. So the other daemons connect exactly as they would to Exasol.
"""

from __future__ import annotations

from redpss.core.config import Config
from redpss.core.errors import ConfigError
from redpss.core.paths import InstancePaths
from redpss.devdb.server import ServerSettings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def listen_address(config: Config) -> tuple[str, int]:
    """(host, port) of the first host of exa_connection; ConfigError unless it is on this machine."""
    first = config.default.exa_connection.split(",")[0]
    host_part, _, port_part = first.rpartition(":")
    if not host_part:
        host_part, port_part = first, "8563"
    host = host_part.split("/")[0]  # a /FINGERPRINT is the client's business
    if host not in LOCAL_HOSTS or not port_part.isdigit():
        raise ConfigError(config.path, [
            f"[DEFAULT] exa_connection = {config.default.exa_connection!r}: with [redctl] devdb_enabled = true it "
            "must name this machine, e.g. 127.0.0.1:8563, where the embedded database listens"
        ])
    return ("127.0.0.1" if host == "localhost" else host), int(port_part)


def settings_for_instance(config: Config, paths: InstancePaths) -> ServerSettings:
    host, port = listen_address(config)
    return ServerSettings(
        data_dir=paths.devdb_dir,
        host=host,
        port=port,
        user=config.default.exa_username,
        password=config.default.exa_password.reveal(),
    )
