"""devdb as a RED-PSS daemon: the server on the core service base (READY once listening, SIGTERM stops it).

SIGHUP re-reads the instance's config: the log level applies at once; the address, the credentials and the database
name are bound when devdb starts, so a change to them is named in the log with the restart it needs. A devdb started
with command-line settings (--data) has nothing to re-read and says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from redpss.core.daemon import Service
from redpss.core.errors import RedpssError, StartupError
from redpss.core.logging.levels import level_from_name
from redpss.core.reloading import describe_change
from redpss.core.services import service_spec
from redpss.devdb.server import DevDbServer, ServerSettings

log = logging.getLogger("redpss.devdb.service")


@dataclass(frozen=True)
class Reloaded:
    """What a reload reads: the log level (None when fixed, e.g. by --debug) and the server settings."""

    log_level: str | None
    settings: ServerSettings


ReloadSource = Callable[[], Reloaded]


class DevDbService(Service):
    name = "devdb"
    tick_interval = 5.0
    drain_timeout = service_spec("devdb").drain_timeout

    def __init__(self, settings: ServerSettings, reload_source: ReloadSource | None = None) -> None:
        self.settings = settings
        self.server = DevDbServer(settings)
        self._reload_source = reload_source
        self._stopped = False

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.server.start)
        except OSError as exc:
            raise StartupError(f"devdb cannot listen on {self.settings.host}:{self.settings.port}: {exc}") from exc

    async def drain(self) -> None:
        # Clients keep their sessions open indefinitely, so waiting for them would only delay the stop: open
        # transactions are rolled back (as on an Exasol restart) and the database file is checkpointed.
        await self._stop()

    async def abort(self) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            await asyncio.to_thread(self.server.stop)

    def status(self) -> str:
        return self.server.status()

    async def reload(self) -> None:
        if self._reload_source is None:
            log.warning(
                "reload: devdb runs from command-line settings (--data), which cannot be re-read; restart it with "
                "the new arguments to change them"
            )
            return
        try:
            fresh = await asyncio.to_thread(self._reload_source)
        except RedpssError as exc:
            log.error("reload: %s; devdb keeps its current settings", exc)
            return
        changed = False
        root = logging.getLogger()
        if fresh.log_level is not None and level_from_name(fresh.log_level) != root.level:
            root.setLevel(level_from_name(fresh.log_level))
            log.info("reload: log level %s (applied)", fresh.log_level)
            changed = True
        for name, before, after in _setting_changes(self.settings, fresh.settings):
            log.warning(
                "reload: %s: takes effect only after a restart of devdb (`redctl restart`)",
                describe_change(name, before, after),
            )
            changed = True
        if not changed:
            log.info("reload: red_params.conf has no change that concerns devdb")


def _setting_changes(old: ServerSettings, new: ServerSettings) -> list[tuple[str, object, object]]:
    return [
        (field.name, getattr(old, field.name), getattr(new, field.name))
        for field in dataclasses.fields(ServerSettings)
        if getattr(old, field.name) != getattr(new, field.name)
    ]
