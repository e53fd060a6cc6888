"""A logging handler that speaks journald's native protocol on its datagram socket.

It needs no libsystemd (systemd-python is optional), so the same code logs with structured fields on RHEL 8, in a
container and in tests, where a test binds its own socket and reads what arrives. Entries too large for one datagram
travel in a sealed memfd, as journald expects. A full journald queue never stalls the daemon for long: after a short
timeout the entry is counted as dropped and the count rides along with the next entry that gets through.
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import re
import socket
import struct
import traceback
from collections.abc import Iterable, Mapping

from redpss.core.logging.levels import syslog_priority

DEFAULT_JOURNAL_SOCKET = "/run/systemd/journal/socket"
_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]*")
_SEND_TIMEOUT = 0.2  # seconds a log call may wait for a full journald queue before the entry is dropped
# LogRecord attributes that are never structured fields even if someone spells them in upper case.
_RESERVED = frozenset({"MESSAGE", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "SYSLOG_IDENTIFIER"})


def encode_entry(fields: Iterable[tuple[str, str]]) -> bytes:
    """Serialize fields in journald's native format: KEY=value lines, binary-safe form for multi-line values."""
    out = bytearray()
    for key, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def record_fields(record: logging.LogRecord, static: Mapping[str, str]) -> list[tuple[str, str]]:
    """The journald fields of one record: message, priority, code location, static and per-call fields."""
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
    fields = [
        ("MESSAGE", message),
        ("PRIORITY", str(syslog_priority(record.levelno))),
        ("REDPSS_LEVEL", record.levelname),
        ("REDPSS_LOGGER", record.name),
        ("CODE_FILE", record.pathname),
        ("CODE_LINE", str(record.lineno)),
        ("CODE_FUNC", record.funcName),
    ]
    fields.extend(static.items())
    fields.extend((key, str(value)) for key, value in structured_extras(record).items())
    return fields


def structured_extras(record: logging.LogRecord) -> dict[str, object]:
    """The upper-case `extra=` attributes of a record: these are the structured fields (SCHEMA, JOB_ID, ...)."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if _FIELD_NAME.fullmatch(key) and key not in _RESERVED and value is not None
    }


class JournalHandler(logging.Handler):
    """Sends each record to journald as one entry with structured fields."""

    def __init__(self, static_fields: Mapping[str, str], socket_path: str = DEFAULT_JOURNAL_SOCKET) -> None:
        super().__init__()
        self.static_fields = dict(static_fields)
        self.socket_path = socket_path
        self.dropped = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.settimeout(_SEND_TIMEOUT)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = record_fields(record, self.static_fields)
            if self.dropped:
                fields.append(("REDPSS_DROPPED_BEFORE", str(self.dropped)))
            self._send(encode_entry(fields))
            self.dropped = 0
        except (TimeoutError, BlockingIOError):
            self.dropped += 1
        except Exception:
            self.handleError(record)

    def _send(self, payload: bytes) -> None:
        try:
            self._sock.sendto(payload, self.socket_path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(payload)

    def _send_memfd(self, payload: bytes) -> None:
        fd = os.memfd_create("redpss-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, payload)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = array.array("i", [fd]).tobytes()
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)], 0, self.socket_path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._sock.close()
        super().close()
