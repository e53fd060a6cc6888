"""Fetch files from an FTP or FTPS server, as Exasol's IMPORT ... FROM CSV AT 'ftp(s)://...' does.

ftps:// is implicit TLS (the control connection starts with TLS), the data channel is protected (PROT P), passive
mode, and the server certificate is not verified - that is how Exasol treats ftps:// without VERIFY CERTIFICATE.
"""

from __future__ import annotations

import ftplib
import socket
import ssl
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from redpss.devdb.errors import DevDbError, Unsupported

FTP_TIMEOUT = 60.0


class ImplicitFtps(ftplib.FTP_TLS):
    """FTP_TLS whose control connection is TLS from the first byte (implicit FTPS)."""

    def connect(self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None) -> str:
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout)
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


def client_context() -> ssl.SSLContext:
    """What ftps:// without VERIFY CERTIFICATE means: TLS, the server certificate not checked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def fetch(  # noqa: PLR0917 - mirrors the IMPORT clause: location, credentials, files
    url: str, user: str | None, password: str | None, files: list[str], target_dir: Path, on_open: Any
) -> list[Path]:
    """Download the files into target_dir; on_open(ftp) lets the caller close it when the statement is aborted."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ftp", "ftps"):
        raise Unsupported(f"file location scheme {scheme}://", "devdb imports from ftp://, ftps://, http(s) tunnels")
    host = parts.hostname or ""
    port = parts.port or (990 if scheme == "ftps" else 21)
    client: ftplib.FTP
    if scheme == "ftps":
        client = ImplicitFtps(context=client_context(), timeout=FTP_TIMEOUT)
    else:
        client = ftplib.FTP(timeout=FTP_TIMEOUT)  # noqa: S321 - plain ftp:// only when the IMPORT names it
    on_open(client)
    fetched: list[Path] = []
    try:
        client.connect(host, port)
        client.login(user or "anonymous", password or "")
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
        client.set_pasv(True)
        directory = unquote(parts.path) or "/"
        for index, name in enumerate(files):
            remote = str(PurePosixPath(directory) / name)
            local = target_dir / f"ftp-{index}-{PurePosixPath(name).name}"
            with local.open("wb") as out:
                client.retrbinary(f"RETR {remote}", out.write)
            fetched.append(local)
        client.quit()
    except ftplib.all_errors as exc:
        raise DevDbError(f"IMPORT from {scheme}://{host}:{port}{parts.path} failed: {exc}") from exc
    finally:
        client.close()
    return fetched
