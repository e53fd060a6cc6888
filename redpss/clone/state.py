"""The instance-owned state in the database: read for `redctl preclone`, put back after the restore.

What is instance-owned is the contract's word (redpss.core.db.contract.INSTANCE_OWNED_COLUMNS, API_ROLES): the
activation of each job and watcher, and who holds the REST API's roles. Putting it back is idempotent, so a restore
killed midway and run again ends where an uninterrupted one ends. A job or watcher the saved state does not know
(the other database has it, this instance never had it) is deactivated, and so is a watcher whose target job is
such a job: nothing of the other instance's schedule starts here until an operator switches it on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redpss.core.db import DatabaseError, DatabaseQueryError, DbSession
from redpss.core.db.contract import (
    API_ROLES,
    CLONE_CLEARED_APP_TABLES,
    CLONE_CLEARED_REDSYS_TABLES,
    INSTANCE_OWNED_COLUMNS,
    REDSYS,
    registered_schemas,
)
from redpss.core.db.sqltext import sql_literal

log = logging.getLogger("redpss.clone")


@dataclass
class OwnedState:
    """Rows per "SCHEMA.TABLE": each the key columns and the owned columns; role -> grantees."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "roles": self.roles}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OwnedState:
        return cls(
            {str(k): list(v) for k, v in data["rows"].items()}, {str(k): list(v) for k, v in data["roles"].items()}
        )


def read_owned(session: DbSession) -> OwnedState:
    state = OwnedState()
    for schema in registered_schemas(session):
        for table, (keys, owned) in INSTANCE_OWNED_COLUMNS.items():
            columns = ", ".join((*keys, *owned))
            found = session.fetch_dicts(f"SELECT {columns} FROM {schema}.{table} ORDER BY {keys[0]}")  # noqa: S608
            state.rows[f"{schema}.{table}"] = [{c: _plain(v) for c, v in row.items()} for row in found]
    state.roles = read_role_members(session)
    return state


def read_role_members(session: DbSession) -> dict[str, list[str]]:
    """Grantees of the REST API's roles, from EXA_DBA_ROLE_PRIVS (the operator role's hold of the reader role is
    db_install's and not listed)."""
    members: dict[str, list[str]] = {role: [] for role in API_ROLES}
    for role in API_ROLES:
        rows = session.fetchall(
            "SELECT GRANTEE FROM EXA_DBA_ROLE_PRIVS WHERE GRANTED_ROLE = {role} ORDER BY GRANTEE", {"role": role}
        )
        members[role] = [str(r[0]) for r in rows if str(r[0]) not in API_ROLES]
    return members


def apply_owned_rows(session: DbSession, state: OwnedState) -> list[str]:
    """Set the saved owned columns; deactivate rows the state does not know. Commits; says what changed."""
    done: list[str] = []
    for schema in registered_schemas(session):
        for table, (keys, owned) in INSTANCE_OWNED_COLUMNS.items():
            name = f"{schema}.{table}"
            saved = state.rows.get(name, [])
            for row in saved:
                where = " AND ".join(f"{k} = {sql_literal(row[k])}" for k in keys)
                values = ", ".join(f"{c} = {sql_literal(row[c])}" for c in owned)
                session.execute(f"UPDATE {name} SET {values} WHERE {where}")  # noqa: S608 - our names, quoted values
            unknown = f"UPDATE {name} SET ACTIVE = FALSE WHERE ACTIVE = TRUE"  # noqa: S608
            if saved:
                listed = ", ".join(sql_literal(row[keys[0]]) for row in saved)
                unknown += f" AND {keys[0]} NOT IN ({listed})"
            session.execute(unknown)
            done.append(f"{name}: {len(saved)} saved row(s) applied, the others inactive")
        # A watcher starts its target job whatever the job's ACTIVE says: one this instance knows but whose
        # definition (from the other database) now targets a job the saved state does not know is switched off too.
        known_jobs = ", ".join(sql_literal(row["JOB_ID"]) for row in state.rows.get(f"{schema}.ADM_JOBS", []))
        foreign_target = f"UPDATE {schema}.ADM_WATCHER SET ACTIVE = FALSE WHERE ACTIVE = TRUE"  # noqa: S608
        if known_jobs:
            foreign_target += f" AND TARGET_JOB_ID NOT IN ({known_jobs})"
        session.execute(foreign_target)
    session.commit()
    return done


def apply_role_members(session: DbSession, roles: dict[str, list[str]]) -> list[str]:
    """Grant each role to its saved grantees and revoke it from anyone else; a grantee this database lacks is
    named and skipped (users are the database's, not the instance's). Commits; says what changed."""
    existing_users = {str(r[0]) for r in session.fetchall("SELECT USER_NAME FROM EXA_DBA_USERS")}
    existing_roles = {str(r[0]) for r in session.fetchall("SELECT ROLE_NAME FROM EXA_DBA_ROLES")}
    done: list[str] = []
    current = read_role_members(session)
    for role in API_ROLES:
        wanted = set(roles.get(role, []))
        for grantee in sorted(set(current.get(role, [])) - wanted):
            session.execute(f'REVOKE {role} FROM "{grantee}"')
            done.append(f"revoked {role} from {grantee}")
        for grantee in sorted(wanted - set(current.get(role, []))):
            if grantee not in existing_users | existing_roles:
                log.warning(
                    "%s held %s before the clone but does not exist in this database; not granted", grantee, role
                )
                done.append(f"{grantee} missing: {role} not granted")
                continue
            session.execute(f'GRANT {role} TO "{grantee}"')
            done.append(f"granted {role} to {grantee}")
    session.commit()
    return done


def clear_logs(session: DbSession) -> list[str]:
    """Empty the log tables the clone brought along (contract.CLONE_CLEARED_*). Commits; what was emptied."""
    tables = [f"{REDSYS}.{t}" for t in CLONE_CLEARED_REDSYS_TABLES]
    tables += [f"{s}.{t}" for s in registered_schemas(session) for t in CLONE_CLEARED_APP_TABLES]
    emptied = []
    for table in tables:
        try:
            session.execute(f"DELETE FROM {table}")  # noqa: S608 - contract names
        except DatabaseQueryError as exc:
            if not exc.missing_object:  # a table an older contract did not have yet is passed over
                raise
            continue
        emptied.append(table)
    session.commit()
    return emptied


def _plain(value: Any) -> Any:
    """A JSON value for a database value (DECIMAL ids come back as text or Decimal)."""
    if isinstance(value, bool) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return int(number) if number.is_integer() else number


__all__ = ["DatabaseError", "OwnedState", "apply_owned_rows", "apply_role_members", "clear_logs", "read_owned"]
