"""System accounts of sFTP users: UID choice, useradd/userdel, and ending a removed user's sessions.

Accounts are made with the distribution's useradd/userdel (shadow-utils on RHEL 8 and Debian) so /etc/passwd,
/etc/shadow, /etc/group and their locks are handled the way the system expects. The password field is '*', not the
locked '!': with `UsePAM no` sshd treats '!' as a locked account and refuses even key logins, while '*' only means
"no password can match".
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from redpss.redftp.errors import RedftpError
from redpss.redftp.names import REDFTP_GROUP, UID_FIRST, UID_LAST, parse_system_name

NOLOGIN_CANDIDATES = (Path("/sbin/nologin"), Path("/usr/sbin/nologin"))
REDSYS_USER = "redsys"


def pick_uid(accounts: Iterable[tuple[str, int]]) -> int:
    """The first UID in 1200-1299 no account uses; RedftpError naming who holds the range when it is full."""
    taken: dict[int, str] = {uid: name for name, uid in accounts if UID_FIRST <= uid <= UID_LAST}
    for uid in range(UID_FIRST, UID_LAST + 1):
        if uid not in taken:
            return uid
    foreign = sorted((uid, name) for uid, name in taken.items() if parse_system_name(name) is None)
    size = UID_LAST - UID_FIRST + 1
    message = f"the sFTP UID range {UID_FIRST}-{UID_LAST} is full: all {size} UIDs are in use"
    if foreign:
        shown = ", ".join(f"{name} ({uid})" for uid, name in foreign[:10])
        more = f" and {len(foreign) - 10} more" if len(foreign) > 10 else ""
        message += (
            f"; {len(foreign)} of them by accounts that are not sFTP users: {shown}{more}. Give those accounts "
            "UIDs outside the range (usermod -u), or"
        )
    else:
        message += ";"
    raise RedftpError(f"{message} remove sFTP users that are no longer needed with redftp_userdel")


def system_accounts() -> list[tuple[str, int]]:
    return [(entry.pw_name, entry.pw_uid) for entry in pwd.getpwall()]


def find_account(system: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(system)
    except KeyError:
        return None


def redftp_gid() -> int:
    try:
        return grp.getgrnam(REDFTP_GROUP).gr_gid
    except KeyError:
        raise RedftpError(
            f"group {REDFTP_GROUP} does not exist; the RED-PSS installation creates it. Create it with "
            f"`groupadd -r {REDFTP_GROUP} && usermod -aG {REDFTP_GROUP} {REDSYS_USER}`"
        ) from None


def redsys_in_group() -> bool:
    """Whether redsys can read uploads (member of redftp, or redftp is its primary group)."""
    try:
        group = grp.getgrnam(REDFTP_GROUP)
        redsys = pwd.getpwnam(REDSYS_USER)
    except KeyError:
        return False
    return REDSYS_USER in group.gr_mem or redsys.pw_gid == group.gr_gid


def nologin_shell() -> str:
    for candidate in NOLOGIN_CANDIDATES:
        if candidate.is_file():
            return str(candidate)
    raise RedftpError("neither /sbin/nologin nor /usr/sbin/nologin exists; install util-linux (or shadow-utils)")


def add_account(system: str, uid: int, gid: int, home: Path, comment: str) -> None:
    """useradd without a home folder (the command builds the chroot itself) and without a usable password."""
    _run(
        [
            "useradd",
            "--uid",
            str(uid),
            "--gid",
            str(gid),
            "--no-user-group",
            "--no-create-home",
            "--home-dir",
            str(home),
            "--shell",
            nologin_shell(),
            "--comment",
            comment,
            "--password",
            "*",
            system,
        ],
        f"creating account {system} with UID {uid}",
        hint={
            4: f"UID {uid} was taken by another account meanwhile; run the command again",
            9: f"{system} was created by someone else meanwhile",
        },
    )


def remove_account(system: str) -> None:
    _run(
        ["userdel", system],
        f"removing account {system}",
        hint={8: "the user still has processes running; run the command again"},
    )


def _run(argv: list[str], what: str, hint: dict[int, str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RedftpError(f"{what} failed: {argv[0]} is not installed (it is part of shadow-utils)") from None
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
        extra = f" ({hint[done.returncode]})" if done.returncode in hint else ""
        raise RedftpError(f"{what} failed: {detail}{extra}")


def processes_of(uid: int, proc: Path = Path("/proc")) -> list[int]:
    """PIDs whose real or effective UID is `uid` (an sFTP session runs as the user once authenticated)."""
    pids: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:"):
                real, effective = (int(v) for v in line.split()[1:3])
                if uid in (real, effective):
                    pids.append(int(entry.name))
                break
    return pids


def end_sessions(uid: int, grace: float = 5.0) -> int:
    """Stop every process of `uid` (SIGTERM, then SIGKILL after `grace` seconds); return how many there were.

    userdel refuses a user with running processes, and a deleted user must not keep an open sFTP session.
    """
    if not UID_FIRST <= uid <= UID_LAST:
        raise RedftpError(f"refusing to signal processes of UID {uid}: outside the sFTP range {UID_FIRST}-{UID_LAST}")
    found = processes_of(uid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_of(uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while processes_of(uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not processes_of(uid):
            break
    return len(found)
