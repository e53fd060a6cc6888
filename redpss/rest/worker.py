"""The gunicorn worker of the REST API: uvicorn's, with our TLS floor, a deadline for request heads and our log
records.

uvicorn builds the worker's TLS context from gunicorn's settings but has no minimum protocol version: the context is
built first and then hardened (tls.harden), before the first connection is accepted. uvicorn's loggers get
gunicorn's handlers without propagation; ours send them to the root logger, which the master set up (journald or
stderr, and the daily file in log/REST/), like every other record of the process.

uvicorn's h11 protocol starts no timer before a connection's first response: a connection that sends nothing, or
half a request head, stays open for good, and a few thousand of them (no login needed) take every descriptor of
the worker, then the master's probe gets no answer and the watchdog restarts the unit until its start limit.
`HeadDeadlineProtocol` closes a connection that has not sent a whole request head REQUEST_HEAD_TIMEOUT seconds
after it was made or after its last response, and one whose request body is still coming in at two looks in a row
(10-20 s: the console's forms, the only bodies read, come with their head; a login POST whose body never came held
its connection, and a thousand of them answered every request 503 while the probe still counted that an answer);
`limit_concurrency` answers 503 beyond LIMIT_CONCURRENCY
connections instead of taking more. Before either, the TLS handshake: asyncio gives a peer 60 seconds for it and
uvicorn counts a connection only once it is done, so `HandshakeDeadlineLoop` (the worker's event loop) gives
TLS_HANDSHAKE_TIMEOUT seconds instead.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from redpss.rest.tls import harden

REQUEST_HEAD_TIMEOUT = 10.0  # seconds a connection has to send a whole request head (after TLS, after a response)
LIMIT_CONCURRENCY = 1000  # connections per worker before new requests get 503 (the unit's LimitNOFILE is 4096)
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds a new connection has to finish its TLS handshake


class HandshakeDeadlineLoop(asyncio.SelectorEventLoop):
    """asyncio's event loop, whose TLS listeners close a connection that has not finished its handshake within
    TLS_HANDSHAKE_TIMEOUT seconds (uvicorn passes no handshake timeout, so asyncio's 60 s applied)."""

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", TLS_HANDSHAKE_TIMEOUT)
        return await super().create_server(*args, **kwargs)


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol; a connection must send a whole request head within REQUEST_HEAD_TIMEOUT."""

    _head_deadline: asyncio.TimerHandle | None = None
    _body_cycle: object = None  # the request whose body was still coming in at the last look

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        self._head_deadline = (
            None if self.transport.is_closing() else (self.loop.call_later(REQUEST_HEAD_TIMEOUT, self._head_overdue))
        )

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        answered = self.cycle is None or self.cycle.response_complete
        sending_body = self.conn.their_state is h11.SEND_BODY
        # no whole request head yet, a body still coming in for a request already answered (the answer needed none
        # of it: a 401 or 404), or a body still coming in at the second look: the connection serves nobody
        if self.conn.their_state is h11.IDLE or (sending_body and (answered or self.cycle is self._body_cycle)):
            self.transport.close()
        else:
            self._body_cycle = self.cycle if sending_body else None
            self._arm_head_deadline()  # a request under way: looked at again later


class RestWorker(UvicornWorker):  # type: ignore[misc]
    # No access log: a line per request would cost more than a /health answer; refusals are logged by auth.
    CONFIG_KWARGS: dict[str, Any] = {
        "loop": f"{__name__}:HandshakeDeadlineLoop",
        "http": HeadDeadlineProtocol,
        "lifespan": "on",
        "access_log": False,
        "limit_concurrency": LIMIT_CONCURRENCY,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        logger = logging.getLogger("uvicorn.error")
        logger.handlers = []
        logger.propagate = True
        self.config.ssl_version = ssl.PROTOCOL_TLS_SERVER  # gunicorn's ssl_version setting is deprecated and ignored

    async def _serve(self) -> None:
        self.config.app = self.wsgi  # as the base class does first; load() wraps it
        self.config.load()
        if self.config.ssl is not None:
            harden(self.config.ssl)
        # The application and the libraries it loaded (pyexasol, Starlette) stay for the worker's life: keep them
        # out of the cyclic collector's generations, so a collection per so many requests does not walk them all.
        gc.freeze()
        await super()._serve()
