"""What a reload (SIGHUP, `systemctl reload`) of red_params.conf changed, split by what a daemon applies running.

Every daemon that re-reads the config compares the two loads the same way: only the keys it uses, each change told
with its old and new value, except a secret, which is named but never shown in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from redpss.core.config import Config

Key = tuple[str, str]  # (section, key) as in red_params.conf

# The database connection: bound at start by every daemon that opens one
DATABASE_KEYS: tuple[Key, ...] = (
    ("DEFAULT", "exa_connection"),
    ("DEFAULT", "exa_username"),
    ("DEFAULT", "exa_password"),
    ("DEFAULT", "exa_dbname"),
    ("DEFAULT", "exa_encryption"),
    ("DEFAULT", "exa_ca_file"),
)
_ATTRIBUTES = {"DEFAULT": "default", "redctl": "redctl", "redinfo": "redinfo", "rest": "rest"}


@dataclass
class ConfigChanges:
    applied: list[Key] = field(default_factory=list)
    need_restart: list[Key] = field(default_factory=list)
    described: dict[Key, str] = field(default_factory=dict)  # "[redctl] sched_default_pool_size: 4 -> 6"

    def describe(self, keys: Sequence[Key]) -> str:
        return "; ".join(self.described[key] for key in keys)

    @property
    def empty(self) -> bool:
        return not self.applied and not self.need_restart


def value(config: Config, key: Key) -> object:
    section, name = key
    return getattr(getattr(config, _ATTRIBUTES[section]), name)


def describe_change(label: str, before: object, after: object) -> str:
    """`label` with its old and new value; a password only as changed, so that no secret reaches the log."""
    if "password" in label:
        return f"{label} changed"
    return f"{label}: {before!r} -> {after!r}"


def config_changes(old: Config, new: Config, applied: Sequence[Key], need_restart: Sequence[Key]) -> ConfigChanges:
    """The changes between two loads of the config among `applied` and `need_restart` keys."""
    changes = ConfigChanges()
    for keys, target in ((applied, changes.applied), (need_restart, changes.need_restart)):
        for key in keys:
            before, after = value(old, key), value(new, key)
            if before != after:
                target.append(key)
                section, name = key
                changes.described[key] = describe_change(f"[{section}] {name}", before, after)
    return changes
