"""MAIL2CMD's rules: who may send which command, how a mail proves its sender, and how a subject becomes a command.

The allow list is $REDENV_HOME/etc/mail2cmd.conf (mode 0600: it holds the senders' secrets), one section per sender:

    [sender ops@example.com]
    secret = a-long-random-shared-secret
    commands = status, show, start_job, toggle_db_job, suspend, resume

A From: header is trivially forged, so a mail is taken only when (1) the envelope sender and the From: header are
the same allow-listed address, (2) its text body holds a line `secret: <the sender's secret>` (compared in constant
time, never logged), and (3) its subject is one command of that sender's list with arguments of the form the command
takes. Anything else is refused with a reason that is logged; the secret never appears in a log line or a reply.
Arguments are data: a subject with shell syntax is refused before it is read, and nothing is passed to a shell.
"""

from __future__ import annotations

import configparser
import datetime as dt
import hashlib
import hmac
import re
import stat
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from redpss.core.config.kinds import Secret
from redpss.core.paths import InstancePaths
from redpss.mail.client import recipient_list
from redpss.mail.mail2cmd_spool import FUTURE_SKEW

CONFIG_NAME = "mail2cmd.conf"
MIN_SECRET = 16
_JOB = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}\.[A-Za-z0-9_]{1,128}")  # SCHEMA.ID or SCHEMA.NAME
# Each command and the pattern of each argument it takes (none: it takes none).
COMMANDS: dict[str, tuple[re.Pattern[str], ...]] = {
    "status": (),
    "show": (),
    "start_job": (_JOB,),
    "toggle_db_job": (_JOB,),
    "suspend": (),
    "resume": (),
}
_SHELL = re.compile(r"[;&|$`<>(){}\[\]*?!~\\'\"#=%^\n\r\t\x00]")
_SECRET_LINE = re.compile(r"secret[ \t]*:[ \t]*(\S+)", re.IGNORECASE)  # one stripped line, whole


class RulesError(ValueError):
    """etc/mail2cmd.conf cannot be used; the text names file, section and key."""


class Refused(Exception):
    """The mail is not acted on; the text (logged, never containing a secret) says why."""


@dataclass(frozen=True)
class Sender:
    address: str  # lower case
    secret: Secret
    commands: frozenset[str]


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join((self.name, *self.args))


def rules_file(paths: InstancePaths) -> Path:
    return paths.etc / CONFIG_NAME


def load_rules(paths: InstancePaths) -> dict[str, Sender]:
    """The allow-listed senders by lower-case address; RulesError when the file is missing, open to others or wrong."""
    path = rules_file(paths)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"{path} is missing: MAIL2CMD needs its allow list (see docs/mail2cmd.md)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path} cannot be read: {exc}") from None
    if mode & 0o077:
        raise RulesError(f"{path} has mode {mode:04o} and holds secrets; run: chmod 600 {path}")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise RulesError(f"{path}: {exc}") from None
    senders: dict[str, Sender] = {}
    for section in parser.sections():
        sender = _sender(path, section, parser[section])
        senders[sender.address] = sender
    return senders


def _sender(path: Path, section: str, values: configparser.SectionProxy) -> Sender:
    where = f"{path}: [{section}]"
    if not section.startswith("sender "):
        raise RulesError(f"{where}: unknown section; each section is [sender name@example.com]")
    address = section[len("sender ") :].strip().lower()
    try:
        recipient_list([address])
    except ValueError:
        raise RulesError(f"{where}: {address!r} is not a mail address") from None
    unknown = sorted(set(values) - {"secret", "commands"})
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {', '.join(unknown)}; known: secret, commands")
    secret = values.get("secret", "")
    if len(secret) < MIN_SECRET or any(c.isspace() for c in secret):
        raise RulesError(f"{where} secret: at least {MIN_SECRET} characters without spaces (value not shown)")
    commands = frozenset(c.strip() for c in values.get("commands", "").split(",") if c.strip())
    wrong = sorted(commands - set(COMMANDS))
    if wrong or not commands:
        raise RulesError(f"{where} commands: {', '.join(wrong) or 'none given'}; allowed: {', '.join(COMMANDS)}")
    return Sender(address, Secret(secret), commands)


