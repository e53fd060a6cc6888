"""What a reload (SIGHUP, `systemctl reload`) of red_params.conf changes for SCHED, and what needs a restart.

SCHED applies the log level (its own at once; workers are replaced as they become idle, so they start with it) and
the pool sizes (a pool grows at once; it shrinks as workers become idle, never by cutting a run short). The service
port, the database connection and the log retention are bound at start: a change to them is named in the log with
the restart it needs, never silently ignored. Keys SCHED does not use are not reported. The comparison itself is
redpss.core.reloading's.
"""

from __future__ import annotations

from redpss.core.config import Config
from redpss.core.reloading import DATABASE_KEYS, ConfigChanges, Key
from redpss.core.reloading import config_changes as _config_changes

POOL_SIZE_KEYS: dict[str, Key] = {
    "DEFAULT": ("redctl", "sched_default_pool_size"),
    "LOADER": ("redctl", "sched_loader_pool_size"),
    "ACTION": ("redctl", "sched_action_pool_size"),
}
LOG_LEVEL: Key = ("redctl", "log_level")
APPLIED_KEYS: tuple[Key, ...] = (LOG_LEVEL, *POOL_SIZE_KEYS.values())
RESTART_KEYS: tuple[Key, ...] = (*DATABASE_KEYS, ("redctl", "sched_service_port"), ("redctl", "log_retention"))


def config_changes(old: Config, new: Config) -> ConfigChanges:
    """The changes between two loads of the config that concern SCHED, split by whether SCHED can apply them."""
    return _config_changes(old, new, APPLIED_KEYS, RESTART_KEYS)
