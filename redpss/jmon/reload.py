"""What a reload (SIGHUP, `systemctl reload`) of red_params.conf changes for JMON, and what it cannot change.

JMON applies the log level and its two periods at once. The database connection, the SCHED port and the log
retention are bound at start: a change to them is named in the log with the restart it needs, never silently
ignored. Keys JMON does not use are not reported. The comparison itself is redpss.core.reloading's.
"""

from __future__ import annotations

from redpss.core.config import Config
from redpss.core.reloading import DATABASE_KEYS, ConfigChanges, Key
from redpss.core.reloading import config_changes as _config_changes

APPLIED_KEYS: tuple[Key, ...] = (
    ("redctl", "log_level"),
    ("redctl", "jmon_poll_interval"),
    ("redctl", "jmon_stats_interval"),
)
RESTART_KEYS: tuple[Key, ...] = (*DATABASE_KEYS, ("redctl", "sched_service_port"), ("redctl", "log_retention"))


def config_changes(old: Config, new: Config) -> ConfigChanges:
    """The changes between two loads of the config that concern JMON, split by whether JMON can apply them."""
    return _config_changes(old, new, APPLIED_KEYS, RESTART_KEYS)
