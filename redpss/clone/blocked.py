"""tmp/clone.blocked: why JMON starts no job on this database (another instance's), for `redctl status`.

Kept apart from the restore so that `redctl status` reads it without loading the database layer.
"""

from __future__ import annotations

from redpss.core.paths import InstancePaths

BLOCKED_FILE = "clone.blocked"


def block(paths: InstancePaths, message: str) -> None:
    (paths.tmp / BLOCKED_FILE).write_text(message + "\n")


def unblock(paths: InstancePaths) -> None:
    (paths.tmp / BLOCKED_FILE).unlink(missing_ok=True)


def blocked_reason(paths: InstancePaths) -> str:
    """The reason JMON wrote, "" when it schedules normally."""
    try:
        return (paths.tmp / BLOCKED_FILE).read_text().strip()
    except OSError:
        return ""
