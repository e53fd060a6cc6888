"""Which paths CFISRV serves: $REDENV_HOME/data, and this instance's sFTP tree through the data/input/<user> links.

pyftpdlib already keeps a client's path below the account's root (data/) as text; what it cannot know is where a
symbolic link leads. Every path is therefore resolved and accepted only when it ends inside data/ itself, or inside
this instance's own sFTP tree (/app/redftp/env/<instance>) and was reached through a link directly in data/input.
`..`, a link pointing anywhere else (another instance's data or sFTP tree, /etc), and a link made inside an upload
folder that leads out of that user's folder (to /etc, or to another user's folder) are refused. So are the private
folders below data/ (PRIVATE_FOLDERS: the mail spools, SENDFILE's exports), whatever path or link leads there: any
database user with ACCESS on the CFI connection may IMPORT through CFISRV, and those hold other users' mails and
tables exported for one partner. A file is checked
again once opened, by the path the kernel reports for its descriptor, so a link swapped between the check and the
open cannot lead out either.

Resolving is the per-file hot path (pyftpdlib checks a path three or four times per download): the data tree's own
real path is worked out once, and a path below it is resolved one component at a time from there, handing over to
os.path.realpath only at the first link met. That gives what os.path.realpath gives, with a third of the lstat calls
for a tree as deep as /home/redsys/env/<instance>/data/input/<user>/<file>.
"""

from __future__ import annotations

# ruff: noqa: PTH114, PTH115, PTH117, PTH118, PTH206 - paths as str on the per-file path: Path objects cost more here
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pyftpdlib.filesystems import AbstractedFS

from redpss.core.paths import SENDFILE_WORK
from redpss.mail.spoolstat import MAIL_FOLDER
from redpss.redftp.inputs import INPUT_DIR, input_link_holding, inside

# Below data/, never served: the mail spools and dead letters (other senders' mails, MAIL2CMD's replies) and SENDFILE's
# exports (core.paths.InstancePaths.sendfile_work).
PRIVATE_FOLDERS = (MAIL_FOLDER, str(SENDFILE_WORK))


@dataclass(frozen=True)
class Confinement:
    """The data tree (as configured) and this instance's sFTP tree; None when the server has no sFTP users."""

    data_root: Path
    sftp_tree: Path | None

    @cached_property
    def _data(self) -> str:
        return os.path.normpath(self.data_root)

    @cached_property
    def _real_data(self) -> str:
        """The data tree's real path, resolved once: the instance's own tree does not move under a running server."""
        return os.path.realpath(self.data_root)

    @cached_property
    def _private(self) -> tuple[str, ...]:
        return tuple(os.path.join(self._real_data, folder) for folder in PRIVATE_FOLDERS)

    def allows(self, path: str) -> bool:
        """Whether `path` (absolute, below data_root as text) may be served."""
        logical = os.path.normpath(path)
        if not inside(logical, self._data):
            return False
        real = self.resolve(logical)
        if inside(real, self._real_data):
            return not self._is_private(real)
        return self._through_input_link(logical, real)

    def _is_private(self, real: str) -> bool:
        return any(inside(real, folder) for folder in self._private)

    def resolve(self, path: str) -> str:
        """os.path.realpath(path), resolved from the data tree's real path when `path` lies below it as text."""
        logical = os.path.normpath(path)
        if not inside(logical, self._data):
            return os.path.realpath(logical)
        below = logical[len(self._data) :].strip(os.sep)
        resolved = self._real_data
        if not below:
            return resolved
        parts = below.split(os.sep)
        for index, part in enumerate(parts):
            candidate = os.path.join(resolved, part)
            if os.path.islink(candidate):
                return os.path.realpath(os.path.join(candidate, *parts[index + 1 :]))
            resolved = candidate
        return resolved

    def _through_input_link(self, logical: str, real: str) -> bool:
        if self.sftp_tree is None:
            return False
        tree = os.path.realpath(self.sftp_tree)
        if not inside(real, tree):
            return False
        # below the user's own folder: a link inside it leading to another user's folder is refused too
        target = input_link_holding(self._data, logical, real)
        return target is not None and inside(target, tree)

    def allows_open_file(self, fd: int) -> bool:
        """Whether the file behind an open descriptor lies where `allows` would accept it: in the data tree or in
        the folder of one of the data/input/<user> links."""
        opened = os.readlink(f"/proc/self/fd/{fd}")
        if inside(opened, self._real_data):
            return not self._is_private(opened)
        return any(inside(opened, target) for target in self._input_link_targets())

    def _input_link_targets(self) -> list[str]:
        """The real folders the data/input/<user> links lead to, those inside this instance's sFTP tree."""
        if self.sftp_tree is None:
            return []
        tree = os.path.realpath(self.sftp_tree)
        targets = []
        with os.scandir(os.path.join(self._real_data, INPUT_DIR)) as entries:
            for entry in entries:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if inside(target, tree):
                        targets.append(target)
        return targets


class ConfinedFilesystem(AbstractedFS):  # type: ignore[misc]
    """pyftpdlib's file system view with CFISRV's confinement (the handler class names it as `abstracted_fs`)."""

    confinement: Confinement  # set on the subclass the server makes for its instance

    def validpath(self, path: str) -> bool:
        return self.confinement.allows(path)

    def realpath(self, path: str) -> str:
        return self.confinement.resolve(path)

    def fs2ftp(self, fspath: str) -> str:
        """The client's view of a path, for replies and logs: from the text alone.

        pyftpdlib's own resolves the path once more to choose between it and "/"; every path reaching here was
        checked by validpath when its command arrived, and a path outside the data tree as text still shows as "/".
        """
        path = os.path.normpath(fspath if os.path.isabs(fspath) else os.path.join(self.root, fspath))
        root = os.path.normpath(self.root)
        if not inside(path, root):
            return "/"
        return "/" + path[len(root) :].lstrip(os.sep).replace(os.sep, "/")

    def open(self, filename: str, mode: str) -> Any:
        if not self.confinement.allows(filename):
            raise PermissionError(f"{filename}: outside the data tree")
        handle = open(filename, mode)  # noqa: SIM115, PTH123 - pyftpdlib closes the handle when the transfer ends
        if not self.confinement.allows_open_file(handle.fileno()):
            handle.close()
            raise PermissionError(f"{filename}: outside the data tree")
        return handle
