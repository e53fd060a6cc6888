"""The instance's shared secret, and the secrets of the services the database reaches, derived from it.

The instance secret lives in $REDENV_HOME/etc/instance.secret (mode 0600, created on first use); redctl, JMON and
SCHED read the file, which only the redsys user can, and every RED-PSS service port accepts it. The database gets
less: each of DBLS, JEXEC, SENDMAIL and SENDFILE has a secret of its own, an HMAC of its name under the instance
secret, which is what `redctl db_install` puts into that service's CONNECTION object. A database user granted
ACCESS on REDSYS_DBLS (to log) can read that password in a UDF, so it must open DBLS only, not JEXEC's scripts or
SENDMAIL's relay (docs/decisions.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

from redpss.core.errors import StartupError
from redpss.core.paths import InstancePaths


def instance_secret(paths: InstancePaths, *, create: bool = True) -> str:
    """The secret of the instance; created (0600) when missing and `create` is true."""
    path = paths.etc / "instance.secret"
    if not path.exists():
        if not create:
            raise StartupError(f"{path} is missing: start the instance once (or run redsysctl create) to create it")
        _create(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StartupError(f"{path} has mode {mode:04o}, readable by others; run: chmod 600 {path}")
    token = path.read_text().strip()
    if len(token) < 32:
        raise StartupError(f"{path} holds no usable secret; remove it and restart the instance to create a new one")
    return token


def _create(path: Path) -> None:
    """A new secret at `path`, whole or not at all: the daemons of an instance start together and each makes it
    when missing, so it is written under a name of this process's own and linked into place; the first link wins
    and the others read that one (never a file half written)."""
    import secrets  # noqa: PLC0415 - only to create it; the CLIs that read it skip random and hashlib

    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_native_id()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def service_secret(secret: str, service: str) -> str:
    """The secret of `service` (DBLS, JEXEC, SENDMAIL, SENDFILE) derived from the instance `secret`: the password
    of its CONNECTION object. One service's secret tells nothing of the instance secret or of another service's."""
    label = f"redpss service secret {service.upper()}".encode()
    return hmac.new(secret.encode("utf-8", "surrogatepass"), label, hashlib.sha256).hexdigest()


def accepted_secrets(paths: InstancePaths, service: str) -> tuple[str, str]:
    """What a hello to a database-facing `service` may carry: the instance secret (redsys's own clients) or the
    service's own (the database's scripts)."""
    secret = instance_secret(paths)
    return secret, service_secret(secret, service)
