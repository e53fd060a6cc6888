"""Getting root for the sFTP commands: redsys re-runs the same command through `sudo -n`.

The description lets redsys add and remove sFTP users, which needs root (useradd, root-owned chroots). The shipped
sudoers rule (etc/sudoers.d/redpss-redftp) allows exactly the two installed commands, without a password and with a
reset environment. The caller validates its arguments first and hands the key over on stdin, so root never opens a
file on redsys's behalf and a mistake is reported before sudo is involved at all.

A sudo rule is only as safe as the code it runs: when started through sudo, the command checks that its launcher
and the redpss package are owned by root and writable by nobody else, and refuses otherwise.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import redpss
from redpss.core.paths import DEFAULT_REDHOME, redhome_from_env
from redpss.redftp.errors import RedftpError

SUDOERS_FILE = "/etc/sudoers.d/redpss-redftp"


def is_root() -> bool:
    return os.geteuid() == 0


def launcher(prog: str) -> Path:
    """The installed command that is running; sudo rules name it, so `python -m` cannot be re-run through sudo."""
    path = Path(sys.argv[0]).absolute()
    if path.name != prog or not path.is_file():
        raise RedftpError(
            f"{prog} must run as root; to run it as another user, start the installed command {prog} "
            f"(it re-runs itself through sudo), not {sys.argv[0]}"
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
    launcher_path = Path(sys.argv[0]).absolute()
    candidates = [launcher_path, package]
    candidates += [p for p in package.rglob("*") if p.suffix == ".py" or p.is_dir()]
    for path in candidates:
        info = path.lstat()
        if info.st_uid != 0 or (info.st_mode & 0o022 and not stat.S_ISLNK(info.st_mode)):
            raise RedftpError(
                f"refusing to run {prog} as root through sudo: {path} is not owned by root or is writable by "
                "group/others, so whoever can change it would get root. Install RED-PSS root-owned"
            )
    for path in (launcher_path, package, Path(sys.executable)):
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
