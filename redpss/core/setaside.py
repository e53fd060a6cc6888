"""Moving a finished or refused input file out of data/input, durably and across file systems.

LOAD jobs (SCHED) and the converters (JSON2CSV, PARQ2CSV) both move a source into data/archive/<folder>/ when it is
done and into data/error/<folder>/ with `<name>.reason` when it is refused. Both must agree on the rules, so they
share this module:
- a name still taken in the target folder is kept: the newcomer becomes `<name>.1`, `.2`, ...;
- the reason is written (and fsynced) before the file moves, so a file in data/error always has its reason;
- across file systems (an sFTP tree mounted apart from the instance tree) the file is copied under a hidden name,
  fsynced, renamed and only then removed from its source: a kill -9 leaves the source or a complete copy.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from redpss.core.durable import fsync_folder, write_atomically

REASON_SUFFIX = ".reason"


def free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/name.1, .2, ... when an earlier file of that name is still kept there."""
    candidate = folder / name
    number = 0
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = folder / f"{name}.{number}"
    return candidate


def move_file(source: Path, folder: Path, reason: str | None = None) -> Path:
    """Move `source` into `folder` (created if needed) under a free name; the path it went to.

    With `reason`, `<target>.reason` holding that text is written first, so the moved file is never without it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = free_name(folder, source.name)
    if reason is not None:
        write_atomically(target.with_name(target.name + REASON_SUFFIX), [reason.encode()])
    try:
        source.rename(target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_then_remove(source, target)
    fsync_folder(folder)
    fsync_folder(source.parent)
    return target


def _copy_then_remove(source: Path, target: Path) -> None:
    partial = target.with_name(f".{target.name}.moving")
    with source.open("rb") as src, partial.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    partial.rename(target)
    fsync_folder(target.parent)
    source.unlink()
