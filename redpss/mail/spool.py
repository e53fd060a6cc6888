"""SENDMAIL's durable spool: a mail is on disk (file and folder fsync'd) before it is acknowledged.

Each mail is one file `spool/<id>.mail` (a JSON envelope line, then the message bytes), written under a temporary
name, fsync'd, renamed into place and the folder fsync'd: after `put` returns, a crash or kill -9 cannot lose it,
and a half-written file never looks like a mail (temporary names are removed at start). Retry state lives beside
it in `<id>.state`, replaced atomically on each failed try; it is not fsync'd, since losing it only means that the
mail is tried again sooner, except once it narrows the recipients (the relay took the mail for some of them): from
then on every state of that mail is fsync'd, or after a power cut the others would get it a second time. A mail
the relay took is removed; one it refused for good moves to dead/ with the reply.

Delivery is at least once: only a crash between the relay's "250 OK" and the removal of the file sends a mail twice.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redpss.core.durable import TMP_PREFIX, fsync_folder, write_atomically
from redpss.mail.spoolstat import MAIL_SUFFIX, REPLY_SUFFIX, STATE_SUFFIX, accepted_at, read_state


@dataclass
class SpooledMail:
    """One waiting mail as the relay loop sees it; the message bytes stay on disk until it is sent."""

    mail_id: str
    sender: str
    recipients: list[str]
    schema: str | None
    subject: str
    accepted: float
    attempts: int = 0
    next_try: float = 0.0
    last_error: str = ""
    alerted: bool = False
    narrowed: bool = False  # the relay took it for some recipients: every later state is fsync'd (module's text)
    extra: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "next_try": self.next_try,
            "last_error": self.last_error,
            "alerted": self.alerted,
            "recipients": self.recipients,
        }


class Spool:
    """The spool/ and dead/ folders of one instance. New mails may be put from any thread; a waiting mail's files
    change under `lock` (the relay round and the age check may touch the same mail's state at once)."""

    def __init__(self, spool: Path, dead: Path) -> None:
        self.folder = spool
        self.dead = dead
        self.lock = threading.Lock()
        for folder in (spool, dead):
            folder.mkdir(parents=True, exist_ok=True, mode=0o750)

    @staticmethod
    def new_id() -> str:
        return f"{time.time_ns() // 1000:016d}-{secrets.token_hex(4)}"

    def put(self, mail: SpooledMail, message: bytes) -> None:
        """Store a new mail durably: when this returns, it survives a crash."""
        envelope = {
            "sender": mail.sender,
            "recipients": mail.recipients,
            "schema": mail.schema,
            "subject": mail.subject,
        }
        header = json.dumps(envelope, separators=(",", ":")).encode() + b"\n"
        write_atomically(self.folder / f"{mail.mail_id}{MAIL_SUFFIX}", [header, message], sync=True)

    def message(self, mail_id: str) -> bytes:
        with (self.folder / f"{mail_id}{MAIL_SUFFIX}").open("rb") as file:
            file.readline()
            return file.read()

    def save_state(self, mail: SpooledMail) -> None:
        """The mail's retry state, fsync'd once it names fewer recipients than the envelope (see the module's text):
        a later state written without fsync could come back empty after a power cut, and the envelope's recipients
        that have the mail already would get it again."""
        with self.lock:
            if (self.folder / f"{mail.mail_id}{MAIL_SUFFIX}").exists():  # not sent or buried meanwhile
                state = json.dumps(mail.state()).encode()
                write_atomically(self.folder / f"{mail.mail_id}{STATE_SUFFIX}", [state], sync=mail.narrowed)

    def remove(self, mail_id: str) -> None:
        """The relay took the mail: forget it (the folder is fsync'd, so a restart does not send it again)."""
        with self.lock:
            self._remove(mail_id)

    def _remove(self, mail_id: str) -> None:
        (self.folder / f"{mail_id}{STATE_SUFFIX}").unlink(missing_ok=True)
        (self.folder / f"{mail_id}{MAIL_SUFFIX}").unlink(missing_ok=True)
        fsync_folder(self.folder)

    def bury(self, mail: SpooledMail, reply: str, partial: bool = False) -> Path:
        """Move the mail (or, when `partial`, a copy for the refused recipients) to dead/ with the relay's reply."""
        source = self.folder / f"{mail.mail_id}{MAIL_SUFFIX}"
        # a copy per try that refused some recipients: a later try refusing others must not replace the first copy
        name = f"{mail.mail_id}-refused-{mail.attempts}" if partial else mail.mail_id
        target = self.dead / f"{name}{MAIL_SUFFIX}"
        text = (
            f"recipients: {', '.join(mail.recipients)}\nsubject: {mail.subject}\nschema: {mail.schema or '-'}\n"
            f"attempts: {mail.attempts}\nrelay reply: {reply}\n"
        )
        with self.lock:
            write_atomically(self.dead / f"{name}{REPLY_SUFFIX}", [text.encode()], sync=False)
            if partial:
                write_atomically(target, [source.read_bytes()], sync=True)
            else:
                source.replace(target)
                (self.folder / f"{mail.mail_id}{STATE_SUFFIX}").unlink(missing_ok=True)
                fsync_folder(self.dead)
                fsync_folder(self.folder)
        return target

    def load(self) -> list[SpooledMail]:
        """Every waiting mail, oldest first; leftovers of an interrupted write are removed (never acknowledged)."""
        mails = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(TMP_PREFIX):
                path.unlink(missing_ok=True)
                continue
            if path.suffix == STATE_SUFFIX and not path.with_suffix(MAIL_SUFFIX).exists():
                path.unlink(missing_ok=True)  # its mail was sent or buried just before a crash
                continue
            if path.suffix != MAIL_SUFFIX:
                continue
            mail = self._read(path)
            if mail is not None:
                mails.append(mail)
        return mails

    def _read(self, path: Path) -> SpooledMail | None:
        mail_id = path.name[: -len(MAIL_SUFFIX)]
        try:
            with path.open("rb") as file:
                envelope = json.loads(file.readline())
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                path.replace(self.dead / path.name)
            return None
        state = read_state(path.with_suffix(STATE_SUFFIX))
        recipients = list(state.get("recipients") or envelope["recipients"])
        return SpooledMail(
            mail_id,
            str(envelope["sender"]),
            recipients,
            envelope.get("schema"),
            str(envelope.get("subject", "")),
            accepted_at(mail_id) or path.stat().st_mtime,
            attempts=int(state.get("attempts", 0)),
            next_try=float(state.get("next_try", 0.0)),
            last_error=str(state.get("last_error", "")),
            alerted=bool(state.get("alerted", False)),
            narrowed=recipients != list(envelope["recipients"]),
        )
