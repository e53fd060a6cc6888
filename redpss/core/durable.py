"""Files that survive a crash once written: write under a temporary name, fsync, rename, fsync the folder.

For a daemon that acknowledges data as safe (SENDMAIL's spool, converters' outputs): after `write_atomically(...,
sync=True)` returns, a kill -9 or a power cut leaves either the whole new file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable, Iterator
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


_RENAME_NOREPLACE = 1  # linux/fs.h
_AT_FDCWD = -100


def rename_without_replacing(source: Path, target: Path) -> None:
    """Rename `source` to `target`; FileExistsError, and nothing renamed, when `target` exists. One atomic step
    (renameat2 with RENAME_NOREPLACE: glibc 2.28, RHEL 8's), so a file that appears under `target` at the same moment
    (an upload) is never replaced. On a file system without it (NFS), a link and an unlink: the kernel may refuse the
    link to a file of another user (protected_hardlinks; OSError, nothing renamed), and a stop between the two leaves
    the file under both names."""
    import ctypes  # noqa: PLC0415 - loaded by the few callers only

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
        return
    code = ctypes.get_errno()
    if code not in (errno.EINVAL, errno.ENOSYS):  # EINVAL: the file system cannot rename without replacing
        raise OSError(code, os.strerror(code), str(source), None, str(target))
    os.link(source, target)
    source.unlink()


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` (made if missing, 0600) for the block: one holder at a time across
    processes (a restore's steps, the console's workers rewriting one file)."""
    fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
