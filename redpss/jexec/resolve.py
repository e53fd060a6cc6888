"""Finding an action's script inside cmd/ without ever leaving it.

The name is a relative path of plain components (no `..`, no `.`, no empty part). It is resolved one component at a
time relative to an open descriptor of cmd/, every component opened with O_NOFOLLOW, so a symbolic link anywhere on
the way (one that leaves cmd/ or not) is refused, and a link swapped in after the checks cannot redirect the run:
the script is executed through the very descriptor that was checked (/proc/self/fd/N). The script must be a regular
file, executable by its owner, owned by the daemon's own user and not writable by group or others; so must every
folder on its way (cmd/ included) be owned by that user or root and not writable by group or others.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from redpss.core.errors import RedpssError

MAX_NAME = 255


class ActionRefused(RedpssError):
    """The action cannot be run; the message says what is wrong with it and how to fix it."""


def open_action(cmd_dir: Path, name: object) -> int:
    """An O_PATH descriptor of the checked script `name` below `cmd_dir`; ActionRefused saying why not."""
    parts = _parts(name)
    try:
        directory = os.open(cmd_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ActionRefused(f"the cmd folder {cmd_dir} cannot be opened: {exc.strerror}") from None
    try:
        _check_folder(directory, "cmd", name)
        for index, part in enumerate(parts[:-1]):
            where = "/".join(parts[: index + 1])
            following = _open_below(directory, part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, where, name)
            os.close(directory)
            directory = following
            _check_folder(directory, f"cmd/{where}", name)
        script = _open_below(directory, parts[-1], os.O_PATH | os.O_NOFOLLOW, str(name), name)
    finally:
        os.close(directory)
    try:
        _check_script(script, str(name))
    except ActionRefused:
        os.close(script)
        raise
    return script


def _parts(name: object) -> list[str]:
    if not isinstance(name, str) or not name:
        raise ActionRefused('an action names its script in cmd/: "action": "<relative path>", e.g. "reports/daily.sh"')
    if len(name) > MAX_NAME or "\0" in name:
        raise ActionRefused(f"action name {name[:60]!r} is too long or holds a NUL character")
    if name.startswith("/"):
        raise ActionRefused(
            f"action {name!r} is an absolute path; only scripts in cmd/ run, named relative to it (e.g. daily.sh)"
        )
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ActionRefused(f"action {name!r} must be a relative path below cmd/ without '..', '.' or empty parts")
    return parts


def _open_below(directory: int, part: str, flags: int, where: str, name: object) -> int:
    try:
        return os.open(part, flags | os.O_CLOEXEC, dir_fd=directory)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ActionRefused(f"action {name!r}: cmd/{where} does not exist") from None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ActionRefused(
                f"action {name!r}: cmd/{where} is a symbolic link or not a folder; links are not followed in cmd/"
            ) from None
        raise ActionRefused(f"action {name!r}: cmd/{where} cannot be opened: {exc.strerror}") from None


def _check_folder(folder: int, where: str, name: object) -> None:
    """A folder on the way to a script must be as safe as the script: whoever may write it could rename another of
    the instance's scripts to the name asked for. Owned by JEXEC's user or root, not writable by group or others
    (unless sticky: then only the owner of a file may rename it)."""
    info = os.fstat(folder)
    if info.st_uid not in (os.geteuid(), 0):
        raise ActionRefused(
            f"action {name!r}: {where} is owned by uid {info.st_uid}, not by JEXEC's user (uid {os.geteuid()}) or "
            "root: its owner could put any script under the name"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise ActionRefused(
            f"action {name!r}: {where} is writable by group or others, who could rename a script to the name: "
            f"chmod go-w {where}"
        )


def _check_script(script: int, name: str) -> None:
    info = os.fstat(script)
    if stat.S_ISLNK(info.st_mode):
        raise ActionRefused(
            f"action {name!r} is a symbolic link; links are not followed in cmd/: put the script itself there"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ActionRefused(f"action {name!r} is not a regular file")
    if info.st_uid != os.geteuid():
        raise ActionRefused(
            f"action {name!r} is owned by uid {info.st_uid}, not by JEXEC's user (uid {os.geteuid()}): "
            "only scripts of the instance's own user run"
        )
    if not info.st_mode & stat.S_IXUSR:
        raise ActionRefused(f"action {name!r} is not executable: chmod u+x cmd/{name}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ActionRefused(f"action {name!r} is writable by group or others: chmod go-w cmd/{name}")


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
