"""TLS for the wire services the database reaches (DBLS, JEXEC): the server's certificate, and what clients trust.

A service with TLS switched on (`[redctl] dbls_tls`, `jexec_tls`) presents `$REDENV_HOME/etc/ssl/<SERVICE>/
<service>.crt` with its key `<service>.key` (PEM), TLS 1.2 or newer. A missing, unreadable or unusable file stops the
start with exit 3 naming the file: a service never falls back to plain TCP.

Clients (SCHED's ACTION workers, redctl's and JMON's probes, the database's scripts) verify the server:
- with `ca.crt` in the same folder, against that CA, and the certificate must name the address the client uses;
- without it, the service's own certificate is the one trusted ("pinned"): exactly that certificate (or one it
  signed) is accepted, whatever names it carries, so a self-signed pair needs no names to match.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

from redpss.core.errors import RedpssError, StartupError
from redpss.core.paths import InstancePaths
from redpss.core.pemfiles import require_readable
from redpss.core.record import Record

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
CA_NAME = "ca.crt"


class TlsFiles(Record):
    """Where a service's TLS files are: its certificate and key, and the CA its clients trust when there is one."""

    service: str  # DBLS, JEXEC
    cert: Path
    key: Path
    ca: Path

    @classmethod
    def of(cls, paths: InstancePaths, service: str) -> TlsFiles:
        folder = paths.etc / "ssl" / service.upper()
        name = service.lower()
        return cls(service.upper(), folder / f"{name}.crt", folder / f"{name}.key", folder / CA_NAME)

    def require(self, path: Path, what: str) -> None:
        """StartupError (exit 3) naming `path` when it is not a readable file."""
        switch = f"{self.service.lower()}_tls"
        require_readable(
            path, f"{self.service}'s TLS {what}", f"{switch} is on: put the PEM file there, or switch {switch} off"
        )

    def trusted(self) -> tuple[str, bool]:
        """The PEM text clients trust and whether it is the service's own certificate (pinned) rather than a CA."""
        pinned = not self.ca.exists()
        path = self.cert if pinned else self.ca
        self.require(path, "certificate" if pinned else "CA certificate")
        return path.read_text(encoding="ascii", errors="replace"), pinned


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The context a service listens with; StartupError (exit 3) naming a missing, unreadable or unusable file."""
    files.require(files.cert, "certificate")
    files.require(files.key, "private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_COMPRESSION
    try:
        context.load_cert_chain(files.cert, files.key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(
            f"{files.service}'s TLS certificate {files.cert} and key {files.key} do not load as a PEM pair: {exc}"
        ) from None
    return context


def client_context(trusted_pem: str, pinned: bool) -> ssl.SSLContext:
    """A client context that verifies the server against `trusted_pem` (see the module's docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate, and by default the name
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_verify_locations(cadata=trusted_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise RedpssError(f"the certificate to trust is not PEM: {exc}") from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a pinned certificate is an anchor of its own
    context.check_hostname = not pinned
    return context


def service_client_context(paths: InstancePaths, service: str) -> ssl.SSLContext:
    """The context a local client (SCHED, redctl, JMON) uses for `service`; StartupError naming a missing file."""
    return client_context(*TlsFiles.of(paths, service).trusted())


def connection_address(address: str, files: TlsFiles) -> str:
    """A CONNECTION's address for a service over TLS: `tls://host:port?pin=...` or `?ca=...` with the PEM to trust
    (URL-safe base64, one line), which the database's client (pss_client.client_for_connection) reads."""
    pem, pinned = files.trusted()
    encoded = base64.urlsafe_b64encode(pem.encode("ascii")).decode("ascii")
    return f"tls://{address}?{'pin' if pinned else 'ca'}={encoded}"
