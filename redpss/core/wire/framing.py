"""The framing every RED-PSS service and client shares: message encoding, the refusal codes, the limits, the hello.

No asyncio and no sockets here, so a command-line tool that only needs the blocking client pays for neither (the
package docstring, `redpss.core.wire`, describes the protocol).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from enum import StrEnum

from redpss.core.errors import RedpssError
from redpss.core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1  # what this package's clients say in their hello
PAYLOAD_VERSION = 2  # from version 2 a request may declare `"payload": N` and send N raw bytes after its line
# What a server speaks unless it says otherwise (`JsonLineServer(versions=...)`): 2 only adds payloads, which a
# server accepts for the ops it names in `payload_ops` alone, so every server can take version-2 clients.
SUPPORTED_VERSIONS = frozenset({1, PAYLOAD_VERSION})
MAX_LINE = 16 * 1024 * 1024  # default size of one message after the hello
MAX_HELLO_LINE = 4096  # size of any line before the hello succeeded
Message = dict[str, "Any"]  # Any quoted: typing is not loaded at run time (redctl status stays light)


class Code(StrEnum):
    """The stable codes of refusals and failed requests (`"code"` of an `ok: false` reply)."""

    BAD_FRAME = "BAD_FRAME"  # not one UTF-8 JSON object per line, or nested too deeply (connection closed)
    TOO_LARGE = "TOO_LARGE"  # a line longer than the limit (connection closed)
    BAD_HELLO = "BAD_HELLO"  # the first message is not a hello (connection closed)
    VERSION_UNSUPPORTED = "VERSION_UNSUPPORTED"  # the hello's version is not spoken here (connection closed)
    AUTH_FAILED = "AUTH_FAILED"  # wrong or missing instance secret (connection closed)
    TIMEOUT = "TIMEOUT"  # no complete hello within the deadline (connection closed)
    TOO_MANY_CONNECTIONS = "TOO_MANY_CONNECTIONS"  # a connection cap was reached (connection closed)
    BAD_REQUEST = "BAD_REQUEST"  # the request lacks "op" or has fields of the wrong type (connection stays)
    UNKNOWN_OP = "UNKNOWN_OP"  # the service has no such operation (connection stays)
    REFUSED = "REFUSED"  # the service declined the request; "error" says why (connection stays)
    UNAVAILABLE = "UNAVAILABLE"  # a daemon the service needs for it is away or stalled; try again later (stays)
    INTERNAL = "INTERNAL"  # the service failed unexpectedly (connection stays)


class WireError(RedpssError):
    """The peer broke the protocol, refused us, or is not there; `code` is the peer's or our refusal code."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RequestError(RedpssError):
    """Raised by a handler to refuse a request with a given code; the connection stays open."""

    def __init__(self, message: str, code: Code = Code.BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


class Limits(Record):
    """What one connection may cost a server, before and after its hello (a server's own tuning)."""

    max_message: int = MAX_LINE  # one line after the hello
    hello_line: int = MAX_HELLO_LINE  # one line before it
    hello_timeout: float = 5.0  # seconds from accept (or TLS handshake) to a complete hello
    max_unauthenticated: int = 64  # connections without hello; a new one beyond drops the oldest
    eviction_grace: float = 0.1  # seconds a new connection is safe from being dropped for the cap above
    # the same for a connection from another address than a flood's, against the flood's newcomers: the TLS
    # handshake and the hello may each take hello_timeout, so a client still within them never loses its place
    foreign_grace: float = 10.0
    max_clients: int = 256  # authenticated connections; a hello beyond is refused
    event_backlog: int = MAX_LINE  # bytes of pushed events waiting for a subscriber before it is disconnected
    send_timeout: float = 60.0  # seconds a reply or event may wait for a client that reads nothing; then it is closed
    payload_timeout: float = 30.0  # seconds a declared payload may take to arrive (its buffer is held meanwhile)
    payload_budget: int = 64 * 1024 * 1024  # bytes of payloads read or handled at once, all connections together
    # seconds after which a TCP peer that stopped answering (power lost, network gone) counts as gone, even on an
    # idle connection, such as JEXEC's requester waiting for a long script (core.net.notice_dead_peer)
    dead_peer_timeout: float = 60.0
    # seconds a durable reply may be held back to be folded into the next (docs/protocols.md): a client's next
    # buffer on the same network arrives and is answered within a few ms; past this the reply goes out on its own
    fold_wait: float = 0.02


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # json.dumps with options makes one per call


def encode(message: Message) -> bytes:
    return _ENCODER.encode(message).encode() + b"\n"


def decode(line: bytes) -> Message:
    """One message from one line; WireError (BAD_FRAME) naming what is wrong, never echoing the line itself."""
    try:
        message = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WireError(f"a message must be UTF-8 ({exc.reason} at byte {exc.start})", Code.BAD_FRAME) from None
    except RecursionError:
        raise WireError("a message is nested too deeply", Code.BAD_FRAME) from None
    except ValueError as exc:
        raise WireError(f"not a JSON message ({exc})", Code.BAD_FRAME) from None
    if not isinstance(message, dict):
        raise WireError(f"a message must be a JSON object, got {type(message).__name__}", Code.BAD_FRAME)
    return message


def durable(**fields: Any) -> Message:
    """The reply of a handler whose data is safe (written and flushed, or committed): the only ok a durable op may send.

    A server built with `durable_ops` refuses to send `ok: true` for those ops unless the handler returned this, so a
    handler cannot acknowledge by accident before the data is safe.
    """
    return {**fields, "ok": True, "durable": True}


def unknown_op(op: object, known: Collection[str]) -> Message:
    """The reply to a request whose op the service does not have."""
    return {"ok": False, "code": Code.UNKNOWN_OP, "error": f"unknown request {op!r}; known: {', '.join(known)}"}


def is_shedding(exc: WireError) -> bool:
    """Whether a failed hello means the server was shedding connections (worth another try in a moment)."""
    return exc.code == Code.TOO_MANY_CONNECTIONS or isinstance(exc.__cause__, ConnectionResetError)


def hello_message(secret: str, client: str) -> Message:
    return {"op": "hello", "version": PROTOCOL_VERSION, "secret": secret, "client": client}


def refusal_error(reply: Message | None, fallback: str) -> WireError:
    if not reply:
        return WireError(fallback)
    return WireError(str(reply.get("error", fallback)), reply.get("code"))
