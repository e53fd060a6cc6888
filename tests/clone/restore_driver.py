"""A child process that does what JMON does before its first poll (redpss.clone.guard.CloneGuard.check), and kills
itself with SIGKILL at one chosen point of the restore: `python -m tests.clone.restore_driver TST1 STEP POINT`
(POINT before|after; STEP "-" runs to the end). A real process, a real kill -9, the real database.

POINT `fail` makes STEP fail once instead, writes a LOG_MESSAGES row (as DBLS does while JMON holds), and tries
again in the same process, as JMON does at its next poll."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from redpss.clone.guard import CloneGuard
from redpss.clone.restore import restore
from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret


def main(argv: list[str]) -> int:
    name, step, point = argv
    paths = InstancePaths.from_env(name=name)
    config = load_config(paths.config_file)
    session = DbSession(DbSettings.from_config(config, client_name="restore driver"))
    secret = instance_secret(paths, create=False)

    def die_at(at_step: str, at_point: str) -> None:
        if (at_step, at_point) == (step, point):
            os.kill(os.getpid(), signal.SIGKILL)

    failed: list[str] = []

    def fail_once_at(at_step: str, at_point: str) -> None:
        if (at_step, at_point) == (step, "before") and not failed:
            failed.append(at_step)
            raise RuntimeError(f"step {at_step} failed")

    guard = CloneGuard(paths, secret)
    try:
        if point == "fail":
            with contextlib.suppress(RuntimeError):  # the failed try, as JMON's poll logs it
                restore(session, config, paths, secret, hook=fail_once_at)
            session.execute(
                "INSERT INTO APP1.LOG_MESSAGES (LOG_TIME, LOG_LEVEL, MESSAGE) "
                "VALUES (CURRENT_TIMESTAMP, 'ERROR', 'written while held')"
            )
            session.commit()
            hold = guard.check(session, config)
        elif step == "-":
            hold = guard.check(session, config)
        else:
            restore(session, config, paths, secret, hook=die_at)
            hold = ""
    finally:
        session.close()
    print(hold)
    return 1 if hold else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
