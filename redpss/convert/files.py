"""Where a conversion's files go, in an order that converts every source exactly once, even after kill -9.

For data/input/<folder>/orders.json (JSON2CSV; PARQ2CSV alike with its own tag):

1. the CSV is written to `.orders.json.json2csv.part` beside the source and fsynced;
2. it is renamed to `.orders.json.json2csv.ready` (the commit point: the conversion is done and durable);
3. once the name orders.csv is free, it is renamed to `.orders.json.json2csv.<key>.archiving`, the key naming the
   version of the source converted (inode, size, mtime): from here on this CSV is shown whatever comes under the
   source's name later;
4. the source is moved to data/archive/<folder>/orders.json;
5. the CSV is renamed to `orders.csv`, where loaders see it.

Names starting with a dot are never taken by a watcher (core.filestable), so a half-written CSV is never loaded.
At start-up `recover()` finishes what a killed run left: a `.ready` file gets steps 3 to 5 (step 4 only if the source
is still there), an `.archiving` file steps 4 and 5 (step 4 only if the source is still the version its key names),
a `.part` file is removed and its source converted anew. A bad source goes to
data/error/<folder>/ with `<name>.reason` beside it (written first, so a source in error/ always has its reason).

Only entries this converter wrote are acted on: a regular file owned by the daemon's user. Anything else under
such a name (an sFTP user's file or folder called `.orders.json.json2csv.ready`) is left alone, and a step that fails
for one entry is reported for it while the others go on, so no file in a user's folder can stop the converter.

A source replaced or rewritten while it was converted (its inode, size or mtime differ after the last block) loses
its `.part` and is converted again once steady. Steps 3 to 5 wait, the source left in place, while another file
holds the CSV's name; an `.archiving` CSV (or a `.ready` one whose source is gone) is shown as soon as the name is
free, before a newer CSV of that name. A source written to or replaced while its `.ready` waited (its ctime newer than
the `.ready`) loses that `.ready` and is converted again: the waiting CSV is of the version before, which its sender
corrected. A new upload under the name of a source already archived (a stop between steps 4 and 5) is no such
correction: the `.archiving` CSV is shown, the new upload converted on its own turn.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from redpss.core.durable import fsync_folder, rename_without_replacing
from redpss.core.filestable import FileState, regular_file_state
from redpss.core.paths import InstancePaths
from redpss.core.setaside import NAME_MAX, move_file, printable
from redpss.redftp.layout import kept_uploads_folder

log = logging.getLogger("redpss.convert.files")

ARCHIVING = ".archiving"
_KEY_DIGITS = 12  # hex digits of a version's key in an `.archiving` name
_HEX = frozenset("0123456789abcdef")


def version_key(version: FileState) -> str:
    """A short key of one version of a source (inode, size, mtime: a replacement, or any write, changes it; a chmod
    or a chown does not), for the name of its `.archiving` CSV."""
    text = f"{version.inode}:{version.size}:{version.mtime_ns}".encode()
    return hashlib.blake2b(text, digest_size=_KEY_DIGITS // 2).hexdigest()


@dataclass(frozen=True)
class Naming:
    """The suffixes of one converter: sources it takes, what it writes, and the tag of its temporary names."""

    tag: str  # "json2csv" or "parq2csv"
    source_suffix: str  # ".json"
    csv_suffix: str  # ".csv"

    def is_source(self, path: Path) -> bool:
        """Whether the converter takes this file: its suffix in any case (`ORDERS.JSON`, as Windows clients name
        files, stayed in data/input without a word), and not a hidden name (temporary, or taken aside)."""
        name = path.name
        return has_suffix(name, self.source_suffix) and len(name) > len(self.source_suffix) and not name.startswith(".")

    def target(self, source: Path) -> Path:
        return source.with_name(source.name[: -len(self.source_suffix)] + self.csv_suffix)

    def part(self, source: Path) -> Path:
        return source.with_name(f".{source.name}.{self.tag}.part")

    def ready(self, source: Path) -> Path:
        return source.with_name(f".{source.name}.{self.tag}.ready")

    def archiving(self, source: Path, version: FileState) -> Path:
        """The CSV of `source` taken aside before `version` of it is archived: the name says which version."""
        return source.with_name(f".{source.name}.{self.tag}.{version_key(version)}{ARCHIVING}")

    def is_archiving(self, name: str) -> bool:
        """Whether `name` is that of an `.archiving` CSV of this converter: `.<source>.<tag>.<key>.archiving`."""
        tail_length = len(self.tag) + _KEY_DIGITS + len(ARCHIVING) + 2
        if not (name.startswith(".") and name.endswith(ARCHIVING) and len(name) > tail_length + 1):
            return False
        tail = name[-tail_length:]
        key = tail[len(self.tag) + 2 : len(self.tag) + 2 + _KEY_DIGITS]
        return tail.startswith(f".{self.tag}.") and all(c in _HEX for c in key)

    def archiving_of(self, source: Path) -> list[Path]:
        """The `.archiving` CSVs of `source` this converter wrote (any version; normally none or one)."""
        prefix = f".{source.name}.{self.tag}."
        try:
            entries = [e for e in source.parent.iterdir() if e.name.startswith(prefix) and self.is_archiving(e.name)]
        except OSError:
            return []
        return [entry for entry in sorted(entries) if written_by_us(entry)]

    def source_of(self, committed: Path) -> Path:
        """The source of a `.ready` or `.archiving` file."""
        if committed.name.endswith(".ready"):
            return committed.with_name(committed.name[1 : -len(f".{self.tag}.ready")])
        return committed.with_name(committed.name[1 : -len(f".{self.tag}.{'0' * _KEY_DIGITS}{ARCHIVING}")])

    def too_long(self, source: Path) -> str | None:
        """Why the names this conversion needs do not fit the file system (255 bytes per name); None when they do.
        The longest is that of the CSV taken aside (`.<name>.<tag>.<key>.archiving`); the output's last part
        (`.<name>.<tag>.part.joined`, see csvout.CsvSink) leaves room for its numbered segments."""
        aside = self.archiving(source, FileState(0, 0, 0))
        names = (self.part(source).name + ".joined", self.ready(source).name, aside.name, self.target(source).name)
        longest = max(len(os.fsencode(name)) for name in names)
        if longest <= NAME_MAX:
            return None
        room = len(os.fsencode(source.name)) - (longest - NAME_MAX)
        return f"the name is too long to convert beside it: rename it to at most {room} bytes"

    def in_the_way(self, source: Path) -> str | None:
        """Why the conversion cannot write its temporary names: one is taken by something it did not write (a
        user's file or folder); None when both are free or its own."""
        part = self.part(source).name
        try:  # the output's pieces too: .part, .part.1, ..., .part.joined (csvout.CsvSink), .ready and .archiving
            names = {part, self.ready(source).name}
            aside = f".{source.name}.{self.tag}."
            taken = [
                e
                for e in source.parent.iterdir()
                if e.name in names
                or e.name.startswith(part + ".")
                or (e.name.startswith(aside) and self.is_archiving(e.name))
            ]
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


def publish(naming: Naming, paths: InstancePaths, source: Path, converted: FileState | None = None) -> Path:
    """Steps 3 to 5 for a committed conversion of `converted` (the version read; by default the source as it is now,
    unchanged since the CSV was written): take the CSV aside, archive the source (if still that version), show it.
    An `.archiving` CSV of an earlier version of the source is shown first. FileExistsError, with the source left in
    place, while another file holds the CSV's name: archived first, a source whose CSV cannot be shown yet would be
    gone, and a new source of that name taken for it. ReplacedSince when the source changed after the conversion (a
    corrected upload while the CSV waited for its name): archiving it and showing the older CSV would load the old
    rows and put the new ones away unread."""
    for earlier in naming.archiving_of(source):
        show(naming, paths, earlier)
    ready = naming.ready(source)
    target = naming.target(source)
    if target.exists() and not ready.samefile(target):
        raise FileExistsError(errno.EEXIST, f"{printable(target.name)} is still there (not yet loaded)", str(target))
    if _changed_after(source, ready):
        ready.unlink()
        raise ReplacedSince(f"{printable(source)} was written to or replaced after it was converted")
    version = converted or regular_file_state(source) or FileState(0, 0, 0)  # a source gone: no version to archive
    aside = naming.archiving(source, version)
    if len(os.fsencode(aside.name)) > NAME_MAX:  # committed before this step existed, for a name too long for it
        if regular_file_state(source) == version:
            archive(paths, source)
        _link_once(ready, target)
        return target
    ready.rename(aside)
    fsync_folder(aside.parent)
    return show(naming, paths, aside)


def show(naming: Naming, paths: InstancePaths, aside: Path) -> Path:
    """Steps 4 and 5 for an `.archiving` CSV: archive its source if that is still the version converted (the one
    the name says: the same inode, size and mtime; a chmod changes none of them), then show the CSV under its name.
    FileExistsError while another file holds that name."""
    source = naming.source_of(aside)
    target = naming.target(source)
    if target.exists() and not aside.samefile(target):
        raise FileExistsError(errno.EEXIST, f"{printable(target.name)} is still there (not yet loaded)", str(target))
    version = regular_file_state(source)
    if version is not None and naming.archiving(source, version).name == aside.name:
        archive(paths, source)
    _link_once(aside, target)
    return target


def _changed_after(source: Path, ready: Path) -> bool:
    """The source changed (written, replaced, renamed onto) after the CSV's last write: its ctime, which no writer
    can set back, is newer than the `.ready` file's mtime."""
    try:
        return source.stat().st_ctime_ns > ready.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def publish_orphans(naming: Naming, paths: InstancePaths, folders: list[Path]) -> list[str]:
    """Show committed conversions whose source is already archived or gone (their CSV's name was taken when they were
    done, or a stop came before it was shown), once the name is free; what was done, for the log. Those whose source
    is there are left to the source's own turn, which keeps to its holds after a failure."""
    done = []
    for committed in _committed(naming, folders):
        source = naming.source_of(committed)
        target = naming.target(source)
        if target.exists() or source.exists():
            continue  # the name is still taken; or the source's own turn publishes it
        try:
            show(naming, paths, committed) if naming.is_archiving(committed.name) else publish(naming, paths, source)
        except ReplacedSince as exc:  # a source of that name arrived since the look above: its own turn comes
            done.append(f"{exc}; it is converted again")
            continue
        except OSError as exc:
            done.append(f"cannot publish {printable(committed)} as {printable(target.name)} yet: {exc}; tried again")
            continue
        done.append(f"published {printable(target)}, converted before while its name was taken")
    return done


def _committed(naming: Naming, folders: list[Path]) -> list[Path]:
    """The `.ready` and `.archiving` files this converter wrote in `folders` (a folder that cannot be listed is
    skipped), the `.archiving` ones first: an earlier version's CSV is shown before a newer one of its name."""
    found = [entry for entry in _hidden_entries(folders) if _is_committed(naming, entry.name) and written_by_us(entry)]
    return sorted(found, key=lambda entry: not naming.is_archiving(entry.name))


def _is_committed(naming: Naming, name: str) -> bool:
    return name.endswith(f".{naming.tag}.ready") or naming.is_archiving(name)


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
    """Show `ready` as `target` in one step that never replaces another file of that name (core.durable's rename
    without replacing). A link a stop left between the two steps of an earlier publish (or of the link-and-unlink
    fallback, on a file system without that rename) is recognised by the file's link count: the CSV was shown then,
    and may have been loaded and archived since (a LOAD moves it by rename, the inode with it), so it is not shown
    a second time."""
    if ready.stat().st_nlink > 1:
        ready.unlink()  # shown already: under `target` still, or loaded and archived meanwhile
    else:
        rename_without_replacing(ready, target)
    fsync_folder(target.parent)


def recover(naming: Naming, paths: InstancePaths, folders: list[Path]) -> list[str]:
    """Finish or undo what a killed run left in `folders`; what was done, for the log."""
    done = []
    # .archiving first: the CSV of an archived version is shown before a newer one of the same name
    for entry in sorted(_hidden_entries(folders), key=lambda entry: not naming.is_archiving(entry.name)):
        committed, part = _is_committed(naming, entry.name), f".{naming.tag}.part" in entry.name
        if not (committed or part):
            continue
        if not written_by_us(entry):
            done.append(f"{printable(entry)} left alone: named like a file of {naming.tag}, but not a file it wrote")
            continue
        try:
            done.append(_finish(naming, paths, entry) if committed else _undo(entry))
        except OSError as exc:
            done.append(f"could not recover {printable(entry)}: {exc}; its source's next turn tries again")
    return done


def _finish(naming: Naming, paths: InstancePaths, committed: Path) -> str:
    source = naming.source_of(committed)
    target = naming.target(source)
    if target.exists() and not committed.samefile(target):
        return f"{printable(committed)} waits: {printable(target.name)} is still there"
    try:
        if naming.is_archiving(committed.name):
            show(naming, paths, committed)
        else:
            publish(naming, paths, source)
    except ReplacedSince as exc:
        return f"{exc}; its older CSV was removed, and it is converted again"
    return f"finished the conversion of {printable(source)} (stopped before it was published)"


def _undo(part: Path) -> str:
    part.unlink(missing_ok=True)
    return f"removed {printable(part)}, left by a conversion that was stopped; its source is converted again"


def has_suffix(name: str, suffix: str) -> bool:
    """`name` ends with `suffix`, upper or lower case alike."""
    return name[-len(suffix) :].casefold() == suffix.casefold() if suffix else True


def expire_archive(paths: InstancePaths, suffix: str, days: int, now: float | None = None) -> int:
    """Delete archived sources (`*<suffix>` and `*<suffix>.N`) moved there more than `days` days ago (the ctime is
    the time of the move); 0 days keeps everything. The uploads `redftp_userdel --keep-data` kept there are not
    sources converted: they stay. The number deleted."""
    if days <= 0 or not paths.data_archive.is_dir():
        return 0
    limit = (now if now is not None else time.time()) - days * 86400
    removed = 0
    for root, dirs, files in os.walk(paths.data_archive):
        if root == str(paths.data_archive):
            dirs[:] = [name for name in dirs if not kept_uploads_folder(name)]
        for name in files:
            base = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1].isdigit() else name
            if not has_suffix(base, suffix):
                continue
            path = Path(root) / name
            try:
                if path.lstat().st_ctime < limit:
                    path.unlink()
                    removed += 1
            except OSError:  # gone, or not ours to delete (a folder redftp_userdel kept root-only)
                continue
    return removed
