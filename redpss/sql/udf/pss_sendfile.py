"""PSS_SENDFILE(schema_name, source_name, where_condition, file_format, recipients, sftp_target): a table or view of
the database exported by SENDFILE to CSV or PARQUET and delivered by mail (recipients, separated by commas) or to an
sFTP target named in the instance's etc/sendfile.conf (one of the two, the other NULL). `where_condition` (NULL for
all rows) narrows the rows. Returns the request's id once SENDFILE has it on disk; the export and the delivery follow,
and their outcome is a row in `schema_name`'s LOG_MESSAGES (SOURCE 'SENDFILE'): INFO when delivered, ERROR with the
reason otherwise (docs/sendfile.md). A request SENDFILE refuses (an unknown target, a bad name) fails the statement
with the reason. The secret is read from the CONNECTION object REDSYS_SENDFILE and never appears in SQL text.

db_install embeds what follows the SCRIPT CODE marker after pss_client.py (scripts.py); the lines before it only
let linters and tests read this file as a module.
"""

from __future__ import annotations

from typing import Any

from redpss.sql.udf.pss_client import PssClient, PssError, client_for_connection

exa: Any = None  # in the database: the script container's global `exa`

# ---- SCRIPT CODE ----
_sendfile: dict[str, PssClient] = {}  # "client" -> this statement's connection to SENDFILE, opened at its first row


def run(ctx: Any) -> str:
    if not ctx.schema_name:
        raise ValueError("PSS_SENDFILE: the schema name is missing (the first argument names the application schema)")
    fields: dict[str, Any] = {
        "schema": ctx.schema_name,
        "source": ctx.source_name or "",
        "format": ctx.file_format or "CSV",
    }
    if ctx.where_condition:
        fields["where"] = ctx.where_condition
    if ctx.recipients:
        fields["to"] = ctx.recipients
    if ctx.sftp_target:
        fields["sftp"] = ctx.sftp_target
    if "client" not in _sendfile:
        _sendfile["client"] = client_for_connection(exa.get_connection("REDSYS_SENDFILE"), client="PSS_SENDFILE")
    try:
        reply = _sendfile["client"].request("sendfile", **fields)
    except PssError as exc:
        raise PssError(f"PSS_SENDFILE: {exc}", exc.code) from None
    if reply.get("durable") is not True:
        raise PssError("PSS_SENDFILE: SENDFILE acknowledged the request without saying it is kept")
    return str(reply["id"])


def cleanup() -> None:
    client = _sendfile.pop("client", None)
    if client is not None:
        client.close()
