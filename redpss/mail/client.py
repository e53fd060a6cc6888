"""Handing a mail to SENDMAIL from another RED-PSS process (SCHED's job alerts, MAIL2CMD's replies, SENDFILE).

Depends on the core only (the wire client and the services registry), so a caller imports no part of the SENDMAIL
daemon. The mail is SENDMAIL's once this returns: it answers after the mail is on disk, and retries the relay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from redpss.core.config import Config
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import BlockingClient, Code, WireError
from redpss.sql.udf.pss_client import MAIL_ACCEPT_TIMEOUT

SUBMIT_TIMEOUT = 30.0  # seconds for connect and hello; the acknowledgement: MAIL_ACCEPT_TIMEOUT (pss_client's too)
MAX_RECIPIENTS = 100
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?")


def recipient_list(value: object) -> tuple[str, ...]:
    """The recipients of a `to` field (a list, or one string separated by commas) as SENDMAIL accepts them;
    ValueError naming what is wrong. A caller checks before it does work for a mail SENDMAIL would refuse."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[,;]", value) if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError('"to" must name at least one recipient: a list of addresses or one comma-separated string')
    addresses = tuple(v.strip() for v in value)
    if len(addresses) > MAX_RECIPIENTS:
        raise ValueError(f'"to" names {len(addresses)} recipients; at most {MAX_RECIPIENTS} per mail')
    for address in addresses:
        if not _ADDRESS.fullmatch(address):
            raise ValueError(f"recipient {address[:80]!r} is not a mail address like name@example.com")
    return addresses


class MailNotAccepted(OSError):
    """SENDMAIL refused the mail or could not be reached; the text says which and why. `permanent`: the mail
    itself was refused (a bad address, subject or attachment), so sending it again cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def submit_mail(
    config: Config,
    paths: InstancePaths,
    to: Sequence[str] | str,
    subject: str,
    body: str,
    *,
    attachments: Sequence[str] = (),
    schema: str | None = None,
    client: str = "RED-PSS",
) -> str:
    """Hand a mail to SENDMAIL; its mail_id once it is spooled, or MailNotAccepted.

    `attachments`: files below the instance's data/ folder (SENDMAIL copies them into its spool)."""
    address = service_spec("sendmail").address(config, paths)
    assert isinstance(address, tuple)
    fields: dict[str, object] = {
        "to": to if isinstance(to, str) else list(to),
        "subject": subject,
        "body": body,
        "attachments": list(attachments),
    }
    if schema is not None:
        fields["schema"] = schema
    try:
        with BlockingClient(address, instance_secret(paths, create=False), client, SUBMIT_TIMEOUT) as sendmail:
            # given up on after 30 s on a busy disk, a mail SENDMAIL then spooled counted as not taken: sent again
            sendmail.sock.settimeout(MAIL_ACCEPT_TIMEOUT)
            reply = sendmail.request_durable("mail", **fields)
    except WireError as exc:
        raise MailNotAccepted(
            f"SENDMAIL at {address[0]}:{address[1]} did not take the mail: {exc}",
            permanent=exc.code == Code.BAD_REQUEST,  # SENDMAIL's answer to a mail it will never take
        ) from None
    return str(reply["mail_id"])
