"""Run the SCHED daemon with a small tmpfs over its instance's tmp/, in a mount namespace of its own (root only).

`python -m tests.sched.small_tmp --tmp-size 1m --instance TST1` makes the mounts of this process private, mounts a
tmpfs of that size over $REDENV_HOME/tmp (copying the regular files that were there), then runs redpss-sched in this
same process, so its workers share the namespace. Nobody else sees the tmpfs; a test fills and empties it through
/proc/<pid>/root/..., which shows this process's view of the file system: a real full disk, and only for SCHED.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from redpss.core.paths import InstancePaths

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def mount_small_tmp(tmp: Path, size: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {p.name: p.read_bytes() for p in tmp.iterdir() if p.is_file() and not p.is_symlink()}
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    options = f"size={size},mode=0700".encode()
    _check(libc.mount(b"tmpfs", str(tmp).encode(), b"tmpfs", 0, options), f"mount tmpfs on {tmp}")
    for name, data in saved.items():
        (tmp / name).write_bytes(data)


def main() -> int:
    argv = sys.argv[1:]
    index = argv.index("--tmp-size")
    size = argv[index + 1]
    del argv[index : index + 2]
    mount_small_tmp(InstancePaths.from_env().tmp, size)
    from redpss.sched.service import main as sched_main  # noqa: PLC0415 - only once the mounts are in place

    return sched_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
