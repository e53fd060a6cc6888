"""After a clone: put back what `redctl preclone` saved, and clear the logs the other database brought along.

JMON runs this before its first poll (so nothing of the other database's schedule starts), `redctl postclone` runs
it explicitly. The steps run in a fixed order, each recorded in tmp/preclone/restore.json once done and in
redctl.log and the journal; each is idempotent, so a restore killed at any point and run again ends in the state an
uninterrupted one reaches. A resumed restore does the database steps again (DATABASE_STEPS): the database may have
been restored once more meanwhile. The identity is written last among the database steps: until then the database still
names the other instance, so a start after a crash sees the clone again and finishes the work.

A foreign database with no saved state is not touched by JMON: it starts no job and raises an ALERT that names the
fix; tmp/clone.blocked carries the same words for `redctl status`.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpss.clone import folder
from redpss.clone.blocked import unblock
from redpss.clone.identity import InstanceIdentity, database_identity, local_identity, write_identity
from redpss.clone.state import OwnedState, apply_owned_rows, apply_role_members, clear_logs
from redpss.core.config import Config, Secret
from redpss.core.db import DbSession
from redpss.core.db.contract import install, service_connections
from redpss.core.db.rowwriter import CLONE_CUTOFF_FILE
from redpss.core.durable import exclusive_lock, write_atomically
from redpss.core.paths import InstancePaths

log = logging.getLogger("redpss.clone")

# (step, point) where a test's hook may act: before a step's work, and after it but before it is recorded as done.
STEPS = (
    "discard_spools",
    "log_files",
    "connections",  # db_install's work first: a clone of an older contract gets the tables the next steps use
    "activation",
    "roles",
    "database_logs",
    "suspend_state",
    "identity",
    "archive",
)
Hook = Callable[[str, str], None]
# The steps whose work is in the database: a restore resumed by another process (after a kill, a crash, a restart)
# does them again (each is idempotent), since the database may have been restored once more meanwhile; only the
# file steps count as done for good. The same process trying again (JMON at every poll, after a step failed) does
# not: it would empty the log tables at every poll.
DATABASE_STEPS = frozenset({"connections", "activation", "roles", "database_logs", "identity"})


class Verdict(enum.Enum):
    OWN = "own"  # the database is this instance's (or has no identity yet): nothing to do
    RESTORE = "restore"  # replaced since the preclone (or a restore was interrupted): restore now
    FOREIGN = "foreign"  # another instance's database and nothing saved: start no job


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    mine: InstanceIdentity
    found: InstanceIdentity | None  # the database's row

    def message(self, paths: InstancePaths) -> str:
        if self.verdict is Verdict.FOREIGN and self.found is not None:
            return (
                f"the database at this instance's exa_connection belongs to {self.found.describe()}, not to "
                f"{paths.redenv}: it was restored from another instance's backup without `redctl preclone`. No job "
                f"starts. Run `redctl postclone --force` to take it over (connections made again, logs cleared, every "
                "job and watcher inactive), or restore this instance's own database"
            )
        if self.verdict is Verdict.RESTORE:
            found = _describe(self.found)
            return f"the database was replaced by a clone of {found}; restoring from {folder.folder(paths)}"
        return f"the database is {paths.redenv}'s own ({self.mine.describe()})"


@dataclass
class Context:
    session: DbSession
    config: Config
    paths: InstancePaths
    secret: str
    mine: InstanceIdentity
    saved: OwnedState | None  # None: taken over without a preclone (`postclone --force`)
    suspended: bool | None  # the saved suspend state; None: leave it


def assess(session: DbSession, paths: InstancePaths, secret: str) -> Assessment:
    mine = local_identity(paths, secret)
    found = database_identity(session)
    if folder.pending(paths):
        began = folder.progress(paths) is not None
        if began or found is None or not mine.owns(found):
            return Assessment(Verdict.RESTORE, mine, found)
        return Assessment(Verdict.OWN, mine, found)  # saved, but the database was not replaced (yet)
    if found is not None and not mine.owns(found):
        return Assessment(Verdict.FOREIGN, mine, found)
    return Assessment(Verdict.OWN, mine, found)


def restore(
    session: DbSession,
    config: Config,
    paths: InstancePaths,
    secret: str,
    *,
    without_preclone: bool = False,
    hook: Hook | None = None,
) -> list[str]:
    """Run (or finish) the restore; the steps done by this call, each with what it did."""
    with _locked(paths):
        mine = local_identity(paths, secret, create_id=True)
        if not folder.pending(paths):
            if not without_preclone:
                raise folder.PrecloneError(f"nothing to restore: no preclone is pending in {folder.folder(paths)}")
            # asked again under the lock: a restore that held it (JMON's) may have made the database ours meanwhile,
            # and taking our own database over would set every job and watcher inactive
            found = database_identity(session)
            if found is not None and mine.owns(found):
                raise folder.PrecloneError(
                    f"the database is {paths.redenv}'s own ({found.describe()}), restored meanwhile: nothing taken over"
                )
            _begin_takeover(paths)
        saved = folder.read(paths)
        owned = OwnedState.from_json(saved.files["owned.json"])
        raw = saved.files["suspend.json"].get("suspended")
        suspended = None if raw is None else bool(raw)
        if not saved.files["identity.json"]:
            owned_state: OwnedState | None = None  # taken over without a preclone: nothing of ours to put back
        else:
            owned_state = owned
        context = Context(session, config, paths, secret, mine, owned_state, suspended)
        progress = folder.progress(paths) or {"cutoff": time.time(), "done": []}
        resumed = bool(progress["done"]) and progress.get("by") != _this_process()
        if not progress["done"]:
            log.warning(
                "clone restore of %s began (the database was replaced; cut-off %s)", paths.redenv, _when(progress)
            )
        progress["by"] = _this_process()
        folder.save_progress(paths, progress)
        report = []
        for step in STEPS:
            if step in progress["done"] and not (resumed and step in DATABASE_STEPS):
                continue
            if hook is not None:
                hook(step, "before")
            said = _STEP_WORK[step](context, float(progress["cutoff"]))
            if hook is not None:
                hook(step, "after")
            if step != "archive" and step not in progress["done"]:  # archived, the progress file went with the folder
                progress["done"].append(step)
                folder.save_progress(paths, progress)
            log.warning("clone restore step %s done: %s", step, said)
            report.append(f"{step}: {said}")
        unblock(paths)
        log.warning("clone restore of %s complete: the database is this instance's now", paths.redenv)
        return report


def _this_process() -> str:
    """This process, told apart from any other that ever ran on the machine (pid and start time: pids are reused)."""
    try:
        started = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{os.getpid()}@{started}"


# -- the steps ------------------------------------------------------------------------------------------------------
def _discard_spools(context: Context, cutoff: float) -> str:
    """Every spool of the instance drops the rows stamped before the cut-off (core.db.rowwriter): SCHED's run log,
    JMON's statistics, and the LOG_MESSAGES rows of DBLS, SENDMAIL and SENDFILE."""
    path = context.paths.tmp / CLONE_CUTOFF_FILE
    write_atomically(path, [f"{cutoff}\n".encode()], mode=0o600)
    return f"spooled log rows stamped before {_when({'cutoff': cutoff})} are discarded ({path})"


