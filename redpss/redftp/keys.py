"""The one public key an sFTP user logs in with: parsed, checked, and written as one authorized_keys line.

The key text comes from an operator (a file or stdin) and ends up in a file sshd trusts, so it is parsed fully with
`cryptography` rather than matched by a pattern: a truncated paste, a private key or a PEM public key is refused
with the command that converts or extracts the right thing. The line written back is rebuilt from the parsed parts
and starts with `restrict`, so even a mistake in the sshd snippet gives this key no forwarding, pty or rc file.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from redpss.redftp.errors import RedftpUsageError

KEY_TEXT_MAX = 16 * 1024
RSA_MIN_BITS = 2048
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
_COMMENT_MAX = 200


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    blob: str  # base64 as in the key line
    comment: str

    def authorized_keys_line(self) -> str:
        return " ".join(part for part in ("restrict", self.key_type, self.blob, self.comment) if part) + "\n"


def parse_public_key(text: str, source: str = "the key") -> PublicKey:
    """The single OpenSSH public key in `text`, or RedftpUsageError saying what `source` holds instead."""
    if len(text) > KEY_TEXT_MAX:
        raise RedftpUsageError(f"{source} is {len(text)} characters long; a public key line is at most a few KB")
    _refuse_other_formats(text, source)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        raise RedftpUsageError(f"{source} is empty: give the user's public key file (e.g. id_ed25519.pub)")
    if len(lines) > 1:
        raise RedftpUsageError(f"{source} holds {len(lines)} lines; give exactly one public key line")
    return _parse_line(lines[0], source)


def _refuse_other_formats(text: str, source: str) -> None:
    if "PRIVATE KEY" in text:
        raise RedftpUsageError(
            f"{source} is a PRIVATE key: give the public key instead (the .pub file, or `ssh-keygen -y -f KEY`); "
            "the private key should never leave the user's machine"
        )
    if "BEGIN SSH2 PUBLIC KEY" in text:
        raise RedftpUsageError(f"{source} is an SSH2 (RFC 4716) key: convert it with `ssh-keygen -i -f FILE`")
    if "BEGIN PUBLIC KEY" in text or "BEGIN RSA PUBLIC KEY" in text:
        raise RedftpUsageError(f"{source} is a PEM key: convert it with `ssh-keygen -i -m PKCS8 -f FILE`")


def _parse_line(line: str, source: str) -> PublicKey:
    allowed = ", ".join(KEY_TYPES)
    parts = line.split(None, 2)
    if parts[0] not in KEY_TYPES:
        if any(t in parts for t in KEY_TYPES) or "=" in parts[0]:
            raise RedftpUsageError(
                f"{source} starts with options ({parts[0][:40]!r}); give the plain public key line, the commands "
                "set the options themselves"
            )
        raise RedftpUsageError(f"{source} is not an OpenSSH public key line: it must start with one of {allowed}")
    if len(parts) < 2:
        raise RedftpUsageError(f"{source} has a key type but no key data: the line looks truncated")
    key_type, blob = parts[0], parts[1]
    comment = parts[2] if len(parts) == 3 else ""
    damaged = f"{source}: the {key_type} key data is damaged; copy the whole line again"
    try:
        embedded = _embedded_type(base64.b64decode(blob, validate=True))
    except (binascii.Error, ValueError):
        raise RedftpUsageError(damaged) from None
    if embedded != key_type:
        raise RedftpUsageError(f"{source}: the line says {key_type} but the key data is {embedded}")
    try:
        key = load_ssh_public_key(f"{key_type} {blob}".encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise RedftpUsageError(f"{damaged} ({exc})") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < RSA_MIN_BITS:
        raise RedftpUsageError(
            f"{source} is a {key.key_size}-bit RSA key; at least {RSA_MIN_BITS} bits are required (or use ssh-ed25519)"
        )
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise RedftpUsageError(f"{source}: unsupported key kind; allowed are {allowed}")
    return PublicKey(key_type=key_type, blob=blob, comment=_clean_comment(comment))


def _embedded_type(data: bytes) -> str:
    """The key type string at the start of the SSH wire-format blob."""
    if len(data) < 4:
        raise ValueError("too short")
    size = int.from_bytes(data[:4], "big")
    if size > 64 or len(data) < 4 + size:
        raise ValueError("bad type field")
    return data[4 : 4 + size].decode("ascii", errors="replace")


def _clean_comment(comment: str) -> str:
    """Printable ASCII only, no quotes: the comment is informational and must not change how sshd parses the line."""
    kept = "".join(ch for ch in comment if ch.isascii() and ch.isprintable() and ch not in "\"'\\")
    return kept.strip()[:_COMMENT_MAX]
