"""The instance-owned state in the database: read for `redctl preclone`, put back after the restore.

What is instance-owned is the contract's word (redpss.core.db.contract.INSTANCE_OWNED_COLUMNS, API_ROLES): the
activation of each job and watcher, and who holds the REST API's roles. Putting it back is idempotent, so a restore
killed midway and run again ends where an uninterrupted one ends. A job or watcher the saved state does not know
(the other database has it, this instance never had it, or its id now names another definition: the name differs)
is deactivated, and so is a watcher whose target job is such a job: nothing of the other instance's schedule starts
here until an operator switches it on.
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
    INSTANCE_OWNED_MATCH,
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
            columns = ", ".join((*keys, *INSTANCE_OWNED_MATCH.get(table, ()), *owned))
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
    """Set the saved owned columns where the row is still the one saved (same id and name); deactivate every other
    row. Commits; says what changed."""
    done: list[str] = []
    for schema in registered_schemas(session):
        same_jobs = ""  # a condition on ADM_JOBS naming the jobs that are still the ones saved
        for table, (keys, owned) in INSTANCE_OWNED_COLUMNS.items():
            name = f"{schema}.{table}"
            saved = state.rows.get(name, [])
            # a preclone of an older version saved no names: its rows are matched by their ids alone
            matched = [(*keys, *(c for c in INSTANCE_OWNED_MATCH.get(table, ()) if c in row)) for row in saved]
            same = [
                " AND ".join(_same(c, row[c]) for c in columns) for row, columns in zip(saved, matched, strict=True)
            ]
            put_back = 0
            for row, where in zip(saved, same, strict=True):
                values = ", ".join(f"{c} = {sql_literal(row[c])}" for c in owned)
                put_back += session.execute(f"UPDATE {name} SET {values} WHERE {where}").rowcount()  # noqa: S608
            unknown = f"UPDATE {name} SET ACTIVE = FALSE WHERE ACTIVE = TRUE"  # noqa: S608 - our names
            if same:
                unknown += " AND NOT (" + " OR ".join(f"({where})" for where in same) + ")"
                if table == "ADM_JOBS":
                    same_jobs = " OR ".join(f"({where})" for where in same)
            switched_off = session.execute(unknown).rowcount()
            done.append(
                f"{name}: {put_back} of {len(saved)} saved row(s) put back; {switched_off} other row(s) switched off"
                + (
                    f" ({len(saved) - put_back} saved id(s) name another definition now)"
                    if put_back < len(saved)
                    else ""
                )
            )
        # A watcher starts its target job whatever the job's ACTIVE says: one whose definition (from the other
        # database) now targets a job that is not one of this instance's saved jobs is switched off too.
        foreign_target = f"UPDATE {schema}.ADM_WATCHER SET ACTIVE = FALSE WHERE ACTIVE = TRUE"  # noqa: S608
        if same_jobs:
            saved_jobs = f"SELECT JOB_ID FROM {schema}.ADM_JOBS WHERE {same_jobs}"  # noqa: S608 - our names, literals
            foreign_target += f" AND TARGET_JOB_ID NOT IN ({saved_jobs})"
        session.execute(foreign_target)
    session.commit()
    return done


def _same(column: str, value: Any) -> str:
    """`column` holds `value`, true or false even where NULL is involved (inside NOT (...), a NULL would keep the row
    out of both the put-back rows and the switched-off ones)."""
    if value is None:
        return f"{column} IS NULL"
    return f"({column} IS NOT NULL AND {column} = {sql_literal(value)})"


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
