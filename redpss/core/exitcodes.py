"""The exit codes every RED-PSS program uses, in one place.

systemd units refer to these numbers (RestartPreventExitStatus=3 keeps a bad config from restart-looping), and
operators' scripts test them, so they never change meaning.
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # the program ran and something failed (a drain was forced, a command did not succeed)
    USAGE = 2  # wrong arguments: argparse's own convention
    CONFIG = 3  # configuration or start-up error: fix the named file/key, a restart will not help


class LsbStatus(IntEnum):
    """Exit codes of `status` commands, as the LSB init-script spec and `systemctl status` define them."""

    RUNNING = 0
    DEAD_WITH_PIDFILE = 1
    NOT_RUNNING = 3
    UNKNOWN = 4
