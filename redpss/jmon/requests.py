"""Checking the requests on JMON's control socket before anything acts on them.

Every field of every request is checked here, in one place: a wrong type or an unknown field gets an error reply
that names the field, the value and what is allowed, never a traceback in the log (a client that knows the instance
secret can still send anything).
"""

from __future__ import annotations

from typing import Any

from redpss.core.errors import UsageError
from redpss.jmon.schedule import KINDS, Key

ENVELOPE = frozenset({"op", "seq"})  # fields every request may carry (the wire's own)
START_FIELDS = frozenset({"kind", "schema", "id", "force", "by"})
FIELDS: dict[str, frozenset[str]] = {
    "show": frozenset(),
    "stats": frozenset({"reset"}),
    "reload": frozenset(),
    "poll": frozenset(),
    "suspend": frozenset(),
    "resume": frozenset(),
    "start_job": START_FIELDS,
    "start_db_job": START_FIELDS,
    "we_reset": frozenset(),
    "ping": frozenset(),
}
MAX_SCHEMA_LENGTH = 128  # Exasol's identifier limit
MAX_ID = 10**18  # ids are DECIMAL(18,0)
MAX_BY_LENGTH = 200


class RequestError(UsageError):
    """A control request JMON cannot act on; the text goes back to the client as the error reply."""


def operation(message: dict[str, Any]) -> str:
    """The request's op after checking that it is known and carries only the fields it allows."""
    op = message.get("op")
    if not isinstance(op, str) or op not in FIELDS:
        raise RequestError(f"unknown request {_shown(op)}; known: {', '.join(FIELDS)}")
    unknown = sorted(set(message) - FIELDS[op] - ENVELOPE)
    if unknown:
        allowed = ", ".join(sorted(FIELDS[op])) or "none"
        raise RequestError(f"{op}: unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    return op


def flag(message: dict[str, Any], name: str) -> bool:
    """An optional true/false field (absent: false)."""
    value = message.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(f"{message.get('op')}: {name} = {_shown(value)} must be true or false")
    return value


def text(message: dict[str, Any], name: str, limit: int) -> str:
    """An optional text field of at most `limit` characters (absent: empty)."""
    value = message.get(name, "")
    if not isinstance(value, str) or len(value) > limit:
        raise RequestError(f"{message.get('op')}: {name} = {_shown(value)} must be text of at most {limit} characters")
    return value


def job_key(message: dict[str, Any]) -> Key:
    """(kind, SCHEMA, id) of a start request: kind JOB (the default), a schema name, a whole number id."""
    op = message.get("op")
    kind = message.get("kind", "JOB")
    if kind != "JOB":
        allowed = "JOB (watchers run on their own schedule)" if kind in KINDS else "JOB"
        raise RequestError(f"{op}: kind = {_shown(kind)} is not allowed; allowed: {allowed}")
    schema = message.get("schema")
    if not isinstance(schema, str) or not schema or len(schema) > MAX_SCHEMA_LENGTH or not schema.isprintable():
        raise RequestError(f'{op}: schema = {_shown(schema)} must be a schema name, e.g. "APP1"')
    id_ = message.get("id")
    if isinstance(id_, bool) or not isinstance(id_, int) or not 0 <= id_ < MAX_ID:
        raise RequestError(f"{op}: id = {_shown(id_)} must be a whole number of a job id, e.g. 17")
    return ("JOB", schema.upper(), id_)


def _shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short (a hostile client may send megabytes)."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
