"""Which paths CFISRV serves: $REDENV_HOME/data, and this instance's sFTP tree through the data/input/<user> links.

pyftpdlib already keeps a client's path below the account's root (data/) as text; what it cannot know is where a
symbolic link leads. Every path is therefore resolved and accepted only when it ends inside data/ itself, or inside
this instance's own sFTP tree (/app/redftp/env/<instance>) and was reached through a link directly in data/input.
`..`, a link pointing anywhere else (another instance's data or sFTP tree, /etc), and a link made inside an upload
folder are refused. A file is checked again once opened, by the path the kernel reports for its descriptor, so a
link swapped between the check and the open cannot lead out either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyftpdlib.filesystems import AbstractedFS

INPUT_DIR = "input"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Confinement:
    """The data tree (as configured) and this instance's sFTP tree; None when the server has no sFTP users."""

    data_root: Path
    sftp_tree: Path | None

    def allows(self, path: str) -> bool:
        """Whether `path` (absolute, below data_root as text) may be served."""
        logical = os.path.normpath(path)
        data = os.path.normpath(self.data_root)
        if not _inside(logical, data):
            return False
        real = os.path.realpath(logical)
        if _inside(real, os.path.realpath(data)):
            return True
        return self._through_input_link(logical, real)

    def _through_input_link(self, logical: str, real: str) -> bool:
        if self.sftp_tree is None:
            return False
        tree = os.path.realpath(self.sftp_tree)
        if not _inside(real, tree):
            return False
        parts = Path(os.path.relpath(logical, os.path.normpath(self.data_root))).parts
        if len(parts) < 2 or parts[0] != INPUT_DIR:
            return False
        link = self.data_root / INPUT_DIR / parts[1]
        return link.is_symlink() and _inside(os.path.realpath(link), tree)

    def allows_open_file(self, fd: int) -> bool:
        """Whether the file behind an open descriptor lies where `allows` would accept it."""
        opened = str(Path(f"/proc/self/fd/{fd}").readlink())
        if _inside(opened, os.path.realpath(self.data_root)):
            return True
        return self.sftp_tree is not None and _inside(opened, os.path.realpath(self.sftp_tree))


class ConfinedFilesystem(AbstractedFS):  # type: ignore[misc]
    """pyftpdlib's file system view with CFISRV's confinement (the handler class names it as `abstracted_fs`)."""

    confinement: Confinement  # set on the subclass the server makes for its instance

    def validpath(self, path: str) -> bool:
        return self.confinement.allows(path)

    def open(self, filename: str, mode: str) -> Any:
        if not self.confinement.allows(filename):
            raise PermissionError(f"{filename}: outside the data tree")
        handle = open(filename, mode)  # noqa: SIM115, PTH123 - pyftpdlib closes the handle when the transfer ends
        if not self.confinement.allows_open_file(handle.fileno()):
            handle.close()
            raise PermissionError(f"{filename}: outside the data tree")
        return handle
