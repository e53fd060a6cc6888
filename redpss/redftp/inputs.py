"""How sFTP uploads appear in an instance's data/input: one symbolic link per user, `data/input/<user>`.

The links are made by root inside the redsys-owned data/input folder, so they are made relative to an open handle
on that folder (safefs: no link followed on the way there) and handed to the folder's owner. Readers (JSON2CSV,
PARQ2CSV, loaders) find the per-user folders with `iter_input_folders`, and every folder they watch, subfolders
included, with `watched_input_folders`.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path, PurePosixPath

from redpss.core.paths import InstancePaths
from redpss.redftp.errors import RedftpError
from redpss.redftp.safefs import Dir, MissingPath

INPUT_DIR = "input"  # data/input, as the FTPS client sees it below data/


def inside(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies below it (both normalised, as text)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def input_link_holding(data_root: str, logical: str, real: str) -> str | None:
    """The real folder of the data/input/<user> link that `logical` (a normalised path below `data_root`) was reached
    through, when `real` (its resolved path) lies inside that folder; None otherwise.

    A path is only ever reached through the link directly in data/input: one through a link made inside a user's
    folder, leading to another user's folder or anywhere else, gets None (CFISRV refuses it, LOAD jobs skip it).
    """
    parts = Path(os.path.relpath(logical, data_root)).parts
    if len(parts) < 2 or parts[0] != INPUT_DIR:
        return None
    link = Path(data_root, INPUT_DIR, parts[1])
    if not link.is_symlink():
        return None
    target = os.path.realpath(link)
    return target if inside(real, target) else None


def reachable_below_data(data_root: Path, path: Path) -> bool:
    """Whether `path` (below `data_root`) ends inside the data tree, or inside the folder of the data/input/<user>
    link it was reached through: the places a reader of data/input may take a file from, as CFISRV serves them
    (which also checks that such a folder lies in this instance's sFTP tree)."""
    logical = os.path.normpath(path)
    root = os.path.normpath(data_root)
    real = os.path.realpath(logical)
    return inside(real, os.path.realpath(root)) or input_link_holding(root, logical, real) is not None


def iter_input_folders(paths: InstancePaths, unreadable: list[str] | None = None) -> list[Path]:
    """data/input first, then every folder reached through a symbolic link directly in it, sorted by name.

    The returned per-user paths go through the link (data/input/alice), so what a reader logs and moves names the
    instance tree, not the chroot. Dangling links and links to files are skipped; a link whose folder this process
    may not reach (a folder on its way it may not enter) is skipped too, and described in `unreadable` when given.
    Readers must still not follow links found *inside* a user's folder: the sshd snippet forbids creating them,
    but defence in depth is cheap.
    """
    top = paths.data_input
    if not top.is_dir():
        return []
    folders = [top]
    for entry in sorted(top.iterdir()):
        try:
            if entry.is_symlink() and entry.is_dir():
                folders.append(entry)
        except OSError as exc:
            if unreadable is not None:
                unreadable.append(_unreadable(entry, f"its folder cannot be reached: {exc.strerror or exc}"))
    return folders


def _real_folder(entry: Path) -> bool:
    """Not a link (a name below a folder we may list but not enter, with its mode 0740, cannot be checked: skipped)."""
    try:
        return not entry.is_symlink()
    except OSError:
        return False


WATCH_DEPTH = 8  # folder levels below data/input or a user's folder that are still watched


def watched_input_folders(
    paths: InstancePaths, depth: int = WATCH_DEPTH, unreadable: list[str] | None = None
) -> list[Path]:
    """`iter_input_folders` and the real folders below each, up to `depth` levels: where files to convert arrive.

    Other systems drop files into subfolders of data/input (a LOAD job's `files='orders/*.csv'`) and sFTP users may
    upload into folders they make; a file there is as much accepted as one at the top, so it is watched too. Links
    found below a top folder are not followed, and folders starting with "." (tools' work folders) are left out.
    A folder this process may not list or not enter (a user's `chmod 700`, or 0740) is left out too, since no file in
    it can be taken; each is described in `unreadable` (when given), for the caller to tell the operator.
    """
    found: list[Path] = []
    problems: list[str] = []
    for top in iter_input_folders(paths, problems):
        below: list[Path] = []
        for root, folders, _files in os.walk(top):  # a folder it cannot list is found below, with the others
            here = Path(root)
            kept = [name for name in folders if not name.startswith(".") and _real_folder(here / name)]
            folders[:] = kept if len(here.relative_to(top).parts) + 1 < depth else []
            below.extend(here / name for name in kept)
        for folder in [top, *sorted(below)]:
            why = _missing_rights(folder, os.R_OK | os.X_OK)
            if why is None:
                found.append(folder)
            elif os.path.lexists(folder):  # else removed since the walk: nothing to say
                problems.append(_unreadable(folder, why))
    if unreadable is not None:
        unreadable.extend(problems)
    return found


def folders_a_glob_cannot_search(root: Path, pattern: str) -> list[str]:
    """The folders below `root` that a glob of `pattern` must list or enter but this process may not, each described
    as `watched_input_folders` describes one.

    `Path.glob` passes over such a folder without a word, so a LOAD job whose files lie in a folder an sFTP user made
    private would load nothing and say nothing. A folder is entered to reach anything inside it, and listed only
    when the next part of the pattern is a wildcard (`orders/*.csv` lists orders/, `orders/a.csv` does not).
    """
    parts = PurePosixPath(pattern).parts
    problems: list[str] = []
    level = [root]
    for index, part in enumerate(parts):
        needs = os.X_OK | (os.R_OK if glob.has_magic(part) else 0)
        for folder in level:
            why = _missing_rights(folder, needs)
            if why:
                problems.append(_unreadable(folder, why))
        if index + 1 < len(parts):
            level = [p for p in root.glob(str(PurePosixPath(*parts[: index + 1]))) if _searchable_folder(p)]
    return list(dict.fromkeys(problems))


def not_searched(problems: list[str], shown: int = 5) -> str:
    """The part of a run's MESSAGE naming the folders a glob could not search (LOAD jobs, FILE watchers)."""
    return f"{len(problems)} folder(s) not searched: " + "; ".join(problems[:shown])


def _missing_rights(folder: Path, needs: int) -> str | None:
    if not os.access(folder, os.X_OK):
        return "it may be listed but not entered" if os.access(folder, os.R_OK) else "it may not be entered"
    if needs & os.R_OK and not os.access(folder, os.R_OK):
        return "it may be entered but not listed"
    return None


def _searchable_folder(path: Path) -> bool:
    """A folder (a link to one counts, as Path.glob follows it); one below a folder we may not enter is reported
    through that folder."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _unreadable(folder: Path, why: str) -> str:
    return (
        f"cannot read folder {folder} ({why}): files uploaded there are not taken; the instance user needs read and "
        "enter rights on it (as group redftp: chmod g+rx)"
    )


def _open_dir(folder: Path) -> Dir:
    try:
        return Dir.open(folder)
    except MissingPath:
        raise RedftpError(f"{folder} does not exist; the instance tree is incomplete") from None


def link_upload(folder: Path, name: str, target: Path) -> Path:
    """Create `folder/name` -> `target`, owned like `folder`; RedftpError if the name is already used."""
    with _open_dir(folder) as opened:
        info = opened.stat()
        try:
            opened.symlink(name, target, info.st_uid, info.st_gid)
        except FileExistsError:
            raise RedftpError(
                f"{folder / name} already exists; move it away (a file or folder there would hide the user's uploads)"
            ) from None
    return folder / name


def unlink_upload(folder: Path, name: str, target: Path) -> str | None:
    """Remove `folder/name` if it is the link to `target` that link_upload made.

    Anything else found there is left alone (someone else made it, and it may be in use), and the returned warning
    says what was left and why; None when the link was removed or there was nothing.
    """
    try:
        opened = Dir.open(folder)
    except MissingPath:
        return None
    except RedftpError as exc:
        return f"left {folder / name} in place: {exc}"
    with opened:
        info = opened.lstat(name)
        if info is None:
            return None
        link = opened.readlink(name)
        if link is not None and Path(link) == target:
            opened.unlink(name)
            return None
    what = f"a symbolic link to {link}" if link is not None else "not a symbolic link"
    return (
        f"left {folder / name} in place: it is {what}, not the link to {target} that redftp_useradd made for this "
        f"user, so it may belong to something else; remove it yourself if nothing uses it"
    )
