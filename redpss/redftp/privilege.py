"""Getting root for the sFTP commands: redsys re-runs the same command through `sudo -n`.

The description lets redsys add and remove sFTP users, which needs root (useradd, root-owned chroots). The shipped
sudoers rule (etc/sudoers.d/redpss-redftp) allows exactly the two installed commands, without a password and with a
reset environment. The caller validates its arguments first and hands the key over on stdin, so root never opens a
file on redsys's behalf and a mistake is reported before sudo is involved at all.

A sudo rule is only as safe as the code it runs: when started through sudo, the command checks that its launcher
and the redpss package are owned by root and writable by nobody else, and refuses otherwise.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import redpss
from redpss.core.digits import is_decimal
from redpss.core.paths import DEFAULT_REDHOME, redhome_from_env
from redpss.redftp.accounts import REDSYS_USER
from redpss.redftp.errors import RedftpError

SUDOERS_FILE = "/etc/sudoers.d/redpss-redftp"


def is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def caller_rights() -> Iterator[None]:
    """Within: the effective user and groups of whoever ran this command through sudo (root's own otherwise), so
    that a file they name is opened only if they may open it themselves (not /etc/shadow, not a device of root's).
    sudo sets SUDO_UID and SUDO_GID itself; the rule's env_reset keeps the caller from setting them."""
    uid, gid, user = (os.environ.get(name, "") for name in ("SUDO_UID", "SUDO_GID", "SUDO_USER"))
    # only for the user the sudo rule lets in: an administrator in a `sudo -i` shell (SUDO_* set too) acts as root
    if not (is_root() and user == REDSYS_USER and is_decimal(uid) and is_decimal(gid) and int(uid) != 0):
        yield
        return
    own_groups = os.getgroups()
    try:
        os.setgroups(os.getgrouplist(user, int(gid)))
        os.setegid(int(gid))
        os.seteuid(int(uid))
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(own_groups)


def launcher(prog: str) -> Path:
    """The installed command the sudo rule names, $REDHOME/bin/<prog> of the default REDHOME: what runs may be the
    program of one installed series behind that launcher ($REDHOME/lib/<series>/bin/<prog>), which the rule does
    not name, so sudo would ask for a password."""
    path = DEFAULT_REDHOME / "bin" / prog
    if Path(sys.argv[0]).name != prog or not path.is_file():
        raise RedftpError(
            f"{prog} must run as root; to run it as another user, install RED-PSS (it provides {path}, which "
            f"the sudo rule names) and start the installed command {prog}, not {sys.argv[0]}"
        )
    return path


def rerun_with_sudo(prog: str, args: list[str], stdin: bytes | None) -> int:
    """Run the installed command again as root through `sudo -n` with `args`; return its exit code."""
    if redhome_from_env() != DEFAULT_REDHOME:
        raise RedftpError(
            f"REDHOME is {redhome_from_env()}, but through sudo the command works on {DEFAULT_REDHOME} only; "
            f"run {prog} as root for another REDHOME"
        )
    command = launcher(prog)
    try:
        done = subprocess.run(["sudo", "-n", str(command), *args], input=stdin, stderr=subprocess.PIPE, check=False)
    except FileNotFoundError:
        raise RedftpError(f"{prog} must run as root, and sudo is not installed; run it as root") from None
    err = done.stderr.decode("utf-8", errors="replace")
    if done.returncode != 0 and err.startswith("sudo:"):
        raise RedftpError(
            f"{prog} must run as root, and sudo refused to run it ({err.strip()}). Install the rule "
            f"etc/sudoers.d/redpss-redftp as {SUDOERS_FILE} (mode 0440, check with `visudo -cf {SUDOERS_FILE}`), "
            f"or run {prog} as root"
        )
    sys.stderr.write(err)
    return done.returncode


def check_trusted_code(prog: str) -> None:
    """Refuse to run through sudo from code that a non-root user could change (that would hand them root).

    The files themselves, and every folder above them: whoever can write a folder on the way can rename the root-owned
    launcher, package or interpreter aside and put their own in its place (REDHOME owned by redsys is such a folder).
    This cannot stop code that was already replaced, but it refuses every run on such an installation, so it is found
    and fixed before anyone uses it.
    """
    if "SUDO_USER" not in os.environ:
        return
    package = Path(redpss.__file__).parent
    launcher_path = Path(sys.argv[0]).absolute()  # the program behind the launcher the sudo rule names, if any
    named = DEFAULT_REDHOME / "bin" / prog  # that launcher, and the script its link leads to
    launchers = [named, named.resolve()] if os.path.lexists(named) else []
    candidates = [launcher_path, *launchers, package]
    candidates += [p for p in package.rglob("*") if p.suffix == ".py" or p.is_dir()]
    for path in candidates:
        info = path.lstat()
        if info.st_uid != 0 or (info.st_mode & 0o022 and not stat.S_ISLNK(info.st_mode)):
            raise RedftpError(
                f"refusing to run {prog} as root through sudo: {path} is not owned by root or is writable by "
                "group/others, so whoever can change it would get root. Install RED-PSS root-owned"
            )
    for path in (launcher_path, *launchers[:1], package, Path(sys.executable)):
        folder = _folder_others_can_change(path)
        if folder is not None:
            raise RedftpError(
                f"refusing to run {prog} as root through sudo: the folder {folder} (above {path}) is not owned by "
                "root or is writable by group/others, so whoever can write it can replace the code below it and "
                "get root. Every folder above the commands, the redpss package and Python must be root's alone: "
                f"e.g. REDHOME root-owned (0755) with only env/ owned by redsys (see docs/sftp-users.md)"
            )


def _folder_others_can_change(path: Path) -> Path | None:
    """The first folder above `path` (as named, and after resolving links) that someone but root can write."""
    for named in (path, path.resolve()):
        for folder in reversed(named.parents):
            info = folder.stat()
            sticky_root = info.st_uid == 0 and info.st_mode & stat.S_ISVTX  # others cannot rename root's entries
            if info.st_uid != 0 or (info.st_mode & 0o022 and not sticky_root):
                return folder
    return None
