"""A mail request from the wire, checked and turned into the message that goes to the relay.

A request is accepted whole or refused whole with a message naming the bad field and what is allowed. Attachments
are named, not sent: a wire line is capped, so the request carries the path of a file below the instance's data/
folder (SENDFILE's exports land in data/work). The path is resolved and must stay below data/ (no `..`, no symlink
leading out, so etc/red_params.conf or the instance secret can never be mailed), the file is opened without
following a final symlink and must be a regular file; its bytes are copied into the spooled message at acceptance,
so the sender may delete the file once the acknowledgement came.
"""

from __future__ import annotations

import email.policy
import mimetypes
import os
import re
import stat
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from redpss.core.paths import SENDFILE_WORK
from redpss.mail.client import recipient_list
from redpss.mail.spoolstat import MAIL_FOLDER

MAX_SUBJECT = 998 - len("Subject: ")  # RFC 5322 line limit
MAX_BODY = 4 * 1024 * 1024
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # all attachments of one mail together (a common relay limit)
_SCHEMA = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")


class MailError(ValueError):
    """The request is refused as a whole; the text names what is wrong and what is allowed."""


@dataclass(frozen=True)
class Attachment:
    name: str  # the file name the recipient sees
    data: bytes


@dataclass(frozen=True)
class MailRequest:
    recipients: tuple[str, ...]
    subject: str
    body: str
    attachments: tuple[Attachment, ...]
    schema: str | None  # the database schema that sent it: its LOG_MESSAGES gets the row if it dies


def _recipients(value: object) -> tuple[str, ...]:
    try:
        return recipient_list(value)
    except ValueError as exc:
        raise MailError(str(exc)) from None


def is_one_line(value: str) -> bool:
    """Whether `value` can be a header's text: no line break of any kind (the set str.splitlines knows: \\v, \\f,
    \\x1c-\\x1e, \\x85, U+2028 and U+2029 besides CR and LF) and no other control character but tab. The email
    library refuses the others when the mail is built, which was a traceback and an INTERNAL reply."""
    return not any((ord(c) < 32 and c != "\t") or c in "\x7f\x85\u2028\u2029" for c in value)


def _text(request: dict[str, Any], key: str, limit: int, one_line: bool) -> str:
    value = request.get(key, "")
    if not isinstance(value, str):
        raise MailError(f'"{key}" must be a string')
    if len(value) > limit:
        raise MailError(f'"{key}" is {len(value)} characters long; at most {limit}')
    if one_line and not is_one_line(value):
        raise MailError(f'"{key}" must be one line of text (no line breaks or control characters)')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MailError(f'"{key}" is not valid text: a lone surrogate at character {exc.start + 1}') from None
    return value


def _confined(data_root: Path, name: object, own_client: bool) -> Path:
    """The attachment's real path, below data/ of the instance; MailError saying why not otherwise. SENDFILE's exports
    (data/work/sendfile) only for RED-PSS's own clients (SENDFILE itself): a database session could otherwise mail
    itself another partner's export while it is sent."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise MailError("an attachment is the path of a file below the instance's data/ folder (a string)")
    root = data_root.resolve()
    candidate = Path(name) if Path(name).is_absolute() else root / name
    real = Path(os.path.realpath(candidate))
    if real != root and root not in real.parents:
        raise MailError(f"attachment {name[:200]!r} is not below {root}: only files of the data/ folder are sent")
    if (root / MAIL_FOLDER) in (real, *real.parents):  # other senders' mails, dead letters, MAIL2CMD's commands
        raise MailError(f"attachment {name[:200]!r} lies in data/{MAIL_FOLDER}, the mail daemons' own files: not sent")
    if not own_client and (root / SENDFILE_WORK) in (real, *real.parents):
        raise MailError(f"attachment {name[:200]!r} lies in data/{SENDFILE_WORK}, SENDFILE's exports: not sent")
    if not is_one_line(real.name):
        raise MailError(f"attachment {name[:200]!r}: its file name, shown to the recipient, has a control character")
    return real


def _read_attachment(path: Path, shown: str, budget: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MailError(f"attachment {shown!r} does not exist") from None
    except OSError as exc:
        raise MailError(f"attachment {shown!r} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MailError(f"attachment {shown!r} is not a regular file")
        if info.st_size > budget:
            raise MailError(
                f"attachment {shown!r} is {info.st_size} bytes; the attachments of one mail may hold "
                f"{MAX_ATTACHMENT_BYTES} bytes together (send a smaller export, or deliver it by sFTP)"
            )
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(budget + 1)
    except OSError as exc:
        raise MailError(f"attachment {shown!r} cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > budget:
        raise MailError(f"attachment {shown!r} grew beyond the limit of {MAX_ATTACHMENT_BYTES} bytes while read")
    return data


def parse_request(request: dict[str, Any], data_root: Path, *, own_client: bool = False) -> MailRequest:
    """Check a `mail` request and read its attachments; MailError for the first thing that is not acceptable."""
    recipients = _recipients(request.get("to"))
    subject = _text(request, "subject", MAX_SUBJECT, one_line=True)
    body = _text(request, "body", MAX_BODY, one_line=False)
    schema = request.get("schema")
    if schema is not None and not (isinstance(schema, str) and _SCHEMA.fullmatch(schema)):
        raise MailError('"schema" must be the sending schema\'s name (an Exasol identifier) or absent')
    names = request.get("attachments") or []
    if not isinstance(names, list) or len(names) > MAX_ATTACHMENTS:
        raise MailError(f'"attachments" must be a list of at most {MAX_ATTACHMENTS} paths below data/')
    attachments: list[Attachment] = []
    budget = MAX_ATTACHMENT_BYTES
    for name in names:
        path = _confined(data_root, name, own_client)
        data = _read_attachment(path, str(name)[:200], budget)
        budget -= len(data)
        attachments.append(Attachment(path.name, data))
    return MailRequest(
        recipients, subject, body, tuple(attachments), schema.upper() if isinstance(schema, str) else None
    )


def build_message(mail: MailRequest, sender: str, domain: str) -> bytes:
    """The RFC 5322 message as it goes to the relay (CRLF line ends, attachments in base64)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = ", ".join(mail.recipients)
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(mail.body)
    for attachment in mail.attachments:
        kind = mimetypes.guess_type(attachment.name)[0] or "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.name)
    return message.as_bytes()