def _log_files(context: Context, _cutoff: float) -> str:
    """Every log file under log/ and log/DB/ (the links to today's files stay; writers open the files anew)."""
    removed = 0
    paths = context.paths
    candidates = [p for p in paths.log.iterdir() if p.is_file()] if paths.log.is_dir() else []
    candidates += [p for p in paths.log_db.rglob("*") if p.is_file()] if paths.log_db.is_dir() else []
    for path in candidates:
        if path.is_symlink():
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return f"{removed} file(s) removed under {paths.log} and {paths.log_db}"


def _activation(context: Context, _cutoff: float) -> str:
    changes = apply_owned_rows(context.session, context.saved or OwnedState())
    return "; ".join(changes) or "no application schema"


def _roles(context: Context, _cutoff: float) -> str:
    if context.saved is None:
        return "kept as in the clone (no preclone)"
    return "; ".join(apply_role_members(context.session, context.saved.roles)) or "memberships as saved already"


def _connections(context: Context, _cutoff: float) -> str:
    """db_install's work: the contract brought up to date, CONNECTION objects made from config and secret."""
    connections = service_connections(context.config, context.paths, Secret(context.secret))
    report = install(context.session, (), connections)
    return "; ".join(report.connections) or "no connection configured"


def _database_logs(context: Context, _cutoff: float) -> str:
    return "emptied " + ", ".join(clear_logs(context.session))


def _suspend_state(context: Context, _cutoff: float) -> str:
    marker = context.paths.suspend_marker
    if context.suspended is None:
        return "left as it is"
    if context.suspended:
        marker.touch(exist_ok=True)
        return "suspended, as when saved"
    marker.unlink(missing_ok=True)
    return "not suspended, as when saved"


def _identity(context: Context, _cutoff: float) -> str:
    write_identity(context.session, context.mine)
    context.session.commit()
    return context.mine.describe()


def _archive(context: Context, _cutoff: float) -> str:
    destination = folder.archive(context.paths)
    return f"saved state moved to {destination}" if destination else "archived already"


_STEP_WORK: dict[str, Callable[[Context, float], str]] = {
    "discard_spools": _discard_spools,
    "log_files": _log_files,
    "activation": _activation,
    "roles": _roles,
    "connections": _connections,
    "database_logs": _database_logs,
    "suspend_state": _suspend_state,
    "identity": _identity,
    "archive": _archive,
}


def _begin_takeover(paths: InstancePaths) -> None:
    """`postclone --force` without a preclone: an empty saved state (every job and watcher inactive)."""
    folder.write(
        paths,
        {"identity.json": {}, "owned.json": OwnedState().to_json(), "suspend.json": {"suspended": None}},
        force=False,
    )


@contextmanager
def _locked(paths: InstancePaths) -> Iterator[None]:
    """One restore at a time (JMON's and an operator's postclone)."""
    with exclusive_lock(paths.tmp / "preclone.lock"):
        yield


def _describe(identity: InstanceIdentity | None) -> str:
    return identity.describe() if identity is not None else "a database without an instance identity"


def _when(progress: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(progress["cutoff"])))


__all__ = ["STEPS", "Assessment", "Verdict", "assess", "restore"]
