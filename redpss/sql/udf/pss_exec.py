"""PSS_EXEC(action_name, args): runs the script cmd/<action_name> through JEXEC and returns how it ended.

`args` is split into words as a POSIX shell splits them but never run by a shell (as an ACTION job's COMMAND);
NULL means no arguments. The result is one VARCHAR: a first line `exit=<code> status=<OK|FAILED|TIMEOUT>
seconds=<duration>`, then the tail of the output (docs/db-contract.md). A refusal (an action outside cmd/, not
executable) or an unreachable JEXEC fails the statement with JEXEC's reason. The run's timeout is JEXEC's default
(3600 s). The secret is read from the CONNECTION object REDSYS_JEXEC and never appears in SQL text.

db_install embeds what follows the SCRIPT CODE marker after pss_client.py (scripts.py); the lines before it only
let linters and tests read this file as a module.
"""

from __future__ import annotations

from typing import Any

from redpss.sql.udf.pss_client import PssClient, PssError, client_for_connection

exa: Any = None  # in the database: the script container's global `exa`

# ---- SCRIPT CODE ----
import shlex  # noqa: E402 - the script's own imports follow the marker: they are part of the body

ACTION_TIMEOUT = 3600.0
_open: dict[str, PssClient] = {}  # "client" -> this statement's connection to JEXEC, opened at its first row


def run(ctx: Any) -> str:
    if not ctx.action_name:
        raise ValueError("PSS_EXEC: the action is missing (the first argument names a script below cmd/)")
    try:
        words = shlex.split(ctx.args or "")
    except ValueError as exc:
        raise ValueError(f"PSS_EXEC: the arguments {ctx.args!r} cannot be split into words: {exc}") from None
    if "client" not in _open:
        # connecting and the hello wait as long as any client's (a JEXEC that hangs must not hold the statement an
        # hour); run_action sets its own limits for the run
        _open["client"] = client_for_connection(exa.get_connection("REDSYS_JEXEC"), client="PSS_EXEC")
    try:
        reply = _open["client"].run_action(ctx.action_name, words, timeout=ACTION_TIMEOUT)
    except PssError as exc:
        raise PssError(f"PSS_EXEC {ctx.action_name}: {exc}", exc.code) from None
    exit_code = reply.get("exit_code")
    return (
        f"exit={'-' if exit_code is None else exit_code} status={reply.get('status')} "
        f"seconds={reply.get('duration')}\n{reply.get('tail') or ''}"
    )


def cleanup() -> None:
    client = _open.pop("client", None)
    if client is not None:
        client.close()
