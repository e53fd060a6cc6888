"""Whether the REST API answers, asked over HTTPS as a client would (the master's watchdog, `restctl status`).

Only http.client and ssl: restctl loads this without gunicorn or Starlette.
"""

from __future__ import annotations

import http.client
import ssl

from redpss.core.config import Config

PROBE_TIMEOUT = 5.0  # seconds to wait for the API's answer


def probe_address(config: Config) -> tuple[str, int]:
    """Where to reach the API: the bound interface, or loopback for a wildcard."""
    host = config.rest.gu_host
    return ("127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host), config.rest.gu_port


def probe_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # asking ourselves; the certificate may name another host
    return context


def answers(address: tuple[str, int], context: ssl.SSLContext, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a worker answers an HTTPS request (any HTTP status counts: the workers serve)."""
    connection = http.client.HTTPSConnection(address[0], address[1], timeout=timeout, context=context)
    try:
        connection.request("GET", "/health", headers={"User-Agent": "redpss-rest probe"})
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True
