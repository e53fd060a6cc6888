"""How sFTP uploads appear in an instance's data/input: one symbolic link per user, `data/input/<user>`.

The links are made by root inside the redsys-owned data/input folder, so they are made relative to an open handle
on that folder (never following a link in its last component) and handed to the folder's owner. Readers (JSON2CSV,
PARQ2CSV, loaders) find the per-user folders with `iter_input_folders`.
"""

from __future__ import annotations

import os
from pathlib import Path

from redpss.core.paths import InstancePaths
from redpss.redftp.errors import RedftpError


def iter_input_folders(paths: InstancePaths) -> list[Path]:
    """data/input first, then every folder reached through a symbolic link directly in it, sorted by name.

    The returned per-user paths go through the link (data/input/alice), so what a reader logs and moves names the
    instance tree, not the chroot. Dangling links and links to files are skipped. Readers must still not follow
    links found *inside* a user's folder: the sshd snippet forbids creating them, but defence in depth is cheap.
    """
    top = paths.data_input
    if not top.is_dir():
        return []
    folders = [top]
    for entry in sorted(top.iterdir()):
        if entry.is_symlink() and entry.is_dir():
            folders.append(entry)
    return folders


def _open_dir(folder: Path) -> int:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise RedftpError(f"{folder} does not exist; the instance tree is incomplete") from None
    except NotADirectoryError:
        raise RedftpError(f"{folder} is not a folder (or is a symbolic link); refusing to write into it") from None


def link_upload(folder: Path, name: str, target: Path) -> Path:
    """Create `folder/name` -> `target`, owned like `folder`; RedftpError if the name is already used."""
    fd = _open_dir(folder)
    try:
        info = os.fstat(fd)
        try:
            os.symlink(target, name, dir_fd=fd)
        except FileExistsError:
            raise RedftpError(
                f"{folder / name} already exists; move it away (a file or folder there would hide the user's uploads)"
            ) from None
        os.chown(name, info.st_uid, info.st_gid, dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)
    return folder / name


def unlink_upload(folder: Path, name: str, target: Path) -> bool:
    """Remove `folder/name` if it is our link to `target`; True when removed. Anything else there is left alone."""
    try:
        fd = _open_dir(folder)
    except RedftpError:
        return False
    try:
        try:
            current = os.readlink(name, dir_fd=fd)
        except (FileNotFoundError, OSError):
            return False
        if Path(current) != target:
            return False
        os.unlink(name, dir_fd=fd)
        return True
    finally:
        os.close(fd)
