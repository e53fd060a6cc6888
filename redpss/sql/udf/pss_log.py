"""PSS_LOG(schema_name, log_level, message): a log line of the database to DBLS, buffered per statement.

The lines of one statement's rows travel in buffers (pss_client.LogBuffer) and cleanup() sends the rest and waits
until DBLS has them on disk, so a statement that succeeded has every line logged; a failure of DBLS fails it.
Returns 1 per line, so `SELECT SUM(REDSYS.PSS_LOG(...)) FROM t` counts the lines. The secret is read from the
CONNECTION object REDSYS_DBLS and never appears in SQL text.

db_install embeds what follows the SCRIPT CODE marker after pss_client.py (scripts.py); the lines before it only
let linters and tests read this file as a module.
"""

from __future__ import annotations

from typing import Any

from redpss.sql.udf.pss_client import LEVELS, LogBuffer, client_for_connection

exa: Any = None  # in the database: the script container's global `exa`

# ---- SCRIPT CODE ----
_open: dict[str, LogBuffer] = {}  # "buffer" -> this statement's buffer, opened at its first line


def _log_buffer() -> LogBuffer:
    if "buffer" not in _open:
        client = client_for_connection(exa.get_connection("REDSYS_DBLS"), client="PSS_LOG")
        user = getattr(exa.meta, "current_user", None) or "DB"
        _open["buffer"] = LogBuffer(client, source=f"{user}/session-{exa.meta.session_id}")
    return _open["buffer"]


def run(ctx: Any) -> int:
    level = (ctx.log_level or "").upper()
    if level not in LEVELS:
        raise ValueError(f"PSS_LOG: log level {ctx.log_level!r} is not one of {', '.join(LEVELS)}")
    if not ctx.schema_name:
        raise ValueError("PSS_LOG: the schema name is missing (the first argument names the application schema)")
    _log_buffer().add(ctx.schema_name, level, ctx.message or "")
    return 1


def cleanup() -> None:
    buffer = _open.pop("buffer", None)
    if buffer is not None:
        try:
            buffer.flush()
        finally:
            buffer.client.close()
