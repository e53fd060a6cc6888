"""When a file in data/input may be taken: never while it is still being written.

A writer leaves no reliable sign that it has finished (sshd's sftp-server writes under the final name, a copy
preserves the source's mtime only once it is done), so a file counts as finished when two things hold:

- its name is not one of an upload in progress (`is_temporary_name`): hidden names (a leading dot: rsync, our own
  converters' `.<name>.part`), and the suffixes clients write under before renaming (.part, .partial, .filepart,
  .tmp, .temp, .crdownload, .upload, ~);
- its size and mtime stayed the same for `interval` seconds: observed twice that far apart by a `StabilityTracker`
  (daemons that scan repeatedly), or, for a caller that looks only once (SCHED's FILE watcher), an mtime at least
  `interval` old (any write moves the mtime, so an old mtime means nothing was written for that long).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TEMPORARY_SUFFIXES = (".part", ".partial", ".filepart", ".tmp", ".temp", ".crdownload", ".upload", "~")


def is_temporary_name(name: str) -> bool:
    """True for names uploads and converters use while a file is being written (see the module docstring)."""
    lowered = name.lower()
    return name.startswith(".") or lowered.endswith(TEMPORARY_SUFFIXES)


@dataclass(frozen=True)
class FileState:
    """What identifies one version of a file: any write changes size or mtime, a replacement the inode."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, info: os.stat_result) -> FileState:
        return cls(info.st_size, info.st_mtime_ns, info.st_ino)


def regular_file_state(path: Path) -> FileState | None:
    """The state of `path` when it is a regular file (not followed if it is a link); None otherwise or if gone."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return FileState.of(info) if stat.S_ISREG(info.st_mode) else None


def settled(state: FileState, interval: float, now: float) -> bool:
    """The one-look rule: nothing was written to the file for `interval` seconds."""
    return now - state.mtime_ns / 1e9 >= interval


def is_stable_file(path: Path, interval: float, now: float) -> bool:
    """For callers that look once: a regular file, not under a temporary name, untouched for `interval` seconds."""
    if is_temporary_name(path.name):
        return False
    state = regular_file_state(path)
    return state is not None and settled(state, interval, now)


class StabilityTracker:
    """For callers that scan repeatedly: a file is ready once the same state was seen `interval` seconds apart
    and its mtime is that old too (so a file whose writer pauses longer than one scan still waits)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._seen: dict[Path, tuple[FileState, float]] = {}  # path -> (state, when first seen in that state)

    def ready(self, candidates: Iterable[Path], now: float) -> list[Path]:
        """The candidates that are finished, in the order given; forgets paths no longer offered."""
        seen: dict[Path, tuple[FileState, float]] = {}
        ready = []
        for path in candidates:
            if is_temporary_name(path.name):
                continue
            state = regular_file_state(path)
            if state is None:
                continue
            previous = self._seen.get(path)
            first = previous[1] if previous is not None and previous[0] == state else now
            seen[path] = (state, first)
            if self._steady(state, first, now):
                ready.append(path)
        self._seen = seen
        return ready

    def still_ready(self, path: Path, now: float) -> FileState | None:
        """The file's state if it is still the one seen unchanged for the interval at the last scan, with an mtime
        that old; None when it was written to, replaced or removed since. For a caller that takes the ready files
        one after another over minutes: a file written to meanwhile waits for a later scan."""
        seen = self._seen.get(path)
        state = regular_file_state(path)
        if seen is None or state is None or state != seen[0] or not self._steady(state, seen[1], now):
            return None
        return state

    def _steady(self, state: FileState, first_seen: float, now: float) -> bool:
        """Seen in `state` since `first_seen` for the interval, and not written to for as long."""
        return now - first_seen >= self.interval and settled(state, self.interval, now)

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)
