"""The console's login session: a signed, expiring cookie, and the CSRF token every action must carry.

The console authenticates like the API (redpss.rest.auth: a database login, the same roles, the same per-address
failure limits); what the login found is kept in a cookie instead of sending the password with every request:

- value: base64url(JSON {user, operate, sid, exp, pw}) "." base64url(HMAC-SHA256); the key is derived from the instance
  secret (etc/instance.secret), so every gunicorn worker of the instance accepts a cookie any of them made, and a
  cookie of another instance is worthless. A changed instance secret ends every session.
- value: also the password, sealed (AES-256-GCM under a second key derived from the instance secret, bound to the
  session's id): every request checks the login again through the API's Authenticator, whose cache asks the
  database at most every [rest] login_cache_seconds (30 s). A dropped user, a changed password or a revoked role
  ends the console session within that time, as it ends the API's, and a role changed between reader and operator
  applies as soon. While the database cannot say (it is away), the session reads only: the console then still
  shows the daemons, and changes nothing on a role nobody confirmed. A stolen cookie gives what it gave before
  (the session, until its logout or expiry), not the password: opening the seal also needs the instance secret.
- Secure, HttpOnly, SameSite=Strict, Path=/console; it expires SESSION_SECONDS after the login (absolute: then log
  in again).
- CSRF: the token is an HMAC of the session's random id under the same key (nothing to store); every POST carries
  it in a hidden field, compared in constant time. SameSite=Strict already keeps the cookie off cross-site requests;
  the token also refuses a form posted from a page of the same site that the console did not render.
- A logout ends the session on the server too (RevokedSessions): a copy of the cookie taken before is refused.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from redpss.core.durable import exclusive_lock, fsync_folder, write_atomically
from redpss.core.paths import InstancePaths
from redpss.core.record import Record
from redpss.core.secret import instance_secret

COOKIE = "redpss_console"
SESSION_SECONDS = 8 * 3600  # a working day; then log in again
_LABEL = b"redpss console session v1"
_SEAL_LABEL = b"redpss console password v1"
_NONCE_BYTES = 12


class Session(Record):
    user: str
    may_operate: bool
    sid: str  # random per login: the CSRF token is derived from it
    expires: float  # epoch seconds
    sealed: str  # the login's password, encrypted for this server alone (SessionKeys.password_of)
    checked: bool = True  # False while the database cannot confirm the login: the session reads only


class SessionKeys:
    """Signs and checks session cookies and CSRF tokens with a key derived from the instance secret."""

    def __init__(self, paths: InstancePaths) -> None:
        secret = instance_secret(paths, create=False).encode()
        self._key = hmac.new(secret, _LABEL, hashlib.sha256).digest()
        self._seal = AESGCM(hmac.new(secret, _SEAL_LABEL, hashlib.sha256).digest())

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def issue(self, user: str, may_operate: bool, password: str, now: float | None = None) -> tuple[Session, str]:
        """A new session and its cookie value."""
        now = time.time() if now is None else now
        sid = secrets.token_urlsafe(18)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = _b64(nonce + self._seal.encrypt(nonce, password.encode(), sid.encode()))
        session = Session(user, may_operate, sid, now + SESSION_SECONDS, sealed)
        payload = json.dumps(
            {"user": user, "operate": may_operate, "sid": sid, "exp": int(session.expires), "pw": sealed},
            separators=(",", ":"),
        ).encode()
        return session, f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def password_of(self, session: Session) -> str | None:
        """The password sealed in `session` (None if the seal does not open: a cookie of another key or version)."""
        try:
            sealed = _unb64(session.sealed)
            opened = self._seal.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], session.sid.encode())
            return opened.decode()
        except (ValueError, InvalidTag, UnicodeDecodeError):
            return None

    def read(self, value: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie value; None when it is missing, forged, malformed or expired."""
        if not value or value.count(".") != 1:
            return None
        encoded, signature = value.split(".")
        try:
            payload = _unb64(encoded)
            if not hmac.compare_digest(_unb64(signature), self._mac(payload)):
                return None
            data = json.loads(payload)
            session = Session(
                str(data["user"]), bool(data["operate"]), str(data["sid"]), float(data["exp"]), str(data["pw"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        now = time.time() if now is None else now
        return session if session.expires > now else None

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac(b"csrf\0" + session.sid.encode()))

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        # as bytes: compare_digest refuses str with non-ASCII characters (TypeError), which a form may carry
        expected = self.csrf_token(session).encode()
        return bool(token) and hmac.compare_digest(str(token).encode("utf-8", "replace"), expected)


class RevokedSessions:
    """The sessions a logout ended before their cookie expires, which the signature alone would still accept.

    One file per instance in its tmp/ (a line `sid expires` per logout), shared by every gunicorn worker: each reads
    it again only when its size or mtime changed, so a request with a cookie costs one stat. Appends and the rewrite
    that drops expired lines hold a lock file, so a rewrite never loses another worker's append; a logout is fsync'd
    (rare, and a machine's restart must not bring a revoked cookie back).
    """

    PRUNE_AFTER = 1000  # expired lines kept before a logout rewrites the file without them

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file as last read
        self._until: dict[str, float] = {}  # sid -> when its cookie expires anyway

    def revoke(self, session: Session) -> None:
        """End `session` for every worker (OSError when it cannot be written)."""
        with self._locked():
            created = not self.path.exists()
            with self.path.open("a", encoding="ascii") as handle:
                handle.write(f"{session.sid} {int(session.expires)}\n")
                handle.flush()
                os.fsync(handle.fileno())
            if created:  # the new file's name, too, must outlive a power cut
                fsync_folder(self.path.parent)
            now = time.time()
            lines = self._read()
            if sum(1 for expires in lines.values() if expires <= now) > self.PRUNE_AFTER:
                live = "".join(f"{sid} {int(expires)}\n" for sid, expires in lines.items() if expires > now)
                write_atomically(self.path, [live.encode()], sync=True, mode=0o600)

    def revoked(self, sid: str) -> bool:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._until, self._seen = self._read(), seen
        return sid in self._until

    def _read(self) -> dict[str, float]:
        until: dict[str, float] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.path.read_text(encoding="ascii", errors="replace").splitlines():
                sid, _, expires = line.partition(" ")
                with contextlib.suppress(ValueError):
                    until[sid] = float(expires)
        return until

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self.path.with_name(self.path.name + ".lock"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
