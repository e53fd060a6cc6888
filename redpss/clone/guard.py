"""JMON's check before its first poll (and before every poll while it holds back): is the database ours?

The restore belongs in the daemon, not in `redsysctl`: the units start with no network in redsys.service's
ExecStart path, and JMON is the one daemon that must not schedule anything from a database that is not its own.
"""

from __future__ import annotations

import logging

from redpss.clone import folder
from redpss.clone.blocked import block, unblock
from redpss.clone.restore import Verdict, assess, restore
from redpss.core.config import Config
from redpss.core.db import DatabaseError, DbSession
from redpss.core.errors import RedpssError
from redpss.core.logging.levels import ALERT
from redpss.core.paths import InstancePaths

log = logging.getLogger("redpss.clone")


class CloneGuard:
    """`check()` returns why no job may start ("" when the database is this instance's), restoring on the way."""

    def __init__(self, paths: InstancePaths, secret: str) -> None:
        self.paths = paths
        self.secret = secret
        self.said = ""  # the hold last raised as an ALERT: said once, not at every poll

    def check(self, session: DbSession, config: Config, *, routine: bool = False) -> str:
        """`routine`: the look JMON takes at every poll while the database is its own (a database restored under a
        running instance is found there); a passing database trouble then raises DatabaseError and changes nothing
        else (the caller reads no definitions on that poll: they might be another database's)."""
        try:
            assessment = assess(session, self.paths, self.secret)
        except DatabaseError as exc:
            if routine:
                raise
            # a timeout, an abort, a lost session: whose the database is cannot be told, so nothing starts until
            # the next poll tells it (never a restore on a guess); a passing trouble, no ALERT
            reason = f"cannot tell whether the database is this instance's ({exc}); no job starts until it can"
            log.warning("%s", reason)
            block(self.paths, reason)
            return reason
        try:
            if assessment.verdict is Verdict.RESTORE:
                log.warning("%s", assessment.message(self.paths))
                restore(session, config, self.paths, self.secret)
                assessment = assess(session, self.paths, self.secret)
            if assessment.verdict is Verdict.OWN:
                if self.said:
                    log.warning("the database is this instance's again; scheduling resumes")
                self.said = ""
                unblock(self.paths)
                return ""
            reason = assessment.message(self.paths)
        except folder.PrecloneError as exc:
            reason = f"the database was replaced by a clone, but the saved state cannot be used: {exc}"
        except (DatabaseError, RedpssError, OSError) as exc:
            reason = (
                f"restoring after a clone failed ({exc}); no job starts; JMON tries again at every poll, "
                "or run `redctl postclone`"
            )
        if reason != self.said:
            log.log(ALERT, "%s", reason)
            self.said = reason
        block(self.paths, reason)
        return reason
