"""File operations for root-run code on trees that less privileged users can write: by open folder, never by path.

The sFTP commands run as root (directly or through sudo) over trees that others can change while they run: redsys
owns the instance tree (data/input, data/archive) and, through group redftp, can write every upload/ folder; the sFTP
user can write its upload/ folder. A path handed to the kernel is resolved anew at every call, so any component such a
user can replace (a folder swapped for a symbolic link to /etc between two calls) redirects root. Every operation here
therefore names one entry relative to an open folder (`Dir`), never follows a symbolic link in that entry, and
checks what it opened with fstat. Opening a folder by path (`Dir.open`) follows links only inside folders that root
alone can change; from the first folder someone else can write, every component is opened with O_NOFOLLOW.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from redpss.redftp.errors import RedftpError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_DEPTH = 100  # deeper upload trees are refused rather than exhausting descriptors


class MissingPath(RedftpError):
    """A folder to open does not exist."""


class ReplacedMeanwhile(RedftpError):
    """A folder just made was moved or replaced before it could be opened (someone else can write its parent)."""


def _root_only(info: os.stat_result) -> bool:
    """Whether only root can change the folder's entries (owned by root, not writable by group or others)."""
    return info.st_uid == 0 and not info.st_mode & 0o022


class Dir:
    """An open folder; every method acts on one entry of it by name, relative to the descriptor."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path  # for messages only; never used to reach the folder

    @classmethod
    def open(cls, path: Path) -> Dir:
        """Open the folder `path`, refusing a symbolic link anywhere below the first folder not root's alone."""
        if not path.is_absolute() or ".." in path.parts:
            raise RedftpError(f"{path} is not an absolute path without '..'")
        fd = os.open("/", _DIR_FLAGS)
        trusted = _root_only(os.fstat(fd))
        current = Path("/")
        try:
            for part in path.parts[1:]:
                current = current / part
                flags = _DIR_FLAGS if trusted else _DIR_FLAGS | os.O_NOFOLLOW
                try:
                    child = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    raise MissingPath(f"{current} does not exist") from None
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise RedftpError(f"cannot open {current}: {exc.strerror}") from None
                    if trusted:
                        raise RedftpError(f"{current} is not a folder") from None
                    owner = os.fstat(fd).st_uid
                    raise RedftpError(
                        f"{current} is not a folder (or is a symbolic link in {current.parent}, which UID {owner} "
                        "or its group can change); refusing to follow it as root. Replace it with a real folder"
                    ) from None
                os.close(fd)
                fd = child
                trusted = trusted and _root_only(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))  # noqa: PTH208 - listing by descriptor, which pathlib cannot

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry itself (a link is not followed), or None when there is none."""
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def holds(self, name: str, other: Dir) -> bool:
        """Whether entry `name` is still the folder `other` (someone may have moved or replaced it)."""
        info = self.lstat(name)
        return info is not None and os.path.samestat(info, other.stat())

    def sub(self, name: str) -> Dir:
        """Open the sub-folder `name`; a symbolic link there is refused, not followed."""
        _check_name(name)
        try:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
        except FileNotFoundError:
            raise MissingPath(f"{self.path / name} does not exist") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise RedftpError(f"{self.path / name} is not a folder (or is a symbolic link); refusing it") from None
            raise
        return Dir(fd, self.path / name)

    def make_dir(self, name: str, mode: int, uid: int = 0, gid: int = 0) -> Dir:
        """Create the sub-folder `name` (it must not exist yet) and return it open, with `mode` and owner uid:gid."""
        _check_name(name)
        os.mkdir(name, 0o700, dir_fd=self.fd)
        replaced = ReplacedMeanwhile(
            f"{self.path / name} was moved or replaced right after it was made (by someone "
            f"who can write {self.path}); run the command again"
        )
        try:
            made = self.sub(name)
        except RedftpError:
            raise replaced from None
        try:
            if made.stat().st_uid != os.geteuid():
                raise replaced
            os.fchown(made.fd, uid, gid)
            os.fchmod(made.fd, mode)  # after fchown, which may clear set-group-ID
        except BaseException:
            made.close()
            raise
        return made

    def ensure_root_dir(self, name: str, mode: int, gid: int = 0) -> bool:
        """Make sub-folder `name` root:gid with `mode`, or bring an existing root-owned one to that; True if made.

        An existing folder that is not root's is never "fixed" silently: someone else made it, and the operator must
        decide (sshd needs root-owned chroot paths).
        """
        try:
            self.make_dir(name, mode, 0, gid).close()
        except FileExistsError:
            info = self.lstat(name)
            if info is None or not stat.S_ISDIR(info.st_mode):
                raise RedftpError(
                    f"{self.path / name} exists but is not a folder; move it away and run the command again"
                ) from None
            if info.st_uid != 0:
                raise RedftpError(
                    f"{self.path / name} is owned by UID {info.st_uid}; sshd needs it owned by root "
                    f"(fix: chown root {self.path / name})"
                ) from None
            with self.sub(name) as existing:
                os.fchown(existing.fd, 0, gid)
                os.fchmod(existing.fd, mode)
            return False
        return True

    def write_file(self, name: str, data: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
        """Replace file `name` atomically (a temporary file, then a rename), so no reader sees half of it."""
        _check_name(name)
        temporary = f".{name}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=self.fd)
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.fd
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchown(handle.fileno(), uid, gid)
                os.fchmod(handle.fileno(), mode)
            os.rename(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def open_file(self, name: str, flags: int, mode: int = 0o600) -> int:
        """os.open of entry `name` without following a link there."""
        _check_name(name)
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd)

    def symlink(self, name: str, target: Path, uid: int, gid: int) -> None:
        """Make the link `name` -> `target` owned by uid:gid.

        In a folder that someone else can write, the link is made by a child process running as uid:gid, since
        changing its owner by name afterwards could meet another entry put there meanwhile (lchown has no
        descriptor form). In a folder of root's (the archive being filled) it is made, then changed, by root.
        """
        _check_name(name)
        if _root_only(self.stat()) or uid == os.geteuid():
            os.symlink(target, name, dir_fd=self.fd)
            os.chown(name, uid, gid, dir_fd=self.fd, follow_symlinks=False)
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 0
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                os.symlink(target, name, dir_fd=self.fd)
            except OSError as exc:
                code = exc.errno or 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise OSError(code, os.strerror(code) if code > 0 else f"killed by signal {-code}", str(self.path / name))

    def readlink(self, name: str) -> str | None:
        """Where the link `name` points, or None when `name` is missing or not a link."""
        try:
            return os.readlink(name, dir_fd=self.fd)
        except (FileNotFoundError, OSError):
            return None

    def unlink(self, name: str) -> bool:
        """Remove the non-folder entry `name` (a link itself, never what it names); True when there was one."""
        _check_name(name)
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            return False
        return True

    def remove_tree(self, name: str) -> bool:
        """Remove the folder `name` and everything in it without following links; True when there was one."""
        _check_name(name)
        info = self.lstat(name)
        if info is None:
            return False
        if not stat.S_ISDIR(info.st_mode):
            raise RedftpError(f"{self.path / name} is not a folder; left alone")
        with self.sub(name) as top:
            top.empty_flat()
        os.rmdir(name, dir_fd=self.fd)
        return True

    def empty_flat(self) -> None:
        """Remove everything in this folder, however deep, without recursion and with two descriptors at most.

        shutil.rmtree descends by recursion, one call per level: a tree an sFTP user nests deeper than Python's
        recursion limit (about 1,000 levels, a loop of mkdir and cd does it) raised RecursionError half-way. Here
        each folder's subfolders are moved up into this one under fresh names (a rename in one file system), its
        other entries removed (links as links, never followed), and the folder, now empty, removed."""
        moved = 0
        while True:
            folders = [name for name in self.names() if (info := self.lstat(name)) and stat.S_ISDIR(info.st_mode)]
            if not folders:
                break
            for name in folders:
                with self.sub(name) as folder:
                    for entry in folder.names():
                        info = folder.lstat(entry)
                        if info is not None and stat.S_ISDIR(info.st_mode):
                            moved += 1
                            while self.lstat(f".removing-{moved}") is not None:  # a name of the tree's own
                                moved += 1
                            os.rename(entry, f".removing-{moved}", src_dir_fd=folder.fd, dst_dir_fd=self.fd)
                        elif info is not None:
                            folder.unlink(entry)
                os.rmdir(name, dir_fd=self.fd)
        for name in self.names():
            self.unlink(name)

    def move_entries_to(self, target: Dir) -> None:
        """Move every entry of this folder into `target` as it is (a link stays a link); copy across filesystems."""
        for name in self.names():
            try:
                os.rename(name, name, src_dir_fd=self.fd, dst_dir_fd=target.fd)
            except FileNotFoundError:
                continue  # removed meanwhile
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_entry(self, target, name, depth=0)
                info = self.lstat(name)
                if info is not None and stat.S_ISDIR(info.st_mode):
                    self.remove_tree(name)
                elif info is not None:
                    self.unlink(name)

    def hand_over(self, uid: int, gid: int, from_uids: set[int], depth: int = 0) -> int:
        """Give every folder and file below owned by one of `from_uids` to uid:gid; return the count of files.

        Each is changed through its own descriptor after checking it is what was looked at, so an entry swapped
        meanwhile is left alone. Entries of other owners keep theirs (a root-owned file linked in by someone is never
        handed to anyone), and so do links, pipes and files with several names: whoever owns the folder can remove
        them, and changing them by name could be redirected.
        """
        if depth > _MAX_DEPTH:
            raise RedftpError(
                f"{self.path} is nested more than {_MAX_DEPTH} folders deep; the files are there but "
                f"were not all handed over: chown -R them by hand"
            )
        files = 0
        for name in self.names():
            info = self.lstat(name)
            if info is None:
                continue
            if stat.S_ISDIR(info.st_mode):
                with self.sub(name) as child:
                    if not os.path.samestat(info, child.stat()):
                        continue  # replaced between the two calls: not what was looked at
                    files += child.hand_over(uid, gid, from_uids, depth + 1)
                    if info.st_uid in from_uids:
                        os.fchown(child.fd, uid, gid)
                continue
            if stat.S_ISREG(info.st_mode):
                files += 1
                if info.st_uid in from_uids:
                    self._hand_over_file(name, info, uid, gid)
        return files

    def _hand_over_file(self, name: str, info: os.stat_result, uid: int, gid: int) -> None:
        try:
            fd = self.open_file(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return  # removed, or replaced by a link, meanwhile
        try:
            now = os.fstat(fd)
            if os.path.samestat(info, now) and now.st_nlink == 1:
                os.fchown(fd, uid, gid)
        finally:
            os.close(fd)


def _check_name(name: str) -> None:
    """An entry is one path component: a '/' or '..' would leave the open folder."""
    if not name or "/" in name or name in (".", ".."):
        raise RedftpError(f"{name!r} is not a single file name")


def _copy_entry(source: Dir, target: Dir, name: str, depth: int) -> None:
    """Copy one entry across filesystems, keeping owner and mode; links are copied as links, others skipped."""
    if depth > _MAX_DEPTH:
        raise RedftpError(f"{source.path / name} is nested more than {_MAX_DEPTH} folders deep; not copied")
    info = source.lstat(name)
    if info is None:
        return
    if stat.S_ISDIR(info.st_mode):
        with source.sub(name) as sub_source, target.make_dir(name, 0o700) as sub_target:
            for entry in sub_source.names():
                _copy_entry(sub_source, sub_target, entry, depth + 1)
            os.fchown(sub_target.fd, info.st_uid, info.st_gid)
            os.fchmod(sub_target.fd, stat.S_IMODE(info.st_mode))
    elif stat.S_ISLNK(info.st_mode):
        link = source.readlink(name)
        if link is not None:
            target.symlink(name, Path(link), info.st_uid, info.st_gid)
    elif stat.S_ISREG(info.st_mode):
        reader = source.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not os.path.samestat(info, os.fstat(reader)):
                return
            writer = target.open_file(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                _copy_data(reader, writer)
                os.fchown(writer, info.st_uid, info.st_gid)
                os.fchmod(writer, stat.S_IMODE(info.st_mode))
            finally:
                os.close(writer)
        finally:
            os.close(reader)


def _copy_data(reader: int, writer: int) -> None:
    """Copy a file's data extents only, its holes staying holes (SEEK_DATA/SEEK_HOLE), then set its size.

    A user can write a few bytes far into a file: copied byte by byte, an upload taking a few KiB of disk would take
    its whole length on the target (as root, which the disk's reserve does not stop). Extents are looked for up to
    the file's end as it is at each look, and the size set is the one it has when the copy is done, so a file
    still changing is copied as it then is, neither cut nor padded.
    """
    offset = 0
    while True:
        try:
            start = os.lseek(reader, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break  # nothing but a hole up to the end
            raise
        end = os.lseek(reader, start, os.SEEK_HOLE)
        os.lseek(writer, start, os.SEEK_SET)
        while start < end:
            sent = os.sendfile(writer, reader, start, min(end - start, 1 << 20))
            if not sent:
                break  # cut short meanwhile
            start += sent
        offset = max(end, start)
    os.ftruncate(writer, os.fstat(reader).st_size)
