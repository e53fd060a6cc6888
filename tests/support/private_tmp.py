"""A small tmpfs over an instance's tmp/, seen only inside a mount namespace of its own (root only).

`python -m tests.support.private_tmp --tmp DIR --size 2m` makes a private mount namespace, mounts a tmpfs of that
size over DIR (keeping the regular files that were there), says `ready` on stdout and holds the namespace until its
stdin closes. Daemons join it through `PrivateTmp.launcher()` (nsenter), so they share one tmp/ — JMON's socket, SCHED's
spools — and nobody outside sees the tmpfs. A test fills and frees it through /proc/<holder>/root/..., a real full
disk for exactly these processes. `PrivateTmp` is the test side.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
CHUNK = 1 << 16


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def mount_private_tmp(tmp: Path, size: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    saved = {p.name: (p.read_bytes(), p.stat().st_mode) for p in tmp.iterdir() if p.is_file() and not p.is_symlink()}
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(libc.mount(b"tmpfs", str(tmp).encode(), b"tmpfs", 0, f"size={size},mode=0700".encode()), f"tmpfs on {tmp}")
    for name, (data, mode) in saved.items():
        (tmp / name).write_bytes(data)
        (tmp / name).chmod(mode & 0o7777)


def main() -> int:
    parser = argparse.ArgumentParser(prog="private_tmp")
    parser.add_argument("--tmp", type=Path, required=True)
    parser.add_argument("--size", required=True)
    args = parser.parse_args()
    mount_private_tmp(args.tmp, args.size)
    print("ready", flush=True)
    sys.stdin.read()  # hold the namespace until the test closes our stdin
    return 0


class PrivateTmp:
    """The holder process of the namespace, and what a test does with its tmpfs."""

    def __init__(self, tmp: Path, size: str) -> None:
        self.tmp = tmp
        self.holder = subprocess.Popen(
            [sys.executable, "-m", "tests.support.private_tmp", "--tmp", str(tmp), "--size", size],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise AssertionError(f"no private tmpfs over {tmp} (needs root and mount namespaces): {line!r}")

    def launcher(self) -> list[str]:
        """The command prefix that runs a command in the namespace (same pid: nsenter execs it)."""
        return ["nsenter", f"--target={self.holder.pid}", "--mount", f"--wd={Path.cwd()}", "--"]

    def inside(self, path: Path) -> Path:
        """`path` as the processes in the namespace see it."""
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")

    def fill(self) -> int:
        """Write a file until the tmpfs is full (ENOSPC); the bytes it took."""
        written = 0
        with self.inside(self.tmp / "filler").open("wb", buffering=0) as handle:
            try:
                while True:
                    written += handle.write(b"\0" * CHUNK)
            except OSError:
                pass
        for size in (4096, 512, 1):  # the last pages too, so any append fails
            try:
                with self.inside(self.tmp / f"filler-{size}").open("wb", buffering=0) as handle:
                    while True:
                        written += handle.write(b"\0" * size)
            except OSError:
                continue
        return written

    def free(self) -> None:
        for path in self.inside(self.tmp).glob("filler*"):
            path.unlink()

    def close(self) -> None:
        if self.holder.stdin is not None:
            self.holder.stdin.close()
        if self.holder.stdout is not None:
            self.holder.stdout.close()
        try:
            self.holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait()


if __name__ == "__main__":
    raise SystemExit(main())
