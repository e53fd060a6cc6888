"""Errors of the sFTP user commands: bad arguments exit 2, failures while changing the system exit 1."""

from __future__ import annotations

from redpss.core.errors import RedpssError, UsageError
from redpss.core.exitcodes import ExitCode


class RedftpUsageError(UsageError):
    """An argument is wrong (instance, user name, key); nothing was changed."""

    exit_code = ExitCode.USAGE


class RedftpError(RedpssError):
    """The system refused or is not in the state the command needs (user exists, UID range full, sudo refused)."""

    exit_code = ExitCode.FAILURE
