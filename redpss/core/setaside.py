"""Moving a finished or refused input file out of data/input, durably and across file systems.

LOAD jobs (SCHED) and the converters (JSON2CSV, PARQ2CSV) both move a source into data/archive/<folder>/ when it is
done and into data/error/<folder>/ with `<name>.reason` when it is refused. Both must agree on the rules, so they
share this module:
- a name still taken in the target folder is kept: the newcomer becomes `<name>.1`, `.2`, ... (a name is taken when
  the file or its `.reason` is there, so a reason never describes another file);
- a name too long to get its `.N`, `.reason` and the hidden name of a copy (the file system allows 255 bytes) is cut
  in the middle, keeping its extension: a file with a long name is set aside like any other, never left in place;
- the reason is written (and fsynced) before the file moves, so a file in data/error always has its reason;
- across file systems (an sFTP tree mounted apart from the instance tree) the file is copied under a hidden name,
  fsynced, renamed and only then removed from its source: a kill -9 leaves the source or a complete copy;
- a move that fails is undone (its reason and any copy removed) and raises SetAsideError saying what would let it
  work, so a move tried again and again (each LOAD run) leaves nothing behind.

A file name is whatever bytes an uploader chose: `printable` is how one goes into a reason or a log line (one line,
text any file or journal can hold).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from redpss.core.durable import TMP_PREFIX, fsync_folder, write_atomically
from redpss.core.escape import escaped_char

REASON_SUFFIX = ".reason"
NAME_MAX = 255  # bytes in one name on Linux file systems (ext4, xfs, tmpfs)
# What a set-aside name must leave room for: its reason, written under a temporary name first (`.tmp-<name>.reason`),
# and the hidden copy across file systems (`.<name>.moving`).
RESERVED = max(len(TMP_PREFIX) + len(".reason"), len(".") + len(".moving"))
KEPT_EXTENSION = 32  # bytes of a name's extension kept when the name is cut
MAKE_READABLE = "make it readable by group redftp (chmod g+r)"  # the fix for an upload the instance user cannot read


def printable(name: str | os.PathLike[str]) -> str:
    """A file name (or path) as it may go into a reason or a log line: like repr without the quotes.

    A name is bytes to the kernel. One that is not UTF-8 holds bytes Python keeps as lone surrogates, which UTF-8
    cannot encode (a reason holding one could not be written); a line break in a name would split a one-line
    `.reason` and forge a line of its own in a log. Such characters are escaped as repr escapes them (an
    undecodable byte as the byte it was, `\\xff`; a line break `\\n`), a backslash doubled so that an escape is
    never ambiguous; every other name is shown as it is."""
    text = os.fspath(name)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    return char if char.isprintable() else escaped_char(char)


def free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/name.1, .2, ... when an earlier file of that name (or its reason) is still kept there;
    cut to fit when the name is too long for those suffixes."""
    number = 0
    while True:
        suffix = f".{number}" if number else ""
        candidate = folder / (fitted_name(name, len(suffix) + RESERVED) + suffix)
        if not any(_taken(path) for path in (candidate, candidate.with_name(candidate.name + REASON_SUFFIX))):
            return candidate
        number += 1


def fitted_name(name: str, room: int) -> str:
    """`name`, or when it and `room` more bytes exceed NAME_MAX, its start, `~` and its extension, within that."""
    if _size(name) + room <= NAME_MAX:
        return name
    stem, dot, extension = name.rpartition(".")
    tail = dot + extension if stem and _size(extension) < KEPT_EXTENSION else ""
    head = stem if tail else name
    while _size(head) + 1 + _size(tail) + room > NAME_MAX:
        head = head[:-1]  # by characters, so a multi-byte character is never split
    return head + "~" + tail


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _taken(path: Path) -> bool:
    return path.exists() or path.is_symlink()


class SetAsideError(OSError):
    """A move that failed and was undone; `fix` says what would let it work ("" when nothing obvious would), for the
    log and the run's message."""

    def __init__(self, exc: OSError, fix: str) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc), exc.filename)
        self.fix = fix


def advice(exc: OSError) -> str:
    """` (fix: ...)` for a failed move that has a fix, else "": the tail of a log line or a run's message."""
    return f" (fix: {exc.fix})" if isinstance(exc, SetAsideError) and exc.fix else ""


def move_file(source: Path, folder: Path, reason: str | None = None, name: str | None = None) -> Path:
    """Move `source` into `folder` (created if needed) under a free name (its own, or `name`); the path it went to.

    With `reason`, `<target>.reason` holding that text is written first, so the moved file is never without it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder, name or source.name)
    reason_file = target.with_name(target.name + REASON_SUFFIX)
    if reason is not None:
        write_atomically(reason_file, [reason.encode("utf-8", "surrogateescape")])
    try:
        try:
            source.rename(target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise SetAsideError(exc, _fix(exc, source, "g+w")) from exc
            _copy_then_remove(source, target)
    except OSError:
        if reason is not None:
            reason_file.unlink(missing_ok=True)
        raise
    fsync_folder(folder)
    fsync_folder(source.parent)
    return target


def _copy_then_remove(source: Path, target: Path) -> None:
    """The move across file systems; whatever fails, the file is in one place only (its source) afterwards.

    The copy takes as long as the file is large, and a sender may upload a new version under the name meanwhile:
    the name is removed only if it still holds the file copied, unchanged. A new file on the name (renamed over it)
    stays where it is, for its own turn, and the copy, of the file that was there before, is the move done; the file
    copied written to meanwhile stays too, and the copy, which may hold half of each, goes (SetAsideError)."""
    if not os.access(source.parent, os.W_OK | os.X_OK):  # known before copying what could not be removed after
        denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(source.parent))
        raise SetAsideError(denied, _fix(denied, source, "g+w"))
    partial = target.with_name(f".{target.name}.moving")
    try:
        src = source.open("rb")
    except OSError as exc:
        raise SetAsideError(exc, _fix(exc, source, "g+r")) from exc
    try:
        with src, partial.open("wb") as dst:
            copied = os.fstat(src.fileno())
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
            after = os.fstat(src.fileno())
        if (after.st_size, after.st_mtime_ns) != (copied.st_size, copied.st_mtime_ns):
            written = OSError(errno.EBUSY, "the file was written to while it was copied", str(source))
            raise SetAsideError(written, "")
        partial.rename(target)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk, or a file written meanwhile: no copy left behind
        raise
    try:
        fsync_folder(target.parent)
        named = source.lstat()
        if (named.st_dev, named.st_ino) != (copied.st_dev, copied.st_ino):
            return  # a new file took the name while the one before was copied: it stays, for its own turn
        source.unlink()
    except FileNotFoundError:
        return  # removed meanwhile by someone else: the copy is the file now
    except OSError as exc:  # the copy goes: a file in two places would be loaded or converted twice
        target.unlink(missing_ok=True)
        raise SetAsideError(exc, _fix(exc, source, "g+w")) from exc


def _fix(exc: OSError, source: Path, mode: str) -> str:
    """What lets the instance user read (`g+r`) or move (`g+w`) an upload, when permissions are what failed."""
    if exc.errno not in (errno.EACCES, errno.EPERM):
        return ""
    if mode == "g+r":
        return MAKE_READABLE
    return f"let the instance user change {source.parent} (chmod g+w on it, e.g. a folder an sFTP user made)"
