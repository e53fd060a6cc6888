"""WebSocket commands beyond execute and fetch: prepared statements and metadata; checked fetch arguments.

protocol.py hands every command named in COMMANDS to `handle`, which returns the responseData and whether the
session attributes go with the reply. Malformed arguments are a clear error reply (sqlCode 22002), never a
traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from redpss.devdb import metadata, prepared
from redpss.devdb.errors import DATA_EXCEPTION, DevDbError

if TYPE_CHECKING:
    from redpss.devdb.session import Session

PREPARED_COMMANDS = ("createPreparedStatement", "executePreparedStatement", "closePreparedStatement")
COMMANDS = frozenset((*PREPARED_COMMANDS, *metadata.COMMANDS))


def handle(session: Session, request: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(responseData, attributes) of one of COMMANDS."""
    command = str(request.get("command"))
    if command == "createPreparedStatement":
        sql = request.get("sqlText")
        if not isinstance(sql, str):
            raise DevDbError("createPreparedStatement needs sqlText (a string)", DATA_EXCEPTION)
        return prepared.create(session, sql), session.attributes()
    if command == "executePreparedStatement":
        return prepared.execute(session, request), session.attributes()
    if command == "closePreparedStatement":
        prepared.close(session, request.get("statementHandle"))
        return None, session.attributes()
    return metadata.run(session, command, request), session.attributes()


def fetch_arguments(request: dict[str, Any]) -> tuple[int, int, int]:
    """(resultSetHandle, startPosition, numBytes) of a fetch request, each checked to be a whole number."""
    return (
        _whole(request.get("resultSetHandle"), "resultSetHandle"),
        _whole(request.get("startPosition", 0), "startPosition"),
        _whole(request.get("numBytes", 5 << 20), "numBytes"),
    )


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DevDbError(f"fetch: {name} must be a non-negative number, got {value!r}", DATA_EXCEPTION)
    return value
