"""What a reload (SIGHUP, `systemctl reload`) of red_params.conf changes for SCHED, and what needs a restart.

SCHED applies the log level (its own at once; workers are replaced as they become idle, so they start with it) and
the pool sizes (a pool grows at once; it shrinks as workers become idle, never by cutting a run short). The service
port, the database connection and the log retention are bound at start: a change to them is named in the log with
the restart it needs, never silently ignored. Keys SCHED does not use are not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from redpss.core.config import Config

Key = tuple[str, str]  # (section, key) as in red_params.conf

POOL_SIZE_KEYS: dict[str, Key] = {
    "DEFAULT": ("redctl", "sched_default_pool_size"),
    "LOADER": ("redctl", "sched_loader_pool_size"),
    "ACTION": ("redctl", "sched_action_pool_size"),
}
LOG_LEVEL: Key = ("redctl", "log_level")
APPLIED_KEYS: tuple[Key, ...] = (LOG_LEVEL, *POOL_SIZE_KEYS.values())
RESTART_KEYS: tuple[Key, ...] = (
    ("DEFAULT", "exa_connection"),
    ("DEFAULT", "exa_username"),
    ("DEFAULT", "exa_password"),
    ("DEFAULT", "exa_dbname"),
    ("DEFAULT", "exa_encryption"),
    ("DEFAULT", "exa_ca_file"),
    ("redctl", "sched_service_port"),
    ("redctl", "log_retention"),
)
_ATTRIBUTES = {"DEFAULT": "default", "redctl": "redctl", "redinfo": "redinfo", "rest": "rest"}


@dataclass
class ConfigChanges:
    applied: list[Key] = field(default_factory=list)
    need_restart: list[Key] = field(default_factory=list)
    described: dict[Key, str] = field(default_factory=dict)  # "[redctl] sched_default_pool_size: 4 -> 6"

    def describe(self, keys: Sequence[Key]) -> str:
        return "; ".join(self.described[key] for key in keys)


def value(config: Config, key: Key) -> object:
    section, name = key
    return getattr(getattr(config, _ATTRIBUTES[section]), name)


def config_changes(
    old: Config, new: Config, applied: Sequence[Key] = APPLIED_KEYS, need_restart: Sequence[Key] = RESTART_KEYS
) -> ConfigChanges:
    """The changes between two loads of the config among `applied` and `need_restart` keys."""
    changes = ConfigChanges()
    for keys, target in ((applied, changes.applied), (need_restart, changes.need_restart)):
        for key in keys:
            before, after = value(old, key), value(new, key)
            if before != after:
                target.append(key)
                section, name = key
                shown = "changed" if "password" in name else f"{before!r} -> {after!r}"  # never a secret in the log
                changes.described[key] = f"[{section}] {name}: {shown}"
    return changes
