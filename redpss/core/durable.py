"""Files that survive a crash once written: write under a temporary name, fsync, rename, fsync the folder.

For a daemon that acknowledges data as safe (SENDMAIL's spool, converters' outputs): after `write_atomically(...,
sync=True)` returns, a kill -9 or a power cut leaves either the whole new file or none, never half of one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

TMP_PREFIX = ".tmp-"  # a leftover with this prefix is an interrupted write: never acknowledged, safe to remove


NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})  # the errnos of a full disk or quota: space may come back


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a rename, a new or removed file) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomically(path: Path, chunks: Iterable[bytes], *, sync: bool = True, mode: int = 0o640) -> None:
    """Write `path` through `.tmp-<name>` beside it and rename; with `sync`, file and folder are fsync'd first."""
    temporary = path.with_name(f"{TMP_PREFIX}{path.name}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    temporary.replace(path)
    if sync:
        fsync_folder(path.parent)
