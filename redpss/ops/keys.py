"""Naming a job or watcher: `APP1.17`, or `17` when only one schema has that id (command line, API, mail)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from redpss.core.errors import UsageError

if TYPE_CHECKING:
    from redpss.core.db import DbSession

_KEY = re.compile(r"(?:(?P<schema>[A-Za-z][A-Za-z0-9_]*)\.)?(?P<id>\d+)")


class UnknownObject(UsageError):
    """The job or watcher named does not exist (the API answers 404)."""


VIEWS = {
    "JOB": ("REDSYS.ALL_ADM_JOBS", "JOB_ID", "JOB_NAME"),
    "WATCHER": ("REDSYS.ALL_ADM_WATCHER", "WATCHER_ID", "WATCHER_NAME"),
}


def resolve(session: DbSession, kind: str, text: str) -> tuple[str, int, str]:
    """(schema, id, name) of the job/watcher `text` names; UsageError when it is unknown or ambiguous."""
    match = _KEY.fullmatch(text.strip())
    noun = kind.lower()
    if not match:
        raise UsageError(f"{text!r} is not a {noun} id: write SCHEMA.ID (e.g. APP1.17) or ID")
    view, id_column, name_column = VIEWS[kind]
    rows = session.fetchall(
        f"SELECT SCHEMA_NAME, {name_column} FROM {view} WHERE {id_column} = {{id!d}}",  # noqa: S608 - constants
        {"id": int(match["id"])},
    )
    if match["schema"]:
        rows = [r for r in rows if str(r[0]).upper() == match["schema"].upper()]
    if not rows:
        raise UnknownObject(
            f"no {noun} {text} in any registered schema (see redctl list_db_{'jobs' if kind == 'JOB' else 'watcher'})"
        )
    if len(rows) > 1:
        schemas = ", ".join(f"{r[0]}.{match['id']}" for r in rows)
        raise UsageError(f"{noun} id {match['id']} exists in several schemas; name one: {schemas}")
    return str(rows[0][0]).upper(), int(match["id"]), str(rows[0][1])
