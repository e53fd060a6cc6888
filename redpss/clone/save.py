"""`redctl preclone`: save what belongs to this instance before its database is replaced by another's backup.

Allowed while the daemons run: it only reads the database. The database must carry this instance's identity (else
there would be nothing of ours to save: a database without one gets it from `redctl db_install`, a clone is finished
with `redctl postclone` first). CONNECTION objects are not saved (Exasol does not give their passwords back): the
restore makes them again from the config and the instance secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redpss.clone import folder
from redpss.clone.identity import database_identity, local_identity
from redpss.clone.state import read_owned
from redpss.core.db import DbSession
from redpss.core.paths import InstancePaths


@dataclass(frozen=True)
class Precloned:
    path: Path
    jobs: int  # rows of ADM_JOBS saved, over every schema
    watchers: int
    members: int  # grantees of the REST roles
    suspended: bool


def preclone(session: DbSession, paths: InstancePaths, secret: str, *, force: bool) -> Precloned:
    mine = local_identity(paths, secret)
    found = database_identity(session)
    if found is None:
        raise folder.PrecloneError(
            "the database has no instance identity yet, so a clone of it could not be told apart: "
            "run `redctl db_install` once, then `redctl preclone`"
        )
    if not mine.owns(found):
        raise folder.PrecloneError(
            f"the database belongs to {found.describe()}, not to {paths.redenv}: it is a clone already; "
            "finish it with `redctl postclone` before saving this instance's state"
        )
    owned = read_owned(session)
    suspended = paths.suspend_marker.exists()
    path = folder.write(
        paths,
        {
            "identity.json": {"database": found.as_dict(), "instance": mine.as_dict()},
            "owned.json": owned.to_json(),
            "suspend.json": {"suspended": suspended},
        },
        force=force,
    )
    rows = owned.rows
    return Precloned(
        path,
        sum(len(v) for k, v in rows.items() if k.endswith(".ADM_JOBS")),
        sum(len(v) for k, v in rows.items() if k.endswith(".ADM_WATCHER")),
        sum(len(v) for v in owned.roles.values()),
        suspended,
    )
