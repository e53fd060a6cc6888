"""The SENDMAIL daemon: accepts mails on sendmail_host:sendmail_port, spools them, relays them to the SMTP server.

Requests (JSON lines, see redpss.core.wire and docs/mail.md): `mail` {to, subject, body, attachments?, schema?}
answered with a durable acknowledgement once the mail is in the spool (file and folder
fsync'd); `ping`; `status` (the spool's figures). One long-lived task relays what is due, one SMTP session per
round; a mail the relay could not take waits with a doubling delay (sendmail_retry_delay up to
sendmail_retry_max_delay), across restarts; a 5xx moves it to dead/ with an ALERT line and a LOG_MESSAGES row of its
schema; one that has waited longer than sendmail_alert_age raises one ALERT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.rowwriter import LOG_MESSAGE_IDS, RowWriter
from redpss.core.db.sqltext import timestamp
from redpss.core.entry import run_instance_daemon
from redpss.core.logging import ALERT
from redpss.core.paths import InstancePaths
from redpss.core.secret import accepted_secrets
from redpss.core.services import service_spec
from redpss.core.wire import (
    Code,
    Connection,
    JsonLineServer,
    Limits,
    Message,
    RequestError,
    durable,
    unknown_op,
)
from redpss.mail.message import MAX_ATTACHMENT_BYTES, MailError, build_message, parse_request
from redpss.mail.relay import DEAD, RETRY, SENT, Outcome, RelaySettings, deliver_round
from redpss.mail.spool import Spool, SpooledMail
from redpss.mail.spoolstat import dead_folder, describe, spool_folder

log = logging.getLogger("redpss.mail")

MAX_REQUEST_BYTES = 8 * 1024 * 1024  # a mail's body travels on the wire; attachments by reference
ROUND_MAILS = 200  # mails sent over one SMTP session before the next round (keeps a round's duration bounded)
COMPOSING_AT_ONCE = 2  # new mails read and spooled at the same time; more callers wait their turn
OPS = ("mail", "ping", "status")


def retry_delay(attempts: int, first: float, longest: float) -> float:
    """Wait after the `attempts`-th failed try: `first`, doubling each time, never longer than `longest`."""
    return float(min(longest, first * 2 ** min(max(attempts - 1, 0), 30)))


class SendmailService(Service):
    name = "sendmail"
    tick_interval = 5.0
    drain_timeout = service_spec("sendmail").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        self.relay = RelaySettings.from_config(config)
        self.spool = Spool(spool_folder(paths), dead_folder(paths))
        session = DbSession(DbSettings.from_config(config, client_name="RED-PSS SENDMAIL"))
        self.rows = RowWriter(
            "SENDMAIL dead letters", paths.tmp / "sendmail-messages.spool", session, row_ids=LOG_MESSAGE_IDS
        )
        self.server: JsonLineServer | None = None
        self.waiting: dict[str, SpooledMail] = {}
        self.wake = asyncio.Event()
        # mails composed at once: each reads up to 25 MiB of attachments and holds them encoded, in several copies;
        # unbounded, six callers with 20 MiB each took the peak RSS to ~970 MiB (two at a time: ~460)
        self.composing = asyncio.Semaphore(COMPOSING_AT_ONCE)
        self.accepted = self.sent = self.dead = 0
        self.relay_error = ""
        self.spool_error = ""
        self.domain = self.relay.sender.rpartition("@")[2] or socket.getfqdn()
        self.context: ssl.SSLContext | None = None
        self.relay_task: asyncio.Task[None] | None = None
        self.closing = False

    async def start(self) -> None:
        for mail in await asyncio.to_thread(self.spool.load):
            self.waiting[mail.mail_id] = mail
        if self.waiting:
            log.info("%d mail(s) waiting in %s from before the start", len(self.waiting), self.spool.folder)
        if self.relay.encryption != "PLAIN" and not self.relay.verify:
            log.warning(
                "the relay's certificate is NOT verified ([redctl] sendmail_smtp_verify = false): anyone on the way "
                "to %s:%d can read the mails and the relay password",
                self.relay.host,
                self.relay.port,
            )
        self.context = self.relay.tls_context() if self.relay.encryption != "PLAIN" else None
        self.server = JsonLineServer(
            self.handle,
            accepted_secrets(self.paths, "SENDMAIL"),
            "SENDMAIL",
            limits=Limits(max_message=MAX_REQUEST_BYTES),
            durable_ops=("mail",),
        )
        self.rows.start()
        redctl = self.config.redctl
        await self.listen(self.server, redctl.sendmail_host, redctl.sendmail_port, "[redctl] sendmail_host/port")
        self.relay_task = self.spawn(self._relay_loop(), "relay")
        log.info("relaying to %s as %s", self.relay.describe(), self.relay.sender)

    # -- the service port -----------------------------------------------------------------------------------------
    async def handle(self, request: Message, connection: Connection) -> Message:
        op = request["op"]
        if op == "mail":
            return await self._accept(request, connection)
        if op == "ping":
            return self.ping_reply()
        if op == "status":
            return {"ok": True, **self.figures()}
        return unknown_op(op, OPS)

    async def _accept(self, request: Message, connection: Connection) -> Message:
        try:
            async with self.composing:  # each holds its attachments and the encoded mail in memory
                mail, message = await asyncio.to_thread(self._spool_new, request, connection.own_client)
        except MailError as exc:
            log.warning("refused a mail from %s at %s: %s", connection.client, connection.peer, exc)
            raise RequestError(f"mail refused, nothing was spooled: {exc}") from None
        except OSError as exc:
            self._spool_unwritable(exc, "a new mail was refused")
            raise RequestError(
                f"SENDMAIL cannot write its spool ({exc.strerror or exc}); the mail was not kept, send it again",
                Code.REFUSED,
            ) from None
        self.spool_error = ""
        self.waiting[mail.mail_id] = mail
        self.accepted += 1
        self.wake.set()
        log.info(
            "mail %s from %s accepted for %s: %s (%d bytes)",
            mail.mail_id,
            connection.client,
            ", ".join(mail.recipients),
            mail.subject[:100],
            len(message),
            extra={"SCHEMA": mail.schema} if mail.schema else None,
        )
        return durable(mail_id=mail.mail_id, bytes=len(message))

    def _spool_new(self, request: Message, own_client: bool) -> tuple[SpooledMail, bytes]:
        parsed = parse_request(request, self.paths.data, own_client=own_client)
        try:
            message = build_message(parsed, self.relay.sender, self.domain)
        except (ValueError, UnicodeError) as exc:  # what the checks above let through and the email library refuses
            raise MailError(f"the mail cannot be built: {exc}") from None
        mail_id = self.spool.new_id()
        mail = SpooledMail(
            mail_id, self.relay.sender, list(parsed.recipients), parsed.schema, parsed.subject, time.time()
        )
        self.spool.put(mail, message)
        return mail, message

    def _spool_unwritable(self, exc: OSError, what: str) -> None:
        """Say (at ERROR, once until it can be written again) that the spool cannot be written, and what that cost."""
        if not self.spool_error:
            log.error("cannot write the mail spool %s: %s; %s", self.spool.folder, exc, what)
        else:
            log.warning("the mail spool still cannot be written (%s); %s", exc, what)
        self.spool_error = str(exc)

    # -- relaying -------------------------------------------------------------------------------------------------
    async def _relay_loop(self) -> None:
        """Send what is due, then sleep until the next mail is due or a new one arrives; ends when draining."""
        while not self.closing:
            now = time.time()
            due = sorted(
                (m for m in self.waiting.values() if m.next_try <= now), key=lambda m: (m.next_try, m.mail_id)
            )[:ROUND_MAILS]
            if due:
                await asyncio.to_thread(self._round, due)
                continue
            upcoming = min((m.next_try for m in self.waiting.values()), default=now + 60.0)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=max(0.05, upcoming - now))

    def _round(self, due: list[SpooledMail]) -> None:
        by_id = {m.mail_id: m for m in due}
        # the envelope sender is the one configured now: a relay that refused the old one (a setting mended since,
        # then a restart) takes the mails that waited for it (their From: header stays as it was written)
        sender = self.relay.sender
        work = [(m.mail_id, sender, m.recipients, lambda i=m.mail_id: self.spool.message(i)) for m in due]

        def record(mail_id: str, outcome: Outcome) -> None:
            mail = by_id[mail_id]
            try:
                self._settle(mail, outcome)
            except OSError as exc:  # the spool cannot be written: the relay loop goes on, the state held in memory
                self._spool_unwritable(exc, f"mail {mail.mail_id}: its outcome ({outcome.result}) is kept in memory")
            else:
                self.spool_error = ""

        why = deliver_round(self.relay, self.context, work, record)
        if why != self.relay_error:
            if why:
                log.warning("relay problem, %d mail(s) wait: %s", len(self.waiting), why)
            elif self.relay_error:
                log.info("relay %s:%d reachable again", self.relay.host, self.relay.port)
        self.relay_error = why

    def _settle(self, mail: SpooledMail, outcome: Outcome) -> None:
        """Act on one mail's outcome: remove it, bury it, or keep it for a later try.

        What is in memory changes first, so a spool that cannot be written (OSError, raised at the end) never makes
        a mail the relay took go out again, nor one it refused for good.
        """
        extra = {"SCHEMA": mail.schema} if mail.schema else None
        mail.attempts += 1
        if outcome.result == SENT:
            temporary = [r for r, (code, _) in outcome.refused.items() if code < 500]
            permanent = [r for r, (code, _) in outcome.refused.items() if code >= 500]
            failure: OSError | None = None
            if permanent:  # the others got it: a copy for the refused recipients goes to dead/
                replies = "; ".join(f"{r}: {outcome.refused[r][1]}" for r in permanent)
                try:
                    self._bury(SpooledMail(**{**mail.__dict__, "recipients": permanent}), replies, partial=True)
                except OSError as exc:
                    failure = exc
            if temporary:
                mail.recipients = temporary  # the others have it: kept durably, or they would get it again
                mail.narrowed = True
                self._postpone(mail, "; ".join(f"{r}: {outcome.refused[r][1]}" for r in temporary))
            else:
                self.waiting.pop(mail.mail_id, None)
                self.sent += 1
                self.spool.remove(mail.mail_id)  # removing needs no space
            if failure is not None:
                raise failure
            if temporary:
                return
            taken = [r for r in mail.recipients if r not in outcome.refused]
            log.info("mail %s sent to %s", mail.mail_id, ", ".join(taken), extra=extra)
        elif outcome.result == DEAD:
            self._bury(mail, outcome.reply)
        else:
            assert outcome.result == RETRY
            self._postpone(mail, outcome.reply)

    def _postpone(self, mail: SpooledMail, why: str) -> None:
        redctl = self.config.redctl
        delay = retry_delay(mail.attempts, redctl.sendmail_retry_delay, redctl.sendmail_retry_max_delay)
        mail.next_try = time.time() + delay
        mail.last_error = why
        log.info("mail %s not sent (try %d): %s; next try in %.0f s", mail.mail_id, mail.attempts, why, delay)
        self.spool.save_state(mail)

    def _bury(self, mail: SpooledMail, reply: str, partial: bool = False) -> None:
        if not partial:
            self.waiting.pop(mail.mail_id, None)  # refused for good: never offered to the relay again from here
        failure: OSError | None = None
        try:
            kept = f"kept in {self.spool.bury(mail, reply, partial=partial)}"
        except OSError as exc:  # the ALERT still goes out: it is the only trace of this mail's refusal
            failure, kept = exc, f"not kept in dead/: the spool cannot be written ({exc.strerror or exc})"
        self.dead += 1
        text = (
            f"SENDMAIL: mail {mail.mail_id} to {', '.join(mail.recipients)} ({mail.subject[:100]!r}) refused by the "
            f"relay for good: {reply}; {kept}"
        )
        log.log(ALERT, "%s", text, extra={"SCHEMA": mail.schema} if mail.schema else None)
        if mail.schema:
            now = timestamp(time.time())
            row = {"LOG_TIME": now, "LOG_LEVEL": "ALERT", "SOURCE": "SENDMAIL", "MESSAGE": text[:2000]}
            self.rows.append(f"{mail.schema}.LOG_MESSAGES", [row])
        if failure is not None:
            raise failure

    # -- periodic work and status ---------------------------------------------------------------------------------
    async def tick(self, now: float) -> None:
        limit = self.config.redctl.sendmail_alert_age
        for mail in list(self.waiting.values()):
            if not mail.alerted and now - mail.accepted > limit:
                mail.alerted = True  # the ALERT first: a full disk must not keep it back (it is the only sign)
                log.log(
                    ALERT,
                    "SENDMAIL: mail %s to %s has waited %.0f s (more than sendmail_alert_age = %.0f s) after %d "
                    "try/tries: %s",
                    mail.mail_id,
                    ", ".join(mail.recipients),
                    now - mail.accepted,
                    limit,
                    mail.attempts,
                    mail.last_error or "not tried yet",
                    extra={"SCHEMA": mail.schema} if mail.schema else None,
                )
                try:
                    await asyncio.to_thread(self.spool.save_state, mail)
                except OSError as exc:
                    log.warning("mail %s: cannot note that its ALERT was given (%s); a restart gives it again",
                                mail.mail_id, exc)  # fmt: skip

    def figures(self) -> dict[str, Any]:
        waiting = list(self.waiting.values())
        return {
            "waiting": len(waiting),
            "oldest": min((m.accepted for m in waiting), default=None),
            "next_try": min((m.next_try for m in waiting), default=None),
            "accepted": self.accepted,
            "sent": self.sent,
            "dead": self.dead,
            "relay": self.relay.describe(),
            "relay_error": self.relay_error,
            "max_attachment_bytes": MAX_ATTACHMENT_BYTES,
        }

    def status(self) -> str:
        figures = self.figures()
        summary = {
            "count": figures["waiting"],
            "oldest": figures["oldest"],
            "next_try": figures["next_try"],
            "last_error": self.relay_error,
            "dead": self.dead,
            "folder": str(self.spool.folder.parent),
        }
        text = f"{self.sent} sent, {describe(summary)}"
        if self.spool_error:
            text += f"; cannot write the spool: {self.spool_error}"
        return text

    def healthy(self) -> bool:
        """Serving. A spool that cannot be written (a full disk) is reported, not a reason to be restarted: a
        restart frees no space and would soon hit the unit's start limit (see DblsService.healthy)."""
        return self.server is not None

    async def drain(self) -> None:
        """Stop accepting, let a round in progress finish (each mail stays spooled until the relay took it)."""
        await self._close(rows_timeout=10.0, cancel=False)

    async def abort(self) -> None:
        await self._close(rows_timeout=3.0, cancel=True)

    async def _close(self, rows_timeout: float, cancel: bool) -> None:
        self.closing = True
        self.wake.set()
        if self.server is not None:
            await self.server.close()
        if self.relay_task is not None:
            if cancel:
                self.relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.relay_task
        await asyncio.to_thread(self.rows.stop, rows_timeout)


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return SendmailService(config, paths)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("sendmail", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
