"""The gunicorn worker of the REST API: uvicorn's, with our TLS floor and our log records.

uvicorn builds the worker's TLS context from gunicorn's settings but has no minimum protocol version: the context is
built first and then hardened (tls.harden), before the first connection is accepted. uvicorn's loggers get
gunicorn's handlers without propagation; ours send them to the root logger, which the master set up (journald or
stderr, and the daily file in log/REST/), like every other record of the process.
"""

from __future__ import annotations

import gc
import logging
import ssl
from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from redpss.rest.tls import harden


class RestWorker(UvicornWorker):  # type: ignore[misc]
    # No access log: a line per request would cost more than a /health answer; refusals are logged by auth.
    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto", "lifespan": "on", "access_log": False}

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
