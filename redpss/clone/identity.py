"""Which instance a database belongs to: REDSYS.INSTANCE_IDENTITY against what the instance knows of itself.

The instance knows its name (REDENV), its server, its random id ($REDENV_HOME/etc/instance.id, created by
`redctl db_install`) and its secret. A database whose row names another id is a clone of another instance's
database. The id decides, not the name or the fingerprint: a renewed secret changes the fingerprint but not whose
database it is (db_install then rewrites the row), and two instances called TST1 on two servers are still two.
Without a local id (an instance installed before the identity existed) the name and server decide.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass

from redpss.core.db import DatabaseQueryError, DbSession
from redpss.core.db.contract import IDENTITY_TABLE, current_version
from redpss.core.durable import write_atomically
from redpss.core.paths import InstancePaths

IDENTITY_VERSION = 6  # the REDSYS migration that created the table (006_instance_identity.sql)
ID_FILE = "instance.id"


@dataclass(frozen=True)
class InstanceIdentity:
    name: str
    server: str
    instance_id: str  # "" when the instance has no id file yet
    fingerprint: str

    def describe(self) -> str:
        return f"instance {self.name} on {self.server} (id {self.instance_id or 'unknown'})"

    def owns(self, other: InstanceIdentity) -> bool:
        """`other` (the database's row) names this instance."""
        if self.instance_id and other.instance_id:
            return self.instance_id == other.instance_id
        return (self.name, self.server) == (other.name, other.server)

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "server": self.server,
            "instance_id": self.instance_id,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> InstanceIdentity:
        return cls(str(data["name"]), str(data["server"]), str(data["instance_id"]), str(data["fingerprint"]))


def secret_fingerprint(secret: str) -> str:
    """A one-way digest of the instance secret: says whether two secrets are equal, reveals nothing of them."""
    return hashlib.sha256(b"redpss instance secret\0" + secret.encode()).hexdigest()[:32]


def local_identity(paths: InstancePaths, secret: str, *, create_id: bool = False) -> InstanceIdentity:
    """This instance's identity; with `create_id` a missing id file is created (db_install)."""
    path = paths.etc / ID_FILE
    instance_id = path.read_text().strip() if path.exists() else ""
    if not instance_id and create_id:
        import secrets  # noqa: PLC0415 - only when the id is made

        instance_id = secrets.token_hex(16)
        write_atomically(path, [f"{instance_id}\n".encode()])
    return InstanceIdentity(paths.redenv, socket.gethostname(), instance_id, secret_fingerprint(secret))


def database_identity(session: DbSession) -> InstanceIdentity | None:
    """The database's row; None when REDSYS predates the identity or no row was written yet."""
    if current_version(session, "REDSYS") < IDENTITY_VERSION:
        return None
    try:
        rows = session.fetch_dicts(
            f"SELECT INSTANCE_NAME, SERVER_NAME, INSTANCE_ID, SECRET_FINGERPRINT FROM {IDENTITY_TABLE}"  # noqa: S608
        )
    except DatabaseQueryError as exc:
        if not exc.missing_object:
            raise  # a timeout or a missing privilege says nothing of the row: the caller holds back and tries again
        return None
    if not rows:
        return None
    row = rows[0]
    return InstanceIdentity(
        str(row["INSTANCE_NAME"]), str(row["SERVER_NAME"]), str(row["INSTANCE_ID"]), str(row["SECRET_FINGERPRINT"])
    )


def write_identity(session: DbSession, identity: InstanceIdentity) -> None:
    """Make `identity` the database's one row (in the session's transaction; the caller commits)."""
    session.execute(f"DELETE FROM {IDENTITY_TABLE}")  # noqa: S608 - constant name
    session.execute(
        f"INSERT INTO {IDENTITY_TABLE} (INSTANCE_NAME, SERVER_NAME, INSTANCE_ID, SECRET_FINGERPRINT, WRITTEN_AT) "  # noqa: S608
        "VALUES ({name}, {server}, {instance_id}, {fingerprint}, CURRENT_TIMESTAMP)",
        identity.as_dict(),
    )


def refusal_to_install(session: DbSession, mine: InstanceIdentity, *, preclone_pending: bool) -> str | None:
    """Why db_install must change nothing in this database, or None. A database naming another instance is a
    clone of it, or `exa_connection` points at that instance's own database: installing there would point its
    CONNECTION objects at this instance, with secrets derived from ours (its scripts then reach our DBLS and JEXEC),
    and upgrade its REDSYS. A database naming none while a preclone is pending may be the clone the preclone was
    made for (claimed, it looked like this instance's own, and the saved state was never put back)."""
    found = database_identity(session)
    if found is not None and not mine.owns(found):
        return (
            f"db_install: nothing changed: the database belongs to {found.describe()}, not to this instance. "
            "If it was restored from that instance's backup, run `redctl postclone` (docs/operations.md, Cloning a "
            "database); if [redctl] exa_connection in red_params.conf names that instance's database by mistake, "
            "correct it"
        )
    if found is None and preclone_pending:
        return (
            "db_install: nothing changed: a preclone is pending and the database names no instance, so it may be "
            "the clone the preclone was made for; start the instance (JMON restores the saved state) or run "
            "`redctl postclone`"
        )
    return None


def claim_for_install(session: DbSession, mine: InstanceIdentity) -> str:
    """db_install's last step, after `refusal_to_install` found none: write this instance's row where the database
    has none or an older one of ours (a renewed secret or server name is brought up to date)."""
    found = database_identity(session)
    if found == mine:
        return f"identity: {mine.describe()}"
    write_identity(session, mine)
    session.commit()
    return f"identity: written, {mine.describe()}"
