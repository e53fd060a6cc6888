"""Log files with the day in their name, which any number of processes can append to at once.

`<service>.log` is a symbolic link to today's `<service>-YYYY-MM-DD.log` (local date), so `tail -F sched.log`
follows the days and retention removes whole days. Nothing is ever renamed: several processes write the same file
(SCHED's master and its workers; JMON and every redctl command share redctl.log), and a rename-based rotation would
leave the others writing into a moved file. Each record is one O_APPEND write, so lines from different processes
never interleave.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
from pathlib import Path

_DATED = re.compile(r"(?P<stem>.+)-(?P<day>\d{4}-\d{2}-\d{2})(?:\.\d+)?\.log")
FILE_MODE = 0o640


def day_of(timestamp: float) -> dt.date:
    """The local calendar day of a time.time() value: the day whose file a record belongs to."""
    return dt.datetime.fromtimestamp(timestamp).date()


def dated_name(link: Path, day: dt.date) -> str:
    """`sched.log` -> `sched-2026-11-29.log`."""
    return f"{link.stem}-{day.isoformat()}{link.suffix or '.log'}"


def day_in_name(path: Path) -> dt.date | None:
    """The day a dated log file holds (None for any other file)."""
    match = _DATED.fullmatch(path.name)
    if match is None:
        return None
    try:
        return dt.date.fromisoformat(match["day"])
    except ValueError:
        return None


class DailyFileHandler(logging.Handler):
    """Writes each record to the file of the record's own day and keeps `link` pointing at the newest one."""

    def __init__(self, link: Path) -> None:
        super().__init__()
        self.link = link
        self.link.parent.mkdir(parents=True, exist_ok=True)
        self._day: dt.date | None = None  # the day of the open file
        self._newest: dt.date | None = None  # the latest day seen: the link points at its file
        self._fd: int | None = None
        self._path: Path | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(record)
        except Exception:
            self.handleError(record)

    def write(self, record: logging.LogRecord) -> None:
        """Append the formatted record to its day's file; OSError when that cannot be done."""
        data = (self.format(record) + "\n").encode("utf-8", "replace")
        fd = self._file_for(day_of(record.created))
        while data:  # a regular file takes it in one write unless the disk is full
            written = os.write(fd, data)
            data = data[written:]

    def _file_for(self, day: dt.date) -> int:
        if self._fd is not None and day == self._day and self._still_there():
            return self._fd
        self._close_fd()
        newest = self._newest is None or day >= self._newest  # else a late record of an earlier day
        if newest:
            self._adopt_legacy_file()
        path = self.link.with_name(dated_name(self.link, day))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            self._fd = os.open(path, flags, FILE_MODE)
        except FileNotFoundError:  # its folder removed by hand (rm -rf log/DB/APP1): made again, as at the start
            path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            self._fd = os.open(path, flags, FILE_MODE)
        self._path, self._day = path, day
        if newest:
            self._newest = day
            self._point_link_at(path)
        return self._fd

    def _still_there(self) -> bool:
        """False when today's file was removed or replaced by hand: the next record reopens it."""
        assert self._fd is not None and self._path is not None
        try:
            on_disk = self._path.stat()
        except FileNotFoundError:
            return False
        mine = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def _adopt_legacy_file(self) -> None:
        """A plain `<service>.log` from before daily files becomes the dated file of its last change."""
        if self.link.is_symlink() or not self.link.is_file():
            return
        day = day_of(self.link.stat().st_mtime)
        target = self.link.with_name(dated_name(self.link, day))
        number = 0
        while target.exists():
            number += 1
            target = self.link.with_name(f"{self.link.stem}-{day.isoformat()}.{number}{self.link.suffix}")
        with contextlib.suppress(FileNotFoundError):  # another process adopted it first
            self.link.rename(target)

    def _point_link_at(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            if self.link.is_symlink() and str(self.link.readlink()) == path.name:
                return
            temporary = self.link.with_name(f".{self.link.name}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(path.name)
            temporary.replace(self.link)  # atomic: readers see the old or the new link, never none

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self.acquire()
        try:
            self._close_fd()
        finally:
            self.release()
        super().close()
