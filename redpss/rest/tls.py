"""The certificate the REST API presents and the TLS settings of its listener: HTTPS only, TLS 1.2 or newer.

The pair lives in $REDENV_HOME/etc/ssl/REST (rest.crt, rest.key, PEM). A missing or unreadable file stops the start
with exit 3 naming the file: the API never falls back to a plain listener.
"""

from __future__ import annotations

import ssl

from redpss.core import pemfiles
from redpss.core.errors import StartupError
from redpss.core.paths import InstancePaths

CERT_NAME = "rest.crt"
KEY_NAME = "rest.key"
# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3's suites are OpenSSL's defaults, all modern).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


class CertificateFiles(pemfiles.CertificateFiles):
    @classmethod
    def of(cls, paths: InstancePaths) -> CertificateFiles:
        return cls(paths.ssl_rest / CERT_NAME, paths.ssl_rest / KEY_NAME)


def checked_files(paths: InstancePaths) -> CertificateFiles:
    """The certificate and key, each present and readable, and a pair that loads; StartupError (exit 3) otherwise."""
    files = CertificateFiles.of(paths)
    files.require("the REST API's", "put the PEM file there (the API serves HTTPS only)")
    try:
        server_context(files)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(
            f"the REST API's certificate {files.cert} and key {files.key} do not load as a PEM pair: {exc}"
        ) from None
    return files


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 or newer, modern suites, no compression, the server's order of preference."""
    context.minimum_version = MINIMUM_VERSION
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(files: CertificateFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    return harden(context)
