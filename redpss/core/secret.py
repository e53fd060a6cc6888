"""The instance's shared secret: every message to a RED-PSS service port carries it.

It lives in $REDENV_HOME/etc/instance.secret (mode 0600, created on first use). The database side holds the same
value in a CONNECTION object, so UDF scripts can authenticate to DBLS, SENDMAIL, SENDFILE and JEXEC; redctl reads
the file, which only the redsys user can.
"""

from __future__ import annotations

import os
import stat

from redpss.core.errors import StartupError
from redpss.core.paths import InstancePaths


def instance_secret(paths: InstancePaths, *, create: bool = True) -> str:
    """The secret of the instance; created (0600) when missing and `create` is true."""
    path = paths.etc / "instance.secret"
    if not path.exists():
        if not create:
            raise StartupError(f"{path} is missing: start the instance once (or run redsysctl create) to create it")
        import secrets  # noqa: PLC0415 - only to create it; the CLIs that read it skip random and hashlib

        token = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        return token
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StartupError(f"{path} has mode {mode:04o}, readable by others; run: chmod 600 {path}")
    token = path.read_text().strip()
    if len(token) < 32:
        raise StartupError(f"{path} holds no usable secret; remove it and restart the instance to create a new one")
    return token
