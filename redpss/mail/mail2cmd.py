"""The MAIL2CMD daemon (optional, [redctl] mail2cmd_enabled): operators drive an instance by mail.

An SMTP listener (aiosmtpd, in the daemon's own event loop) on mail2cmd_host:mail2cmd_port takes mails; each is
judged by the rules of mail2cmd_rules (allow-listed sender, its shared secret in the body, an allow-listed command as
the subject, no shell syntax). A refused mail gets a 550 reply at the SMTP level and a WARNING line, no mail back (a
forged sender must not turn MAIL2CMD into a source of backscatter). An accepted one is answered 250, its command runs
through the operations layer (redpss.ops) one at a time, and the result goes back to the sender through SENDMAIL.

What an unauthenticated peer can cost is bounded: a mail is at most MAX_MAIL_BYTES, a session times out after
SESSION_TIMEOUT seconds of silence, and at most MAX_SESSIONS sessions are open at once (more are closed at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import logging
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.entry import run_instance_daemon
from redpss.core.errors import RedpssError, StartupError
from redpss.core.paths import InstancePaths
from redpss.core.services import service_spec
from redpss.mail.client import MailNotAccepted, submit_mail
from redpss.mail.mail2cmd_rules import Command, Refused, RulesError, Sender, authorise, load_rules
from redpss.mail.mail2cmd_run import run_command
from redpss.ops.instance import Instance

log = logging.getLogger("redpss.mail2cmd")

MAX_MAIL_BYTES = 256 * 1024
SESSION_TIMEOUT = 30.0
MAX_SESSIONS = 20


class _Handler:
    """aiosmtpd's hooks: every mail is judged in handle_DATA; what passes is queued for the command worker."""

    def __init__(self, service: Mail2CmdService) -> None:
        self.service = service

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = session.peer[0] if session.peer else "?"
        content = envelope.original_content or envelope.content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        subject = str(message.get("Subject", ""))[:200]
        try:
            sender, command = authorise(self.service.senders, str(envelope.mail_from or ""), message)
        except Refused as exc:
            self.service.refused += 1
            log.warning("refused a mail from %s (envelope %r, subject %r): %s", peer, envelope.mail_from, subject, exc)
            return f"550 5.7.1 refused: {exc}"[:500]
        log.info("mail from %s (%s): running %r", sender.address, peer, str(command))
        self.service.idle.clear()
        self.service.queue.put_nowait((sender, command, subject))
        return "250 2.0.0 accepted, the result comes by mail"


class Mail2CmdService(Service):
    name = "mail2cmd"
    tick_interval = 5.0
    drain_timeout = service_spec("mail2cmd").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        self.senders: dict[str, Sender] = {}
        self.queue: asyncio.Queue[tuple[Sender, Command, str]] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.sessions = 0
        self.refused = self.ran = 0
        self.idle = asyncio.Event()  # set while no command runs and none waits
        self.idle.set()
        self.instance = Instance(paths, config, client="MAIL2CMD")

    async def start(self) -> None:
        # aiosmtpd logs every SMTP command of every session (and each probe's connect) at INFO: our lines suffice.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        await self.reload_rules()
        redctl = self.config.redctl
        handler = _Handler(self)
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.BaseProtocol:
            """aiosmtpd's protocol for a new session, or one that closes it when MAX_SESSIONS are open already."""
            from aiosmtpd.smtp import SMTP  # noqa: PLC0415 - only the daemon loads aiosmtpd

            if self.sessions >= MAX_SESSIONS:
                log.warning("more than %d SMTP sessions at once; closing a new one", MAX_SESSIONS)
                return _Closing()
            self.sessions += 1
            smtp = SMTP(
                handler,
                data_size_limit=MAX_MAIL_BYTES,
                hostname="mail2cmd",
                ident="RED-PSS MAIL2CMD",
                timeout=SESSION_TIMEOUT,
                loop=loop,
            )
            original = smtp.connection_lost

            def lost(exc: Exception | None) -> None:
                self.sessions -= 1
                original(exc)

            smtp.connection_lost = lost  # type: ignore[method-assign,assignment]
            return smtp

        try:
            self.server = await loop.create_server(protocol, redctl.mail2cmd_host, redctl.mail2cmd_port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {redctl.mail2cmd_host}:{redctl.mail2cmd_port} ([redctl] mail2cmd_host/port): "
                f"{exc.strerror or exc}"
            ) from exc
        self.spawn(self._work_loop(), "commands")
        log.info("%d sender(s) allow-listed", len(self.senders))

    async def reload_rules(self) -> None:
        try:
            self.senders = await asyncio.to_thread(load_rules, self.paths)
        except RulesError as exc:
            if self.server is None:
                raise StartupError(str(exc)) from None
            log.error("allow list not reloaded, the previous one stays: %s", exc)

    async def reload(self) -> None:
        await self.reload_rules()

    async def _work_loop(self) -> None:
        while True:
            sender, command, subject = await self.queue.get()
            try:
                await asyncio.to_thread(self._run_and_reply, sender, command, subject)
            except Exception:  # a bug in one command must not end the worker: the queue behind it would be lost
                log.exception("%s for %s failed; going on with the next command", command, sender.address)
            finally:
                if self.queue.empty():
                    self.idle.set()

    def _run_and_reply(self, sender: Sender, command: Command, subject: str) -> None:
        result = run_command(self.instance, command, by=f"MAIL2CMD ({sender.address})")
        self.ran += 1
        log.info("%s for %s: %s", command, sender.address, result.splitlines()[0][:300])
        try:
            submit_mail(self.config, self.paths, [sender.address], f"Re: {subject}", result + "\n", client="MAIL2CMD")
        except (MailNotAccepted, RedpssError) as exc:  # SENDMAIL away, or this instance's secret unusable
            log.error("the reply to %s for %r was not sent: %s", sender.address, str(command), exc)

    def status(self) -> str:
        return f"{self.ran} command(s) run, {self.refused} mail(s) refused, {len(self.senders)} sender(s) allowed"

    def healthy(self) -> bool:
        return self.server is not None

    async def drain(self) -> None:
        """Stop listening; the command under way and those queued finish and are answered."""
        await self._close()
        await self.idle.wait()

    async def abort(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5.0)


class _Closing(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return Mail2CmdService(config, paths)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("mail2cmd", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
