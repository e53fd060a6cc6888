"""Snapshots of what a test may leave behind: threads, file descriptors, child processes."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path


def child_pids() -> set[int]:
    """PIDs of live (non-zombie) children of this process, read from /proc."""
    me = os.getpid()
    children: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == me and state != "Z":
            children.add(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants, read from /proc (parents first)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            fds[int(entry.name)] = str(entry.readlink())
        except OSError:
            continue
    return fds


@dataclass(frozen=True)
class Snapshot:
    threads: frozenset[int]
    fds: dict[int, str]
    children: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            threads=frozenset(t.ident or 0 for t in threading.enumerate()),
            fds=open_fds(),
            children=frozenset(child_pids()),
        )

    def leaks_since(self, before: Snapshot) -> list[str]:
        found: list[str] = []
        new_threads = [t for t in threading.enumerate() if (t.ident or 0) not in before.threads and t.is_alive()]
        found += [f"thread {t.name!r} still running" for t in new_threads]
        found += [f"file descriptor {fd} -> {target}" for fd, target in self.fds.items() if fd not in before.fds]
        found += [f"child process {pid} still running" for pid in sorted(self.children - before.children)]
        return found


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak) of process `pid`, in KiB, from /proc: what a server under a flood may
    grow to."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for pid {pid}")
