"""The check every TLS listener makes of its certificate and key files before it loads them.

A missing or unreadable PEM file stops the start with exit 3 naming the file and what to do, so an operator never
has to read an OpenSSL error to learn that a path is wrong or a mode too strict. CFISRV, the REST API and the wire
services (DBLS, JEXEC) all check through this one function (CFISRV and the REST API through
CertificateFiles); each says in `missing_hint` how its files are made.
"""

from __future__ import annotations

import os
from pathlib import Path

from redpss.core.errors import StartupError
from redpss.core.record import Record


def require_readable(path: Path, label: str, missing_hint: str) -> None:
    """StartupError "<label> <path> is missing: <hint>" or "... is not readable" unless `path` is a readable file.

    `label` names whose file it is and what ("the CFI certificate", "DBLS's TLS private key").
    """
    if not path.is_file():
        raise StartupError(f"{label} {path} is missing: {missing_hint}")
    if not os.access(path, os.R_OK):
        raise StartupError(f"{label} {path} is not readable by this user: fix its owner or mode")


class CertificateFiles(Record):
    """A listener's certificate (chain) and private key, PEM files."""

    cert: Path
    key: Path

    def require(self, owner: str, missing_hint: str) -> None:
        """Both files present and readable; `owner` starts the error ("the CFI", "the REST API's")."""
        require_readable(self.cert, f"{owner} certificate", missing_hint)
        require_readable(self.key, f"{owner} private key", missing_hint)
