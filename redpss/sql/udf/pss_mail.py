"""PSS_MAIL(schema_name, recipients, subject, body, attachments): a mail from the database, handed to SENDMAIL.

`recipients` is one or more addresses separated by commas; `attachments` (NULL for none) names files below the
instance's data/ folder, separated by commas, e.g. 'work/orders.csv' (a wire line is capped, so files travel by
name and SENDMAIL reads them). Returns the mail's id once SENDMAIL has it on disk; the relay gets it afterwards,
retried while it is away (docs/mail.md). A refusal (a bad address, a file outside data/) fails the statement with
SENDMAIL's reason. If the relay refuses the mail for good, `schema_name`'s LOG_MESSAGES gets an ALERT row. The
secret is read from the CONNECTION object REDSYS_SENDMAIL and never appears in SQL text.

db_install embeds what follows the SCRIPT CODE marker after pss_client.py (scripts.py); the lines before it only
let linters and tests read this file as a module.
"""

from __future__ import annotations

from typing import Any

from redpss.sql.udf.pss_client import PssClient, PssError, client_for_connection

exa: Any = None  # in the database: the script container's global `exa`

# ---- SCRIPT CODE ----
_open: dict[str, PssClient] = {}  # "client" -> this statement's connection to SENDMAIL, opened at its first row


def run(ctx: Any) -> str:
    if not ctx.schema_name:
        raise ValueError("PSS_MAIL: the schema name is missing (the first argument names the application schema)")
    if not ctx.recipients:
        raise ValueError("PSS_MAIL: no recipient (the second argument: addresses separated by commas)")
    attachments = [name.strip() for name in (ctx.attachments or "").split(",") if name.strip()]
    if "client" not in _open:
        _open["client"] = client_for_connection(exa.get_connection("REDSYS_SENDMAIL"), client="PSS_MAIL")
    try:
        reply = _open["client"].send_mail(
            ctx.recipients, ctx.subject or "", ctx.body or "", attachments, schema=ctx.schema_name
        )
    except PssError as exc:
        raise PssError(f"PSS_MAIL: {exc}", exc.code) from None
    return str(reply["mail_id"])


def cleanup() -> None:
    client = _open.pop("client", None)
    if client is not None:
        client.close()
