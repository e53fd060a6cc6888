"""What a reload (SIGHUP, `systemctl reload`) of red_params.conf changes for JMON, and what it cannot change.

JMON applies the log level and its two periods at once. The database connection, the SCHED port and the log
retention are bound at start: a change to them is named in the log with the restart it needs, never silently
ignored. Keys JMON does not use are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redpss.core.config import Config

# (section, key) JMON applies while running
APPLIED_KEYS = (("redctl", "log_level"), ("redctl", "jmon_poll_interval"), ("redctl", "jmon_stats_interval"))
# (section, key) JMON reads only at start
RESTART_KEYS = (
    ("DEFAULT", "exa_connection"),
    ("DEFAULT", "exa_username"),
    ("DEFAULT", "exa_password"),
    ("DEFAULT", "exa_dbname"),
    ("DEFAULT", "exa_encryption"),
    ("DEFAULT", "exa_ca_file"),
    ("redctl", "sched_service_port"),
    ("redctl", "log_retention"),
)
_SECTIONS = {"DEFAULT": "default", "redctl": "redctl"}


@dataclass
class ConfigChanges:
    applied: list[str] = field(default_factory=list)  # "[redctl] jmon_poll_interval: 10 -> 5"
    need_restart: list[str] = field(default_factory=list)


def _value(config: Config, section: str, key: str) -> object:
    return getattr(getattr(config, _SECTIONS[section]), key)


def _describe(section: str, key: str, old: object, new: object) -> str:
    if key.endswith("password"):
        return f"[{section}] {key} changed"  # never a secret in the log
    return f"[{section}] {key}: {old!r} -> {new!r}"


def config_changes(old: Config, new: Config) -> ConfigChanges:
    """The changes between two loads of the config that concern JMON, split by whether JMON can apply them."""
    changes = ConfigChanges()
    for keys, target in ((APPLIED_KEYS, changes.applied), (RESTART_KEYS, changes.need_restart)):
        for section, key in keys:
            before, after = _value(old, section, key), _value(new, section, key)
            if before != after:
                target.append(_describe(section, key, before, after))
    return changes
