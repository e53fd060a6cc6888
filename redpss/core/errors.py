"""The exception root of RED-PSS and the errors the core raises.

Every message is written for an operator woken at night: it names what was wrong and how to fix it.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Callable, Sequence

from redpss.core.exitcodes import ExitCode, LsbStatus


class RedpssError(Exception):
    """Root of every error RED-PSS raises on purpose; `exit_code` is what a CLI or daemon exits with."""

    exit_code: ExitCode = ExitCode.FAILURE


class TimedOut(RedpssError):
    """Work ran past its timeout and was ended; a job handler raises it so the run is logged TIMEOUT, not FAILED."""


class UsageError(RedpssError):
    exit_code = ExitCode.USAGE


class InstanceError(RedpssError):
    """An instance name is malformed or the instance does not exist."""

    exit_code = ExitCode.CONFIG


class StartupError(RedpssError):
    """A daemon could not get ready (port taken, database unreachable at start, missing certificate)."""

    exit_code = ExitCode.CONFIG


class ConfigError(RedpssError):
    """red_params.conf has one or more problems; all of them are listed, not only the first."""

    exit_code = ExitCode.CONFIG

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{path}: {count} problem{'s' if count != 1 else ''} in the configuration:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


def run_reporting(prog: str, handler: Callable[[], int], *, status: bool = False) -> int:
    """Run a program's handler; a RedpssError becomes `<prog>: <message>` on stderr and its exit code. Every
    command-line program (redctl, redsysctl, the redftp tools) ends through here, so they report alike.

    `status`: the handler answers a status question, whose exit codes are LSB's; there an error (an unknown
    instance, a config that names no daemon) means the status is unknown, 4, and never 3 (CONFIG's number),
    which LSB reserves for "stopped": a monitor must not read a typo as a cleanly stopped instance."""
    try:
        code = handler()
        sys.stdout.flush()  # here, not at exit: a reader gone (`| head`) is then seen below
        return code
    except RedpssError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return int(LsbStatus.UNKNOWN) if status else int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.FAILURE)
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # a pipe or socket of the command's own work: a fault to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the output left unwritten goes nowhere
        return 128 + signal.SIGPIPE  # what `$?` shows for any program whose reader left: `redctl show | head`
    except OSError as exc:
        if exc.filename is None:
            raise  # not about a file: a fault to report with its traceback
        # a file the command met (a folder where a file was expected, no right to it): named, without a traceback
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        print(f"{prog}: {where}: {exc.strerror or exc}", file=sys.stderr)
        return int(LsbStatus.UNKNOWN) if status else int(ExitCode.FAILURE)


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe (or socket) whose reading end is closed: the poll of its writing end says POLLERR."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):
        return False
