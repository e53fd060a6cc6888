"""Adding and removing one sFTP user: account, chroot, upload folder, key, and the link in data/input.

Both operations run as root, hold one lock (two operators adding users at once must not pick the same UID), check
everything that can be checked before changing anything, and undo what they did if a later step fails, so a failed
run leaves no half-made user behind. Every file operation goes through safefs (by open folder, never by path): the
user can write its upload/ folder and redsys the instance tree, and either may change them while root works there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from redpss.core.errors import InstanceError
from redpss.core.paths import InstancePaths
from redpss.redftp import accounts, inputs
from redpss.redftp.errors import RedftpError
from redpss.redftp.keys import PublicKey
from redpss.redftp.layout import (
    GROUP_DIR_MODE,
    KEPT_UPLOADS,
    KEY_FILE_MODE,
    PUBLIC_DIR_MODE,
    UPLOAD_MODE,
    RedftpLayout,
    ensure_root_dir,
    unsafe_for_sshd,
)
from redpss.redftp.names import REDFTP_GROUP, UID_FIRST, UID_LAST, SftpUserName
from redpss.redftp.safefs import Dir, MissingPath, ReplacedMeanwhile

MAIL_SPOOLS = (Path("/var/spool/mail"), Path("/var/mail"))


@dataclass
class Added:
    name: SftpUserName
    uid: int
    chroot: Path
    upload: Path
    key_file: Path
    link: Path
    warnings: list[str] = field(default_factory=list)


@dataclass
class Removed:
    name: SftpUserName
    uid: int
    sessions_ended: int
    archived_to: Path | None
    archived_files: int
    warnings: list[str] = field(default_factory=list)


def _instance(paths: InstancePaths) -> InstancePaths:
    try:
        return paths.require()
    except InstanceError as exc:
        raise RedftpError(str(exc)) from None


@contextlib.contextmanager
def _locked(layout: RedftpLayout) -> Iterator[None]:
    with Dir.open(layout.root / "etc") as folder:
        fd = folder.open_file(".redftp.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ensure_base(layout: RedftpLayout, name: SftpUserName, gid: int) -> bool:
    """The folders above the user's; True when the instance's own sFTP tree was made now (its first user)."""
    if not layout.root.parent.exists():
        ensure_root_dir(layout.root.parent, PUBLIC_DIR_MODE)
    for folder in (layout.root, layout.env, layout.keys_dir.parent, layout.keys_dir):
        ensure_root_dir(folder, PUBLIC_DIR_MODE)
    first = not layout.instance_dir(name).exists()
    ensure_root_dir(layout.instance_dir(name), GROUP_DIR_MODE, gid)
    ensure_root_dir(layout.unit_links, PUBLIC_DIR_MODE)
    _ensure_unit_link(layout, name)
    return first


def _ensure_unit_link(layout: RedftpLayout, name: SftpUserName) -> None:
    """env/.units/<INSTANCE> -> ../<instance>, root's: how the instance's units name its sFTP tree (layout.py)."""
    link, target = name.instance.upper(), Path("..") / name.instance.lower()
    with Dir.open(layout.unit_links) as links:
        if links.readlink(link) == str(target):
            return
        if links.lstat(link) is not None:
            links.unlink(link)
        links.symlink(link, target, 0, 0)


def add_user(name: SftpUserName, key: PublicKey, paths: InstancePaths, layout: RedftpLayout | None = None) -> Added:
    layout = layout or RedftpLayout()
    paths = _instance(paths)
    gid = accounts.redftp_gid()
    first = _ensure_base(layout, name, gid)
    with _locked(layout):
        existing = accounts.find_account(name.system)
        if existing is not None:
            raise RedftpError(
                f"user {name.system} already exists (UID {existing.pw_uid}); remove it first with "
                f"`redftp_userdel {name.instance} {name.user}`, or choose another user name"
            )
        chroot, upload, link = layout.chroot(name), layout.upload(name), paths.data_input / name.user
        for leftover in (chroot, link):
            if leftover.exists() or leftover.is_symlink():
                raise RedftpError(f"{leftover} already exists but user {name.system} does not; move it away first")
        uid = accounts.pick_uid(accounts.system_accounts())
        undo: list[Callable[[], object]] = []
        try:
            accounts.add_account(name.system, uid, gid, chroot, f"RED-PSS sFTP user {name.user} of {name.instance}")
            undo.append(lambda: accounts.remove_account(name.system))
            ensure_root_dir(chroot, GROUP_DIR_MODE, gid)
            undo.append(lambda: _remove_tree(chroot))
            with Dir.open(chroot) as jail:
                jail.make_dir(upload.name, UPLOAD_MODE, uid, gid).close()
            key_file = layout.key_file(name)
            _write_key(key_file, key)
            undo.append(lambda: _remove_file(key_file))
            for folder in (chroot, layout.keys_dir):
                problem = unsafe_for_sshd(folder)
                if problem:
                    raise RedftpError(f"sshd would refuse {folder}: {problem}")
            inputs.link_upload(paths.data_input, name.user, upload)
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(Exception):
                    step()
            raise
    added = Added(name=name, uid=uid, chroot=chroot, upload=upload, key_file=key_file, link=link)
    if first:  # the units may write it only if it existed when they started (ReadWritePaths=-...)
        added.warnings.append(
            f"this is the first sFTP user of {name.instance}: its sFTP tree {layout.instance_dir(name)} was made now, "
            "and the running CFISRV, JSON2CSV, PARQ2CSV and SCHED cannot move uploads out of it until they restart "
            f"(as redsys: systemctl restart redpss-{{cfi,json2csv,parq2csv,sched}}@{name.instance}.service, or "
            f"redctl -i {name.instance} restart, which also ends a suspension)"
        )
    if not accounts.redsys_in_group():
        added.warnings.append(
            f"{accounts.REDSYS_USER} is not a member of group {REDFTP_GROUP} and cannot read the uploads: "
            f"usermod -aG {REDFTP_GROUP} {accounts.REDSYS_USER}"
        )
    return added


def _write_key(key_file: Path, key: PublicKey) -> None:
    """Write the key through a temporary file and a rename, so sshd never reads half a line."""
    with Dir.open(key_file.parent) as keys:
        keys.write_file(key_file.name, key.authorized_keys_line().encode("ascii"), KEY_FILE_MODE)


def _remove_file(path: Path) -> None:
    with contextlib.suppress(MissingPath), Dir.open(path.parent) as folder:
        folder.unlink(path.name)


def _remove_tree(path: Path) -> None:
    """Remove a folder without following any link in it (the user's upload/ may hold links planted there)."""
    with contextlib.suppress(MissingPath), Dir.open(path.parent) as folder:
        folder.remove_tree(path.name)


def remove_user(
    name: SftpUserName,
    paths: InstancePaths,
    *,
    keep_data: bool = False,
    layout: RedftpLayout | None = None,
    now: float | None = None,
) -> Removed:
    layout = layout or RedftpLayout()
    if keep_data:
        paths = _instance(paths)
    gid = accounts.redftp_gid()
    if not layout.keys_dir.parent.is_dir():
        raise RedftpError(f"no sFTP user {name.system}: {layout.root} has never been set up by redftp_useradd")
    with _locked(layout):
        account = accounts.find_account(name.system)
        if account is None:
            raise RedftpError(
                f"no sFTP user {name.system} exists (list them with `getent passwd | grep "
                f"^redftp_{name.instance.lower()}_`)"
            )
        chroot, upload = layout.chroot(name), layout.upload(name)
        refusal = _not_ours(account.pw_uid, account.pw_gid, Path(account.pw_dir), chroot, gid)
        if refusal:
            raise RedftpError(f"refusing to remove {name.system}: {refusal}")
        _remove_file(layout.key_file(name))  # first: no new logins from here on
        ended = accounts.end_sessions(account.pw_uid)
        removed = Removed(name=name, uid=account.pw_uid, sessions_ended=ended, archived_to=None, archived_files=0)
        if keep_data:
            _archive(upload, paths, name, now, removed)
        left = inputs.unlink_upload(paths.data_input, name.user, upload)
        if left:
            removed.warnings.append(left)
        accounts.remove_account(name.system)
        _remove_tree(chroot)
        _remove_mail_spool(name.system, account.pw_uid)
    return removed


def _not_ours(uid: int, gid: int, home: Path, chroot: Path, redftp_gid: int) -> str | None:
    """Why an account with the right name was not made by redftp_useradd for this instance, or None."""
    if not UID_FIRST <= uid <= UID_LAST:
        return f"its UID {uid} is outside the sFTP range {UID_FIRST}-{UID_LAST}; it was not made by redftp_useradd"
    if home != chroot:
        return f"its home is {home}, not {chroot}: it belongs to another instance or was not made by redftp_useradd"
    if gid != redftp_gid:
        return "its primary group is not redftp; it was not made by redftp_useradd"
    return None


def _archive(upload: Path, paths: InstancePaths, name: SftpUserName, now: float | None, removed: Removed) -> None:
    """Move everything the user uploaded to data/archive/redftp_<user>_<timestamp>/, owned like data/archive.

    The folder stays root's (0700) while it is filled and is handed to data/archive's owner last. redsys can still
    move or replace it meanwhile (it owns data/archive); the files go into the folder that was made, wherever it is.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    with Dir.open(paths.data_archive) as archive:
        owner = archive.stat()
        target_name, made = new_archive_folder(archive, KEPT_UPLOADS.format(user=name.user, stamp=stamp))
        removed.archived_to = archive.path / target_name
        with made as target:
            try:
                with contextlib.suppress(MissingPath), Dir.open(upload) as uploads:
                    uploads.move_entries_to(target)
                removed.archived_files = target.hand_over(owner.st_uid, owner.st_gid, {removed.uid})
                os.fchown(target.fd, owner.st_uid, owner.st_gid)
                os.fchmod(target.fd, 0o750)
            except OSError as exc:
                raise RedftpError(
                    f"moving the uploads of {name.system} to {removed.archived_to} failed ({exc.strerror}): what was "
                    f"moved is there (root's until handed over), the rest is still in {upload}; the user was not "
                    "removed. Fix the cause and run the command again"
                ) from None
            if not archive.holds(target_name, target):
                removed.warnings.append(
                    f"{removed.archived_to} was moved or replaced while the files were being moved into it; the "
                    f"files are in the folder that was made there, wherever it is now (look in {archive.path})"
                )


def new_archive_folder(archive: Dir, base: str, attempts: int = 5) -> tuple[str, Dir]:
    """A new root-only folder in data/archive: `base`, or `base-2`... when a name is taken or the folder just made was
    swapped before it could be opened (redsys owns data/archive and may move entries there at any time)."""
    for attempt in range(1, attempts + 1):
        candidate = base if attempt == 1 else f"{base}-{attempt}"
        try:
            return candidate, archive.make_dir(candidate, 0o700)
        except (FileExistsError, ReplacedMeanwhile) as exc:
            if attempt == attempts:
                reason = str(exc) if isinstance(exc, ReplacedMeanwhile) else f"{archive.path / candidate} exists"
                raise RedftpError(
                    f"could not make an archive folder in {archive.path} ({reason}); nothing was "
                    "moved or removed, run the command again"
                ) from None
    raise AssertionError("unreachable")


def _remove_mail_spool(system: str, uid: int) -> None:
    """RHEL's useradd creates a mail spool file that userdel without -r leaves behind."""
    for spool in MAIL_SPOOLS:
        with contextlib.suppress(OSError, MissingPath), Dir.open(spool) as folder:
            info = folder.lstat(system)
            if info is not None and info.st_uid == uid and stat.S_ISREG(info.st_mode):
                folder.unlink(system)
