"""A journald stand-in for tests: binds a datagram socket and decodes the native protocol, memfds included."""

from __future__ import annotations

import array
import os
import socket
import struct
from pathlib import Path

Entry = dict[str, str]


def decode_entry(data: bytes) -> Entry:
    """Parse journald's native format (KEY=value lines and the binary-safe length-prefixed form)."""
    fields: Entry = {}
    pos = 0
    while pos < len(data):
        newline = data.index(b"\n", pos)
        line = data[pos:newline]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            fields[key.decode()] = value.decode()
            pos = newline + 1
        else:
            (size,) = struct.unpack("<Q", data[newline + 1 : newline + 9])
            fields[line.decode()] = data[newline + 9 : newline + 9 + size].decode()
            pos = newline + 9 + size + 1
    return fields


class JournalListener:
    """Receives what a JournalHandler sends to `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)

    def receive(self, timeout: float = 10.0) -> Entry:
        self.sock.settimeout(timeout)
        fd_size = array.array("i").itemsize
        data, ancdata, _, _ = self.sock.recvmsg(256 * 1024, socket.CMSG_SPACE(fd_size))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fd = array.array("i", payload[:fd_size])[0]
                try:
                    data = os.pread(fd, os.fstat(fd).st_size, 0)
                finally:
                    os.close(fd)
        return decode_entry(data)

    def receive_until(self, predicate: str, timeout: float = 10.0) -> Entry:
        """The first entry whose MESSAGE contains `predicate`."""
        while True:
            entry = self.receive(timeout)
            if predicate in entry.get("MESSAGE", ""):
                return entry

    def close(self) -> None:
        self.sock.close()
