"""A second real SFTP server for tests, paramiko's own: a folder served to one user with one key, on a loopback port.

OpenSSH's sftp-server (tests/redftp/sftpsite.py) offers the extension posix-rename@openssh.com; many other servers
do not. paramiko's server answers that request "unsupported" (SFTP_OP_UNSUPPORTED) unless told otherwise, and a plain
SFTP rename that refuses to replace, as the protocol says: a partner of that kind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import SFTP_FAILURE, SFTP_OK


def _code(exc: OSError) -> int:
    return int(paramiko.SFTPServer.convert_errno(exc.errno or 0))


class _Login(paramiko.ServerInterface):
    def __init__(self, user: str, key: paramiko.PKey) -> None:
        self.user = user
        self.key = key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        accepted = username == self.user and key == self.key
        return AUTH_SUCCESSFUL if accepted else AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return OPEN_SUCCEEDED if kind == "session" else OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def __init__(self, handle: Any, flags: int) -> None:
        super().__init__(flags)
        self.readfile = handle
        self.writefile = handle

    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.writefile.fileno()))
        except OSError as exc:
            return _code(exc)


class _Folder(paramiko.SFTPServerInterface):
    """The served folder as the client's `/`; no posix_rename (the interface's default: unsupported)."""

    root: Path  # set on the subclass a server makes

    def _real(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        try:
            fd = os.open(self._real(path), flags, 0o644)
            mode = "r+b" if flags & os.O_RDWR else "wb" if flags & os.O_WRONLY else "rb"
            return _Handle(os.fdopen(fd, mode), flags)
        except OSError as exc:
            return _code(exc)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(self._real(path).stat())
        except OSError as exc:
            return _code(exc)

    lstat = stat

    def remove(self, path: str) -> int:
        try:
            self._real(path).unlink()
        except OSError as exc:
            return _code(exc)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        """The protocol's rename: refused when the new name exists (a generic failure, as many servers answer)."""
        if self._real(newpath).is_symlink() or self._real(newpath).exists():
            return SFTP_FAILURE
        try:
            self._real(oldpath).rename(self._real(newpath))
        except OSError as exc:
            return _code(exc)
        return SFTP_OK


class ParamikoSftpServer:
    """Serves `root` to `user` with `key` on 127.0.0.1 until closed; `host_key` is the server's (for known_hosts)."""

    def __init__(self, root: Path, user: str, key: paramiko.PKey) -> None:
        self.host_key = paramiko.ECDSAKey.generate()
        self._folder = type("Served", (_Folder,), {"root": root})
        self._login = _Login(user, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._thread = threading.Thread(target=self._serve, name="paramiko-sftp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            transport = paramiko.Transport(connection)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, self._folder)
            self._transports.append(transport)
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=self._login)

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone does not)
        self._listener.close()
        for transport in self._transports:
            transport.close()
        self._thread.join(10)
