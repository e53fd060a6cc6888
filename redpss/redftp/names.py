"""Names of sFTP users: `redftp_<instance>_<user>` in lower case, at most 32 characters, UIDs 1200-1299.

The description fixes the pattern and the UID range. Instance names never contain '_', so the first '_' after the
prefix always ends the instance part: `redftp_tst1_sap_export` is user `sap_export` of TST1, unambiguously. That is
what lets the commands accept either the short name or the full system name and refuse a user of another instance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redpss.core.errors import InstanceError
from redpss.core.paths import validate_instance_name
from redpss.redftp.errors import RedftpUsageError

REDFTP_GROUP = "redftp"
SYSTEM_NAME_PREFIX = "redftp_"
UID_FIRST = 1200
UID_LAST = 1299
# useradd on RHEL 8 and Debian refuses longer names (LOGIN_NAME_MAX is larger, but utmp and shadow-utils cap at 32).
SYSTEM_NAME_MAX = 32

_USER_RE = re.compile(r"[a-z][a-z0-9_-]*")
_USER_RULE = "lower-case letters, digits, '_' and '-', starting with a letter (e.g. sap-export)"


@dataclass(frozen=True)
class SftpUserName:
    """One sFTP user: its instance (upper case), its short name, and the system account name derived from both."""

    instance: str
    user: str

    @property
    def system(self) -> str:
        return f"{SYSTEM_NAME_PREFIX}{self.instance.lower()}_{self.user}"


def parse_instance(name: str) -> str:
    """The instance name in upper case; a malformed one is a usage error (nothing is looked up yet)."""
    try:
        return validate_instance_name(name)
    except InstanceError as exc:
        raise RedftpUsageError(str(exc)) from None


def sftp_user_name(instance: str, user: str) -> SftpUserName:
    """Validate INSTANCE and USER; USER may be the short name (alice) or the system name (redftp_tst1_alice)."""
    redenv = parse_instance(instance)
    short = _short_name(redenv, user)
    _check_short_name(short)
    name = SftpUserName(instance=redenv, user=short)
    if len(name.system) > SYSTEM_NAME_MAX:
        room = SYSTEM_NAME_MAX - len(SftpUserName(redenv, "").system)
        raise RedftpUsageError(
            f"sFTP user name {short!r} makes the system user name {name.system!r} {len(name.system)} characters "
            f"long; Linux allows at most {SYSTEM_NAME_MAX}, so a user of {redenv} may have at most {room} characters"
        )
    return name


def _short_name(redenv: str, user: str) -> str:
    if not user.lower().startswith(SYSTEM_NAME_PREFIX):
        return user
    owner, sep, short = user[len(SYSTEM_NAME_PREFIX) :].partition("_")
    if not sep or not short:
        raise RedftpUsageError(
            f"{user!r} is not an sFTP user name: give the short name (alice) or the system name "
            f"{SYSTEM_NAME_PREFIX}{redenv.lower()}_<user>"
        )
    if owner.upper() != redenv:
        raise RedftpUsageError(
            f"{user!r} is a user of instance {owner.upper()}, not of {redenv}: "
            f"name the instance it belongs to, or give the short user name"
        )
    return short


def _check_short_name(user: str) -> None:
    if not user:
        raise RedftpUsageError(f"no sFTP user name given: use {_USER_RULE}")
    if user != user.lower() and _USER_RE.fullmatch(user.lower()):
        raise RedftpUsageError(
            f"sFTP user name {user!r} has upper-case letters; user names are lower case: use {user.lower()!r}"
        )
    if not _USER_RE.fullmatch(user):
        raise RedftpUsageError(f"{user!r} is not a valid sFTP user name: use {_USER_RULE}")


def parse_system_name(system: str) -> SftpUserName | None:
    """The name a system account stands for, or None when it does not follow the redftp_<instance>_<user> pattern."""
    if not system.startswith(SYSTEM_NAME_PREFIX):
        return None
    owner, sep, short = system[len(SYSTEM_NAME_PREFIX) :].partition("_")
    if not sep:
        return None
    try:
        name = sftp_user_name(owner, short)
    except RedftpUsageError:
        return None
    return name if name.system == system else None