def _text_body(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    if body is None:
        return ""
    try:
        return str(body.get_content())
    except (LookupError, ValueError):
        return ""


def authorise(senders: dict[str, Sender], envelope_from: str, message: EmailMessage) -> tuple[Sender, Command]:
    """The sender and the command a mail asks for; Refused saying why not."""
    header = [address.lower() for _, address in getaddresses(message.get_all("From", []))]
    envelope = envelope_from.strip().lower()
    if len(header) != 1 or not header[0]:
        raise Refused(f"the From: header names {len(header)} addresses; exactly one is needed")
    sender = senders.get(header[0])
    if sender is None:
        raise Refused(f"sender {header[0]!r} is not allow-listed")
    if envelope != sender.address:
        raise Refused(f"forged sender: From: {header[0]!r} but the envelope sender is {envelope[:120]!r}")
    found = secret_lines(_text_body(message))
    if len(found) != 1 or not hmac.compare_digest(found[0].encode(), sender.secret.reveal().encode()):
        raise Refused(f"sender {sender.address}: the secret line is missing or wrong")
    command = parse_subject(str(message.get("Subject", "")))
    if command.name not in sender.commands:
        raise Refused(f"sender {sender.address}: command {command.name!r} is not on its list")
    return sender, command


def replay_key(sender: Sender, message: EmailMessage, now: float, window: float) -> str:
    """The mail's key for telling it again (sender and Message-ID, hashed); Refused when it has no Message-ID or its
    Date is more than `window` seconds old (or far ahead): a copy of a command mail, found in a mailbox or an
    archive, must not run its command again whenever someone sends it."""
    message_id = str(message.get("Message-ID", "")).strip()
    if not message_id:
        raise Refused(f"sender {sender.address}: the mail has no Message-ID; a command mail needs one")
    try:
        dated = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        raise Refused(f"sender {sender.address}: the mail has no Date a command can be judged by") from None
    sent = dated.timestamp() if dated.tzinfo else dated.replace(tzinfo=dt.UTC).timestamp()
    if sent < now - window:
        raise Refused(f"sender {sender.address}: the mail is dated {dated}, over {window / 60:.0f} minutes ago; "
                      "a command is taken fresh only (a copy sent again is refused)")  # fmt: skip
    if sent > now + FUTURE_SKEW:
        raise Refused(f"sender {sender.address}: the mail is dated {dated}, ahead of this server's clock")
    return hashlib.sha256(f"{sender.address}\0{message_id}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def secret_lines(body: str) -> list[str]:
    """The secrets of the body's `secret: ...` lines, looked at line by line.

    One pattern over the whole body with MULTILINE took time growing with the square of the body's size for a body
    of blank lines (its `\\s*` ran over line breaks from every line start): 15 s for 64 KiB, minutes for the
    256 KiB a mail may have, while the daemon's event loop, and with it the watchdog, stood still.
    """
    return [m.group(1) for line in body.splitlines() if (m := _SECRET_LINE.fullmatch(line.strip()))]


def parse_subject(subject: str) -> Command:
    """`start_job APP1.17` -> Command; Refused for shell syntax, an unknown command or arguments of the wrong form."""
    text = " ".join(subject.split(" ")).strip()
    for prefix in ("re:", "fwd:", "fw:"):
        if text.lower().startswith(prefix):
            raise Refused("a reply or forward is not a command; write a new mail")
    shell = _SHELL.search(text)
    if shell:
        raise Refused(f"subject {text[:120]!r} holds shell syntax ({shell.group()!r}); commands are words only")
    words = text.split()
    if not words:
        raise Refused("the subject is empty; it names the command, e.g. status")
    name, args = words[0].lower(), tuple(words[1:])
    patterns = COMMANDS.get(name)
    if patterns is None:
        raise Refused(f"{name[:60]!r} is not a command; known: {', '.join(COMMANDS)}")
    if len(args) != len(patterns) or not all(p.fullmatch(a) for p, a in zip(patterns, args, strict=True)):
        form = " ".join((name, *("SCHEMA.JOB" for _ in patterns)))
        raise Refused(f"{name} takes the form {form!r}, not {text[:120]!r}")
    return Command(name, args)
