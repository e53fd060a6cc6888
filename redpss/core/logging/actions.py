"""What an operator did with redctl, who and when: one line per command in $REDENV_HOME/log/redctl.log.

The description promises that redctl's actions (start, stop, toggle, reload, …) are logged. Commands that only
look (status, show, listings) are not, so the file stays a record of changes. Who is the person at the keyboard:
SUDO_USER when the command runs through sudo, else the name of the process's user. Writing the line never changes
the command's outcome: a log folder the user cannot write is skipped in silence.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence

from redpss.core.errors import RedpssError
from redpss.core.paths import InstancePaths

# redctl commands that change nothing; every other command is an action and is logged.
READ_ONLY_COMMANDS = frozenset(
    {"status", "show", "watch", "list_db_jobs", "list_db_watcher", "we_list_error", "version"}
)
LOGGER_NAME = "redpss.redctl"


def acting_user(environ: Mapping[str, str] | None = None) -> str:
    """The login name of whoever runs the command: the sudo caller if any, else the process's user."""
    import pwd  # noqa: PLC0415 - only for an action that is logged

    env = os.environ if environ is None else environ
    sudo_user = env.get("SUDO_USER", "").strip()
    try:
        own = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        own = f"uid {os.getuid()}"
    return f"{sudo_user} (via sudo as {own})" if sudo_user and sudo_user != own else own


def record_action(
    paths: InstancePaths,
    command: str,
    argv: Sequence[str],
    exit_code: int,
    *,
    started: float,
    now: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Append `<user>: redctl <argv> -> exit N (S s)` to redctl.log unless `command` is read-only; True if written."""
    if command in READ_ONLY_COMMANDS or not paths.log.is_dir():
        return False
    # The file handler and its formatter only here: the looking commands (status, show) never load them.
    import logging  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    from redpss.core.logging.daily import DailyFileHandler  # noqa: PLC0415
    from redpss.core.logging.formatting import FileFormatter  # noqa: PLC0415

    ended = time.time() if now is None else now
    record = logging.LogRecord(
        LOGGER_NAME,
        logging.INFO if exit_code == 0 else logging.WARNING,
        __file__,
        0,
        "%s: redctl %s -> exit %d (%.1f s)",
        (acting_user(environ), shlex.join(argv), exit_code, max(0.0, ended - started)),
        None,
    )
    record.created = started
    record.msecs = (started % 1) * 1000
    handler = DailyFileHandler(paths.log_file("redctl"))
    handler.setFormatter(FileFormatter())
    try:
        handler.write(record)
    except OSError:
        return False
    finally:
        handler.close()
    return True


class RedctlAction:
    """One redctl command from its dispatch to its exit code: `begin()` before the handler runs, `end()` after."""

    def __init__(self, instance: str | None, command: str, argv: Sequence[str]) -> None:
        self.instance = instance
        self.command = command
        self.argv = list(argv)
        self.started = time.time()

    @classmethod
    def begin(cls, instance: str | None, command: str, argv: Sequence[str] | None) -> RedctlAction:
        """`argv` None means the process's own arguments, as argparse reads them."""
        return cls(instance, command, sys.argv[1:] if argv is None else argv)

    def end(self, exit_code: int) -> None:
        try:
            paths = InstancePaths.from_env(name=self.instance)
        except RedpssError:
            return  # no instance: the command itself has said so
        record_action(paths, self.command, self.argv, exit_code, started=self.started)
