"""When a file in data/input may be taken: never while it is still being written.

A writer leaves no reliable sign that it has finished (sshd's sftp-server writes under the final name, a copy
preserves the source's mtime only once it is done), so a file counts as finished when two things hold:

- its name is not one of an upload in progress (`is_temporary_name`): hidden names (a leading dot: rsync, our own
  converters' `.<name>.part`), and the suffixes clients write under before renaming (.part, .partial, .filepart,
  .tmp, .temp, .crdownload, .upload, ~);
- its size and mtime stayed the same for `interval` seconds: observed twice that far apart by a `StabilityTracker`
  (daemons that scan repeatedly), or, for a caller that looks only once (SCHED's FILE watcher), an mtime at least
  `interval` old (any write moves the mtime, so an old mtime means nothing was written for that long);
- and no process holds it open for writing (`open_for_writing`): an upload whose client stalls longer than the
  interval (a slow line, a laptop going to sleep) keeps its sftp-server's descriptor open, so the file waits
  however long the pause. The kernel says so to whoever may take a read lease on the file: its owner, or a process
  with CAP_LEASE (the units of the daemons that take uploads, owned by the sFTP users, have it). Without it the
  first rule alone decides, and the process says so once in its log.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FUTURE_TOLERANCE = 1.0  # seconds an mtime may be ahead of our clock (file systems round) and still count
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
    # the kernel's time of the last change (ctime), which no client sets: for an mtime ahead of the clock only, and
    # no part of what identifies the version (a chmod changes it)
    changed_ns: int = field(default=0, compare=False)

    @classmethod
    def of(cls, info: os.stat_result) -> FileState:
        return cls(info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns)


def regular_file_state(path: Path) -> FileState | None:
    """The state of `path` when it is a regular file (not followed if it is a link); None otherwise or if gone."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return FileState.of(info) if stat.S_ISREG(info.st_mode) else None


def settled(state: FileState, interval: float, now: float) -> bool:
    """The one-look rule: nothing was written to the file for `interval` seconds. An mtime ahead of the clock (an
    sFTP client keeping the sender's time, WinSCP by default, from a clock that is ahead) says nothing of when the
    file was written, and would hold it for hours or for good: then the kernel's time of its last change counts."""
    written = state.mtime_ns / 1e9
    if written > now + FUTURE_TOLERANCE and state.changed_ns:
        written = state.changed_ns / 1e9
    return now - written >= interval


class _LeaseProbe:
    """Whether a file is open for writing, asked of the kernel with a read lease taken and dropped at once.

    F_SETLEASE(F_RDLCK) is refused with EAGAIN while any process has the file open for writing (or mapped
    writable), and succeeds otherwise. The lease lives only until our descriptor closes, microseconds later; a
    writer opening the file in between waits for that close. The kernel tells a lease holder of such an open by a
    signal, SIGIO unless the descriptor names another: SIGURG here, ignored by default, since SIGIO would end the
    process. What was opened must be a regular file (a name swapped for a folder or a FIFO since the caller's look
    is no answer, and says nothing about leases). A refusal that says nothing about writers is remembered with one
    warning: EACCES (neither the owner nor CAP_LEASE) for the files of other users, EINVAL (a file system without
    leases, or leases switched off) for that file system; the time rule alone decides for those."""

    def __init__(self) -> None:
        self.others_files = ""  # why files of other users cannot be asked about ("" while they can)
        self.devices: dict[int, str] = {}  # file systems that refused a lease -> why

    def writing(self, path: Path) -> bool:
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:  # EWOULDBLOCK: another process holds a write lease on it
            return exc.errno == errno.EWOULDBLOCK
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode) or info.st_dev in self.devices:
                return False
            if self.others_files and info.st_uid != os.geteuid():
                return False
            try:
                fcntl.fcntl(descriptor, fcntl.F_SETSIG, signal.SIGURG)
                fcntl.fcntl(descriptor, fcntl.F_SETLEASE, fcntl.F_RDLCK)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    return True
                self._cannot_ask(path, info.st_dev, exc)
            return False
        finally:
            os.close(descriptor)

    def _cannot_ask(self, path: Path, device: int, exc: OSError) -> None:
        reason = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        if exc.errno in (errno.EACCES, errno.EPERM):
            self.others_files = reason
            which = "files of other users (sFTP uploads)"
            fix = "the process needs CAP_LEASE (the units grant it: run the daemon under systemd)"
        else:
            self.devices[device] = reason
            which = "files on the file system of " + str(path)
            fix = "that file system has no leases, or fs.leases-enable is 0"
        log.warning(
            "cannot tell whether %s are still open for writing (read lease on %s refused: %s); %s. Until this "
            "process restarts such a file is taken once ingest_stable_seconds pass without a change, so an upload "
            "that stalls longer is taken half-written",
            which,
            path,
            reason,
            fix,
        )


_PROBE = _LeaseProbe()


def open_for_writing(path: Path) -> bool:
    """True while some process has `path` open for writing; False when none has, or when this process cannot
    tell (see _LeaseProbe: then the time rule alone decides)."""
    return _PROBE.writing(path)


def finished(path: Path, state: FileState, interval: float, now: float) -> bool:
    """The one-look rule for a file whose state was just read: settled for `interval` and not open for writing."""
    return settled(state, interval, now) and not open_for_writing(path)


def is_stable_file(path: Path, interval: float, now: float) -> bool:
    """For callers that look once: a regular file, not under a temporary name, untouched for `interval` seconds,
    and open for writing nowhere."""
    if is_temporary_name(path.name):
        return False
    state = regular_file_state(path)
    return state is not None and finished(path, state, interval, now)


class StabilityTracker:
    """For callers that scan repeatedly: a file is ready once the same state was seen `interval` seconds apart,
    its mtime is that old too (so a file whose writer pauses longer than one scan still waits), and no process has
    it open for writing (so one whose writer pauses longer than the interval waits too)."""

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
            if self._steady(state, first, now) and not open_for_writing(path):
                ready.append(path)
        self._seen = seen
        return ready

    def still_ready(self, path: Path, now: float) -> FileState | None:
        """The file's state if it is still the one seen unchanged for the interval at the last scan, with an mtime
        that old; None when it was written to, replaced or removed since, or is open for writing now. For a caller
        that takes the ready files one after another over minutes: a file written to meanwhile waits for a later
        scan."""
        seen = self._seen.get(path)
        state = regular_file_state(path)
        if seen is None or state is None or state != seen[0] or not self._steady(state, seen[1], now):
            return None
        return None if open_for_writing(path) else state

    def _steady(self, state: FileState, first_seen: float, now: float) -> bool:
        """Seen in `state` since `first_seen` for the interval, and not written to for as long."""
        return now - first_seen >= self.interval and settled(state, self.interval, now)

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)
