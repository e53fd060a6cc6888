"""Keys and certificates: the server certificate for wss:// and the RSA key for login password encryption.

Without --tls-cert/--tls-key devdb makes a self-signed certificate once and keeps it in the data folder, so its
fingerprint (for DSNs like host/FINGERPRINT:port) stays the same across restarts.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def self_signed(cert_file: Path, key_file: Path, common_name: str = "localhost", *, elliptic: bool = False) -> None:
    """Write a self-signed certificate valid for localhost and 127.0.0.1 (key file mode 0600). `elliptic`: an ECDSA
    P-256 key instead of RSA 2048, whose signature in every full TLS handshake costs a fraction of RSA's."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP256R1()) if elliptic else rsa.generate_private_key(65537, 2048)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def fingerprint(cert_file: Path) -> str:
    """sha256 of the certificate's DER, upper-case hex: what pyexasol compares with the DSN fingerprint."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


class LoginKey:
    """The RSA key pair whose public half pyexasol uses to encrypt the login password (PKCS#1 v1.5)."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = self._key.public_key()
        self.pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
        numbers = public.public_numbers()
        self.modulus = format(numbers.n, "X")
        self.exponent = format(numbers.e, "X")

    def decrypt(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import padding  # noqa: PLC0415 - used only at login

        return self._key.decrypt(data, padding.PKCS1v15())
