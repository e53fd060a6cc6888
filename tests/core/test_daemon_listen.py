"""The daemon base's share of serving: a port it cannot have is a StartupError naming the keys and the holder, and
`ping` is answered the same way by every daemon."""

from __future__ import annotations

import asyncio
import os

import pytest

from redpss import __version__
from redpss.core.daemon import Service
from redpss.core.errors import StartupError
from redpss.core.wire import Connection, JsonLineServer, Message
from tests.support.held_port import held_port


class _Named(Service):
    name = "sample"

    def status(self) -> str:
        return "3 things done"


async def _nothing(request: Message, connection: Connection) -> Message:
    return {"ok": True}


def test_a_taken_port_stops_the_start_naming_the_keys_and_the_holder() -> None:
    async def scenario(port: int) -> None:
        server = JsonLineServer(_nothing, "secret", "SAMPLE")
        try:
            await _Named().listen(server, "127.0.0.1", port, "[redctl] sample_port")
        finally:
            await server.close()

    with held_port() as port, pytest.raises(StartupError) as caught:
        asyncio.run(scenario(port))
    message = str(caught.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port} ([redctl] sample_port): port {port}")
    assert "already in use" in message and "[Errno" not in message


def test_ping_names_the_daemon_its_version_pid_and_status() -> None:
    assert _Named().ping_reply() == {
        "ok": True,
        "server": "sample",
        "version": __version__,
        "pid": os.getpid(),
        "status": "3 things done",
    }
