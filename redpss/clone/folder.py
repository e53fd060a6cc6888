"""$REDENV_HOME/tmp/preclone: what `redctl preclone` saved, checked by a manifest of checksums.

The folder appears whole or not at all: it is written as tmp/preclone.new-<pid>, each file fsync'd, and renamed
into place. `restore.json` beside the saved files is the restore's own progress (the clone's cut-off time and the
steps done); it is not part of the manifest, since the restore writes it. After the restore the folder moves to
tmp/preclone-archive/<time>, so a later start finds nothing pending.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redpss
from redpss.core.durable import fsync_folder, write_atomically
from redpss.core.errors import RedpssError
from redpss.core.paths import InstancePaths

FORMAT = 1
MANIFEST = "manifest.json"
PROGRESS = "restore.json"
SAVED_FILES = ("identity.json", "owned.json", "suspend.json")


class PrecloneError(RedpssError):
    """The preclone folder cannot be written or read as it is (pending one, damaged file)."""


def folder(paths: InstancePaths) -> Path:
    return paths.tmp / "preclone"


def archive_root(paths: InstancePaths) -> Path:
    return paths.tmp / "preclone-archive"


def pending(paths: InstancePaths) -> bool:
    return (folder(paths) / MANIFEST).is_file()


@dataclass(frozen=True)
class Saved:
    """The verified contents of a pending preclone folder."""

    manifest: dict[str, Any]
    files: dict[str, Any]  # file name -> its JSON


def write(paths: InstancePaths, contents: dict[str, Any], *, force: bool) -> Path:
    """Write the folder from `contents` (file name -> JSON value); a pending one is replaced only with `force`."""
    target = folder(paths)
    if target.exists() and (target / PROGRESS).exists():
        raise PrecloneError(
            f"a restore from {target} has begun and not finished; finish it with `redctl postclone` first"
        )
    if target.exists() and not force:
        raise PrecloneError(
            f"a preclone is pending in {target} (saved {_saved_at(target)}); it is not overwritten: "
            "restore the clone and start the instance (or run `redctl postclone`), or replace it with "
            "`redctl preclone --force`"
        )
    _remove_leftovers(paths)
    fresh = paths.tmp / f"preclone.new-{os.getpid()}"
    fresh.mkdir(mode=0o700)
    checksums = {}
    for name, value in contents.items():
        data = (json.dumps(value, indent=1, sort_keys=True, default=str) + "\n").encode()
        write_atomically(fresh / name, [data], mode=0o600)
        checksums[name] = hashlib.sha256(data).hexdigest()
    manifest = {
        "format": FORMAT,
        "instance": paths.redenv,
        "saved_at": time.time(),
        "redpss_version": redpss.__version__,
        "files": checksums,
    }
    write_atomically(fresh / MANIFEST, [(json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()], mode=0o600)
    fsync_folder(fresh)
    if target.exists():
        old = paths.tmp / f"preclone.old-{os.getpid()}"
        target.rename(old)
        fresh.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        fresh.rename(target)
    fsync_folder(paths.tmp)
    return target


def read(paths: InstancePaths) -> Saved:
    """The pending folder, every file checked against the manifest; PrecloneError naming what is wrong."""
    target = folder(paths)
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise PrecloneError(f"{target / MANIFEST} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("instance") != paths.redenv:
        raise PrecloneError(
            f"{target / MANIFEST} is of format {manifest.get('format')!r} for instance {manifest.get('instance')!r}; "
            f"expected format {FORMAT} for {paths.redenv}"
        )
    files: dict[str, Any] = {}
    for name, checksum in dict(manifest["files"]).items():
        path = target / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PrecloneError(f"{path} cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != checksum:
            raise PrecloneError(
                f"{path} does not match its checksum in {MANIFEST}: the saved state was changed or damaged; "
                "it is not applied (save it again with `redctl preclone --force` if the database was not restored yet)"
            )
        files[name] = json.loads(data)
    return Saved(manifest, files)


def progress(paths: InstancePaths) -> dict[str, Any] | None:
    """The restore's progress: None until it began."""
    path = folder(paths) / PROGRESS
    try:
        value: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # torn by a crash before its rename: the restore begins anew, which is idempotent
    return value


def save_progress(paths: InstancePaths, value: dict[str, Any]) -> None:
    path = folder(paths) / PROGRESS
    write_atomically(path, [(json.dumps(value, sort_keys=True) + "\n").encode()], mode=0o600)


def archive(paths: InstancePaths) -> Path | None:
    """Move the pending folder to the archive; None when there is none (archived already)."""
    target = folder(paths)
    if not target.exists():
        return None
    root = archive_root(paths)
    root.mkdir(mode=0o700, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    destination = root / stamp
    number = 0
    while destination.exists():
        number += 1
        destination = root / f"{stamp}.{number}"
    target.rename(destination)
    fsync_folder(paths.tmp)
    return destination


def _saved_at(target: Path) -> str:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(json.loads((target / MANIFEST).read_text())["saved_at"])
        )
    return "at an unknown time"


def _remove_leftovers(paths: InstancePaths) -> None:
    """Half-written folders of a preclone that was killed."""
    for pattern in ("preclone.new-*", "preclone.old-*"):
        for leftover in paths.tmp.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
