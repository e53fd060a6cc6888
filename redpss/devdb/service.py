"""devdb as a RED-PSS daemon: the server on the core service base (READY once listening, SIGTERM stops it)."""

from __future__ import annotations

import asyncio

from redpss.core.daemon import Service
from redpss.core.errors import StartupError
from redpss.core.services import service_spec
from redpss.devdb.server import DevDbServer, ServerSettings


class DevDbService(Service):
    name = "devdb"
    tick_interval = 5.0
    drain_timeout = service_spec("devdb").drain_timeout

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.server = DevDbServer(settings)
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
