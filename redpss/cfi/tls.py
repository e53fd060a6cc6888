"""The certificate CFISRV presents, and the one TLS context both listeners and every data channel share.

Sharing one pyOpenSSL context is what makes TLS session reuse on the data channel work: a client that resumes the
control connection's session on the data connection (curl, and so the database's ftps:// client) finds it in this
context's session cache or, with TLS 1.3, in a ticket this context issued. Reuse is accepted, never demanded:
Python's ftplib (devdb's IMPORT) opens every data connection with a fresh handshake.
"""

from __future__ import annotations

from OpenSSL import SSL

from redpss.core import pemfiles
from redpss.core.errors import StartupError
from redpss.core.paths import InstancePaths

CERT_NAME = "cfi.crt"
KEY_NAME = "cfi.key"
SESSION_ID_CONTEXT = b"redpss-cfi"  # resumed sessions must have been made by this server's context
SESSION_TIMEOUT = 3600  # seconds a session stays resumable: a long IMPORT opens data connections for an hour


class CertificateFiles(pemfiles.CertificateFiles):
    @classmethod
    def of(cls, paths: InstancePaths) -> CertificateFiles:
        return cls(paths.ssl_cfi / CERT_NAME, paths.ssl_cfi / KEY_NAME)


def server_context(files: CertificateFiles) -> SSL.Context:
    """The TLS context of both listeners (TLS 1.2 or newer); StartupError (exit 3) naming a missing or bad file."""
    files.require("the CFI", "put the PEM file there (redsysctl create makes a self-signed pair for a new instance)")
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    try:
        context.use_certificate_chain_file(str(files.cert))
    except SSL.Error as exc:
        raise StartupError(f"the CFI certificate {files.cert} is not a usable PEM certificate: {exc}") from None
    try:
        context.use_privatekey_file(str(files.key))
        context.check_privatekey()
    except SSL.Error as exc:
        raise StartupError(
            f"the CFI private key {files.key} is not usable or does not match {files.cert}: {exc}"
        ) from None
    context.set_session_id(SESSION_ID_CONTEXT)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    context.set_timeout(SESSION_TIMEOUT)
    return context


def ensure_certificate(paths: InstancePaths) -> bool:
    """Make a self-signed certificate for a new instance when etc/ssl/CFI holds none; True when one was made.

    The database's ftps:// does not verify the server certificate (docs/cfi.md), so a self-signed one works; an
    operator replaces both files with the site's own and restarts CFISRV.
    """
    files = CertificateFiles.of(paths)
    if files.cert.exists() or files.key.exists():
        return False
    from redpss.devdb.tls import self_signed  # noqa: PLC0415 - cryptography only when a certificate is made

    # ECDSA: ftplib and many other clients make a full handshake per data connection, and an ECDSA signature costs
    # a fraction of an RSA one (bench/bench_ftps.py, many small files).
    self_signed(files.cert, files.key, common_name=f"RED-PSS CFISRV {paths.redenv}", elliptic=True)
    return True
