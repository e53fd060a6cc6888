"""Framing and authentication of RED-PSS's own TCP and unix-socket services: JSON, one message per line.

A client's first message is `{"op": "hello", "version": 1, "secret": ..., "client": ...}`; the server answers
`{"ok": true, "server": ..., "version": 1}` or refuses with `{"ok": false, "code": ..., "error": ...}` and closes.
After that every request gets exactly one reply (`{"ok": true, ...}` or `{"ok": false, "code": ..., "error": ...}`;
a request's optional "seq" is echoed so a client can match replies, leaving "id" free for the request's own fields),
and a server may push messages that carry an "event" key to clients that asked for them. From version 2 a request
of an op the server names in `payload_ops` may declare `"payload": N` and send N raw bytes after its line (bulk data
without JSON escaping: DBLS's log blocks); TLS contexts for the services facing the database are in `wire.tls`.

What an unauthenticated peer can cost is bounded per server (`Limits`): a small line, a short deadline for the hello,
a cap on connections that have not said hello (the oldest is dropped, so a flood never locks out a real client), and
a separate cap on authenticated ones. Every refusal gets a reply with a stable `Code` and one WARNING line (rate
limited under a flood), never a traceback. The codes and the durable-acknowledgement contract are documented in
docs/protocols.md.

The package keeps the asyncio side apart: `framing` (messages, codes, limits) and `blocking` (the client of the
command-line tools) import no asyncio, so `redctl show` does not pay ~75 ms for an event loop it never runs;
`aio` (JsonLineServer, AsyncClient) is loaded when one of its names is first used from here.
"""

from __future__ import annotations

from redpss.core.wire.blocking import BlockingClient
from redpss.core.wire.framing import (
    MAX_HELLO_LINE,
    MAX_LINE,
    PAYLOAD_VERSION,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Code,
    Limits,
    Message,
    RequestError,
    WireError,
    decode,
    durable,
    encode,
    unknown_op,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.core.wire.aio import AsyncClient, Connection, Handler, JsonLineServer, describe_peer, read_message

_ASYNC_NAMES = frozenset({"AsyncClient", "Connection", "Handler", "JsonLineServer", "describe_peer", "read_message"})

__all__ = [
    "MAX_HELLO_LINE",
    "MAX_LINE",
    "PAYLOAD_VERSION",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "AsyncClient",
    "BlockingClient",
    "Code",
    "Connection",
    "Handler",
    "JsonLineServer",
    "Limits",
    "Message",
    "RequestError",
    "WireError",
    "decode",
    "describe_peer",
    "durable",
    "encode",
    "read_message",
    "unknown_op",
]


def __getattr__(name: str) -> Any:
    """The asyncio names, imported on first use (a daemon's `from redpss.core.wire import JsonLineServer`)."""
    if name in _ASYNC_NAMES:
        from redpss.core.wire import aio  # noqa: PLC0415 - asyncio only for what runs an event loop

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
