"""Where a conversion's files go, in an order that converts every source exactly once, even after kill -9.

For data/input/<folder>/orders.json (JSON2CSV; PARQ2CSV alike with its own tag):

1. the CSV is written to `.orders.json.json2csv.part` beside the source and fsynced;
2. it is renamed to `.orders.json.json2csv.ready` (the commit point: the conversion is done and durable);
3. the source is moved to data/archive/<folder>/orders.json;
4. the CSV is renamed to `orders.csv`, where loaders see it.

Names starting with a dot are never taken by a watcher (core.filestable), so a half-written CSV is never loaded.
At start-up `recover()` finishes what a killed run left: a `.ready` file gets steps 3 and 4 (step 3 only if the source
is still there), a `.part` file is removed and its source converted anew. A bad source goes to data/error/<folder>/
with `<name>.reason` beside it (written first, so a source in error/ always has its reason).

Only entries this converter wrote are acted on: a regular file owned by the daemon's user. Anything else under
such a name (an sFTP user's file or folder called `.orders.json.json2csv.ready`) is left alone, and a step that fails
for one entry is reported for it while the others go on, so no file in a user's folder can stop the converter.

A source replaced or rewritten while it was converted (its inode, size or mtime differ after the last block) loses
its `.part` and is converted again once steady. Steps 3 and 4 wait, the source left in place, while another file
holds the CSV's name; a `.ready` whose source is already archived is published as soon as the name is free. A source
written to or replaced while its `.ready` waited (its ctime newer than the `.ready`) loses that `.ready` and is
converted again: the waiting CSV is of the version before.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from redpss.core.durable import fsync_folder
from redpss.core.paths import InstancePaths
from redpss.core.setaside import NAME_MAX, move_file, printable

log = logging.getLogger("redpss.convert.files")


@dataclass(frozen=True)
class Naming:
    """The suffixes of one converter: sources it takes, what it writes, and the tag of its temporary names."""

    tag: str  # "json2csv" or "parq2csv"
    source_suffix: str  # ".json"
    csv_suffix: str  # ".csv"

    def is_source(self, path: Path) -> bool:
        name = path.name
        return name.endswith(self.source_suffix) and len(name) > len(self.source_suffix) and not name.startswith(".")

    def target(self, source: Path) -> Path:
        return source.with_name(source.name[: -len(self.source_suffix)] + self.csv_suffix)

    def part(self, source: Path) -> Path:
        return source.with_name(f".{source.name}.{self.tag}.part")

    def ready(self, source: Path) -> Path:
        return source.with_name(f".{source.name}.{self.tag}.ready")

    def source_of(self, ready: Path) -> Path:
        return ready.with_name(ready.name[1 : -len(f".{self.tag}.ready")])

    def too_long(self, source: Path) -> str | None:
        """Why the names this conversion needs do not fit the file system (255 bytes per name); None when they do.
        The longest is that of the output's last part (`.<name>.<tag>.part.joined`, see csvout.CsvSink), which also
        leaves room for its numbered segments."""
        names = (self.part(source).name + ".joined", self.ready(source).name, self.target(source).name)
        longest = max(len(os.fsencode(name)) for name in names)
        if longest <= NAME_MAX:
            return None
        room = len(os.fsencode(source.name)) - (longest - NAME_MAX)
        return f"the name is too long to convert beside it: rename it to at most {room} bytes"

    def in_the_way(self, source: Path) -> str | None:
        """Why the conversion cannot write its temporary names: one is taken by something it did not write (a
        user's file or folder); None when both are free or its own."""
        part = self.part(source).name
        try:  # the output's pieces too: .part, .part.1, ..., .part.joined (csvout.CsvSink), and .ready
            names = {part, self.ready(source).name}
            taken = [e for e in source.parent.iterdir() if e.name in names or e.name.startswith(part + ".")]
        except OSError:
            return None  # not listable: the conversion's own error says so
        for entry in sorted(taken):
            if not written_by_us(entry):
                return (
                    f"{printable(entry.name)} is in the way (not a file {self.tag} wrote): remove it, then upload again"
                )
        return None


def written_by_us(path: Path) -> bool:
    """A regular file (not a link, not a folder) owned by this process's user: one of the converter's own files."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()


def relative_folder(paths: InstancePaths, source: Path) -> Path:
    """The source's folder below data/input ('.' for data/input itself, 'alice' for the data/input/alice link)."""
    return source.parent.relative_to(paths.data_input)


def archive(paths: InstancePaths, source: Path) -> Path:
    return move_file(source, paths.data_archive / relative_folder(paths, source))


def reject(paths: InstancePaths, source: Path, reason: str) -> Path:
    """Put a bad source in data/error/<folder>/ with <name>.reason; the path it went to. The reason is one line: the
    name made printable, and a message of several lines (a library's error) joined."""
    line = f"{printable(source)}: {' '.join(reason.splitlines())}\n"
    return move_file(source, paths.data_error / relative_folder(paths, source), line)


class SourceChanged(Exception):
    """The source was replaced or rewritten while it was converted: the CSV is dropped, the source converted again."""


class ReplacedSince(Exception):
    """The source was written to or replaced after it was converted: its `.ready` CSV, of the version before, was
    removed, and the source is converted again."""


def publish(naming: Naming, paths: InstancePaths, source: Path) -> Path:
    """Steps 3 and 4 for a committed conversion: archive the source (if still there), then show the CSV.
    FileExistsError, with the source left in place, while another file holds the CSV's name: archived first, a
    source whose CSV cannot be shown yet would be gone, and a new source of that name taken for it. ReplacedSince
    when the source changed after the conversion (a corrected upload while the CSV waited for its name): archiving
    it and showing the older CSV would load the old rows and put the new ones away unread."""
    ready = naming.ready(source)
    target = naming.target(source)
    if target.exists() and not ready.samefile(target):
        raise FileExistsError(errno.EEXIST, f"{printable(target.name)} is still there (not yet loaded)", str(target))
    if _changed_after(source, ready):
        ready.unlink()
        raise ReplacedSince(f"{printable(source)} was written to or replaced after it was converted")
    if source.exists():
        archive(paths, source)
    _link_once(ready, target)
    return target


def _changed_after(source: Path, ready: Path) -> bool:
    """The source changed (written, replaced, renamed onto) after the CSV's last write: its ctime, which no writer
    can set back, is newer than the `.ready` file's mtime."""
    try:
        return source.stat().st_ctime_ns > ready.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def publish_orphans(naming: Naming, paths: InstancePaths, folders: list[Path]) -> list[str]:
    """Publish committed conversions whose source is already archived (their CSV's name was taken when they were
    done), once the name is free; what was done, for the log."""
    done = []
    for ready in _committed(naming, folders):
        source = naming.source_of(ready)
        if source.exists() or naming.target(source).exists():
            continue  # the source's own turn publishes it; or the name is still taken
        try:
            publish(naming, paths, source)
        except ReplacedSince as exc:  # a source of that name arrived since the look above: its own turn comes
            done.append(f"{exc}; it is converted again")
            continue
        except OSError as exc:
            target = printable(naming.target(source).name)
            done.append(f"cannot publish {printable(ready)} as {target} yet: {exc}; tried again")
            continue
        done.append(f"published {printable(naming.target(source))}, converted before while its name was taken")
    return done


def _committed(naming: Naming, folders: list[Path]) -> list[Path]:
    """The `.ready` files this converter wrote in `folders` (a folder that cannot be listed is skipped)."""
    ending = f".{naming.tag}.ready"
    return [entry for entry in _hidden_entries(folders) if entry.name.endswith(ending) and written_by_us(entry)]


def _hidden_entries(folders: list[Path]) -> list[Path]:
    """Entries with a leading dot in `folders`, where the converters' temporary names are (unlistable folders are
    skipped: their files are not seen by the converter either)."""
    found = []
    for folder in folders:
        try:
            found += [entry for entry in folder.iterdir() if entry.name.startswith(".")]
        except OSError:
            continue
    return found


def _link_once(ready: Path, target: Path) -> None:
    """Show `ready` as `target` without ever replacing another file of that name (a link fails if it exists);
    a link left by a stop between the two steps is recognised by its inode."""
    try:
        os.link(ready, target)
    except FileExistsError:
        if not ready.samefile(target):
            raise
    ready.unlink()
    fsync_folder(target.parent)


def recover(naming: Naming, paths: InstancePaths, folders: list[Path]) -> list[str]:
    """Finish or undo what a killed run left in `folders`; what was done, for the log."""
    done = []
    for entry in _hidden_entries(folders):
        ready, part = entry.name.endswith(f".{naming.tag}.ready"), f".{naming.tag}.part" in entry.name
        if not (ready or part):
            continue
        if not written_by_us(entry):
            done.append(f"{printable(entry)} left alone: named like a file of {naming.tag}, but not a file it wrote")
            continue
        try:
            done.append(_finish(naming, paths, entry) if ready else _undo(entry))
        except OSError as exc:
            done.append(f"could not recover {printable(entry)}: {exc}; its source's next turn tries again")
    return done


def _finish(naming: Naming, paths: InstancePaths, ready: Path) -> str:
    source = naming.source_of(ready)
    target = naming.target(source)
    if target.exists() and not ready.samefile(target):
        return f"{printable(ready)} waits: {printable(target.name)} is still there"
    try:
        publish(naming, paths, source)
    except ReplacedSince as exc:
        return f"{exc}; its older CSV was removed, and it is converted again"
    return f"finished the conversion of {printable(source)} (stopped before it was published)"


def _undo(part: Path) -> str:
    part.unlink(missing_ok=True)
    return f"removed {printable(part)}, left by a conversion that was stopped; its source is converted again"


def expire_archive(paths: InstancePaths, suffix: str, days: int, now: float | None = None) -> int:
    """Delete archived sources (`*<suffix>` and `*<suffix>.N`) moved there more than `days` days ago (the ctime is
    the time of the move); 0 days keeps everything. The number deleted."""
    if days <= 0 or not paths.data_archive.is_dir():
        return 0
    limit = (now if now is not None else time.time()) - days * 86400
    removed = 0
    for root, _dirs, files in os.walk(paths.data_archive):
        for name in files:
            base = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1].isdigit() else name
            if not base.endswith(suffix):
                continue
            path = Path(root) / name
            try:
                if path.lstat().st_ctime < limit:
                    path.unlink()
                    removed += 1
            except OSError:  # gone, or not ours to delete (a folder redftp_userdel kept root-only)
                continue
    return removed
