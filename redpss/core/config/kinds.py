"""The value kinds of red_params.conf: each parses the raw text or raises ValueError saying what is allowed."""

from __future__ import annotations

import re
from collections.abc import Callable

from redpss.core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

# Ports below 1024 need a capability the hardened units do not grant (CapabilityBoundingSet= is empty).
MIN_PORT = 1024
_HOST = re.compile(r"[A-Za-z0-9_.:\-\[\]]+")
_DSN_PART = re.compile(r"[A-Za-z0-9_.\-]+(\.\.[0-9]+)?(/[A-Za-z0-9]+)?(:[0-9]{1,5})?")
_SUFFIX = re.compile(r"\.[A-Za-z0-9_.\-]+")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class Secret:
    """A password: compares and prints masked, so it never lands in a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


class Kind(Record):
    """How one key's text is read: `parse` raises ValueError with the allowed values, `render` writes it back."""

    name: str
    parse: Callable[[str], Any]
    render: Callable[[Any], str] = str


def _text(raw: str) -> str:
    return raw.strip()


def _host(raw: str) -> str:
    value = raw.strip()
    if not _HOST.fullmatch(value):
        raise ValueError("must be a host name or IP address, e.g. 127.0.0.1")
    return value


def _addresses(raw: str) -> str:
    """Comma-separated IP addresses (or empty), given back joined by commas without blanks."""
    import ipaddress  # noqa: PLC0415 - only a config with the key parses it

    parts = [part.strip() for part in raw.split(",") if part.strip()]
    for part in parts:
        try:
            ipaddress.ip_address(part)
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address; give IP addresses separated by commas") from None
    return ",".join(parts)


def _port(raw: str) -> int:
    value = raw.strip()
    if not value.isdigit() or not MIN_PORT <= int(value) <= 65535:
        raise ValueError(f"must be a port number from {MIN_PORT} to 65535")
    return int(value)


def _optional_port(raw: str) -> int:
    """A port, or 0 for a listener that is switched off."""
    value = raw.strip()
    if value == "0":
        return 0
    if not value.isdigit() or not MIN_PORT <= int(value) <= 65535:
        raise ValueError(f"must be 0 (off) or a port number from {MIN_PORT} to 65535")
    return int(value)


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("must be true or false")


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = raw.strip()
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return int(value)

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 86400:
        raise ValueError("must be a number of seconds from 0.1 to 86400")
    return value


def _level(raw: str) -> str:
    # The level names live beside the logging module, which only a config that writes a level pays for.
    from redpss.core.logging.levels import CONFIG_LEVELS, LEVEL_NAMES  # noqa: PLC0415

    value = raw.strip().upper()
    if value not in LEVEL_NAMES:
        raise ValueError(f"must be one of {', '.join(CONFIG_LEVELS)}")
    return "WARN" if value == "WARNING" else value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _suffix(raw: str) -> str:
    value = raw.strip()
    if not _SUFFIX.fullmatch(value):
        raise ValueError("must be a file suffix starting with a dot, e.g. .json")
    return value


def _dsn(raw: str) -> str:
    value = raw.strip()
    if not value or not all(_DSN_PART.fullmatch(part) for part in value.split(",")):
        raise ValueError("must be an Exasol DSN host[/FINGERPRINT|/nocertcheck][:port][,host2...], e.g. exadb01:8563")
    for part in value.split(","):
        port = part.rpartition(":")[2] if ":" in part else ""
        if port and not 1 <= int(port) <= 65535:  # five digits pass the pattern; 99999 crashed devdb's bind
            raise ValueError(f"port {port} in {part!r} is not a port number (1 to 65535)")
    return value


def _secret(raw: str) -> Secret:
    # Not stripped: the reader strips unquoted values already, and a quoted password keeps its blanks.
    return Secret(raw)


def _render_bool(value: Any) -> str:
    return "true" if value else "false"


def _render_secret(value: Any) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)


TEXT = Kind("text", _text)
HOST = Kind("host", _host)
ADDRESSES = Kind("IP addresses", _addresses)
PORT = Kind("port", _port)
OPTIONAL_PORT = Kind("port or 0 (off)", _optional_port)
BOOLEAN = Kind("boolean", _boolean, _render_bool)
POOL_SIZE = Kind("count 1-64", _count(1, 64))
DAYS = Kind("days 0-3650", _count(0, 3650))
SECONDS = Kind("seconds", _seconds)
WORKERS = Kind("count 1-32", _count(1, 32))
RUNNING = Kind("count 1-256", _count(1, 256))  # at most the wire's authenticated connections per listener
MEGABYTES = Kind("megabytes 1-100000", _count(1, 100000))
LOG_LEVEL = Kind("log level", _level)
SMTP_ENCRYPTION = Kind("encryption", _choice("STARTTLS", "TLS", "PLAIN"))
SUFFIX = Kind("suffix", _suffix)
DSN = Kind("dsn", _dsn)
SECRET = Kind("secret", _secret, _render_secret)
