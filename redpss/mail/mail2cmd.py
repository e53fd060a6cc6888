"""The MAIL2CMD daemon (optional, [redctl] mail2cmd_enabled): operators drive an instance by mail.

An SMTP listener (aiosmtpd, in the daemon's own event loop) on mail2cmd_host:mail2cmd_port takes mails; each is
judged by the rules of mail2cmd_rules (allow-listed sender, its shared secret in the body, an allow-listed command as
the subject, no shell syntax). A refused mail gets a 550 reply at the SMTP level and a WARNING line, no mail back (a
forged sender must not turn MAIL2CMD into a source of backscatter). An accepted one is kept on disk
(redpss.mail.mail2cmd_spool) and then answered 250, its command runs through the operations layer (redpss.ops) one
at a time, and the result goes back to the sender through SENDMAIL. A command that cannot be kept is answered 451.

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
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.entry import run_instance_daemon
from redpss.core.errors import RedpssError, StartupError
from redpss.core.paths import InstancePaths
from redpss.core.services import service_spec
from redpss.mail.client import MailNotAccepted, submit_mail
from redpss.mail.mail2cmd_rules import (
    Command,
    Refused,
    RulesError,
    Sender,
    authorise,
    load_rules,
    parse_subject,
    replay_key,
)
from redpss.mail.mail2cmd_run import run_command
from redpss.mail.mail2cmd_spool import (
    KEYS_KEPT,
    REPLAY_WINDOW,
    STALE_AFTER,
    CommandSpool,
    Entry,
    NotMarked,
    commands_folder,
)
from redpss.ops.instance import Instance

log = logging.getLogger("redpss.mail2cmd")

MAX_MAIL_BYTES = 256 * 1024
# a command mail's header is a few KiB (gateways' DKIM, ARC and Received lines included); the email package needs
# seconds for a header of thousands of encoded words (14 s at 238 KB), before any sender is checked: parsed in a
# thread, 64 KiB (0.2 s) keeps a few such mails from costing much
MAX_HEADER_BYTES = 64 * 1024
# The same cost hides in a MIME part's header (a parameter list or encoded words of 250 KB: 20-40 s of CPU) and in
# thousands of parts or deep nesting. Before the full parse, a cheap one (compat32 decodes nothing) outlines the mail,
# and one beyond these limits is refused; a command mail is a text, maybe beside its HTML and a signature's images.
MAX_PART_HEADER_BYTES = 8 * 1024
MAX_PARTS = 50
MAX_ENCODED_WORDS = 200  # "=?charset?...?=" in the whole mail: a few in a Subject or a From name
SESSION_TIMEOUT = 30.0
MAX_SESSIONS = 20
# Commands per SMTP session, each counted apart: every command starts the idle timeout again, so without a limit a
# peer sending NOOP every 29 s held one of the MAX_SESSIONS places for good. A gateway delivering many mails in one
# session is answered 421 after COMMAND_LIMIT of them and goes on in a new one.
NOOP_LIMIT = 10
COMMAND_LIMIT = 100
REFUSED_REPLY = "550 5.7.1 refused; the reason is in MAIL2CMD's log"
REPLY_AGAIN_AFTER = 60.0  # seconds: a reply SENDMAIL did not take is offered again after this
PRUNE_EVERY = 600.0  # seconds between removals of the `.done` files older than KEYS_KEPT


@dataclass(frozen=True)
class _Work:
    """A command to run and answer, or (command None) a notice to send about one that is not run."""

    entry: Entry
    command: Command | None
    notice: str = ""


def _header_size(content: bytes) -> int:
    """Bytes before the blank line that ends a mail's header (the whole mail when there is none)."""
    ends = [found for found in (content.find(b"\r\n\r\n"), content.find(b"\n\n")) if found >= 0]
    return min(ends, default=len(content))


def _too_costly(content: bytes) -> str:
    """Why the mail is refused before the email package's full parse, which could take minutes of CPU on it ("": it
    may be parsed). Its outline comes from a compat32 parse, which decodes no header: milliseconds for any mail."""
    if content.count(b"=?") > MAX_ENCODED_WORDS:
        return f"it holds over {MAX_ENCODED_WORDS} encoded words"
    if content.lower().count(b"boundary=") > MAX_PARTS:  # the outline's own parse slows down with nesting
        return f"it has over {MAX_PARTS} MIME parts"
    try:
        outline = email.message_from_bytes(content, policy=email.policy.compat32)
        for number, part in enumerate(outline.walk(), 1):
            if number > MAX_PARTS:
                return f"it has over {MAX_PARTS} MIME parts"
            # the first is the mail itself, whose header has its own limit (MAX_HEADER_BYTES, for gateways' lines)
            if number > 1 and sum(len(k) + len(str(v)) for k, v in part.items()) > MAX_PART_HEADER_BYTES:
                return f"a MIME part's header is over {MAX_PART_HEADER_BYTES} bytes"
    except RecursionError:
        return "its MIME parts are nested too deeply"
    return ""


def _judge(
    senders: dict[str, Sender], envelope_from: str, content: bytes
) -> tuple[str, tuple[Sender, Command, str] | Refused]:
    """The mail's subject, and its sender, command and replay key or why it is refused (handle_DATA, in the judge's
    thread)."""
    if envelope_from.strip().lower() not in senders:  # before any parsing: a stranger's mail costs nothing
        return "", Refused(f"envelope sender {envelope_from[:200]!r} is not allow-listed")
    costly = _too_costly(content)
    if costly:
        return "", Refused(f"{costly}; a command mail is a short text")
    subject = ""
    try:
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        subject = str(message.get("Subject", ""))
        sender, command = authorise(senders, envelope_from, message)
        return subject, (sender, command, replay_key(sender, message, time.time(), REPLAY_WINDOW))
    except Refused as exc:
        return subject, exc
    except Exception as exc:  # the email package's own failures on a crafted mail (RecursionError)
        return subject, Refused(f"the mail cannot be read ({type(exc).__name__})")


class _Handler:
    """aiosmtpd's hooks: every mail is judged in handle_DATA; what passes is kept on disk and queued for the worker."""

    def __init__(self, service: Mail2CmdService) -> None:
        self.service = service

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = session.peer[0] if session.peer else "?"
        content = envelope.original_content or envelope.content or b""
        if _header_size(content) > MAX_HEADER_BYTES:  # before any parsing: see MAX_HEADER_BYTES
            self.service.refused += 1
            log.warning("refused a mail from %s (envelope %r): its header is over %d bytes", peer,
                        envelope.mail_from, MAX_HEADER_BYTES)  # fmt: skip
            return f"552 5.3.4 refused: the header is over {MAX_HEADER_BYTES} bytes; a command mail needs few lines"
        # parsed and judged in a thread of its own: the loop (sessions, the watchdog's pings) never waits for the
        # email package, and mails that take long to judge hold up neither the spool's nor the ticks' threads
        try:
            subject, judged = await asyncio.get_running_loop().run_in_executor(
                self.service.judge, _judge, self.service.senders, str(envelope.mail_from or ""), content
            )
        except RuntimeError:  # stopped meanwhile (the judge takes no more): its mail system sends it again later
            return "421 4.3.2 MAIL2CMD is stopping; try again later"
        if isinstance(judged, Refused):
            self.service.refused += 1
            log.warning(
                "refused a mail from %s (envelope %r, subject %r): %s", peer, envelope.mail_from, subject[:200], judged
            )
            # the reason stays in the log: told to the peer, it showed who is allow-listed and which guess failed
            return REFUSED_REPLY
        sender, command, key = judged
        seen = self.service.seen
        if key in seen:  # its mail system did not see our 250 and sent it again, or a copy: taken, not run again
            log.warning("mail from %s (%s) for %r accepted before (the same Message-ID): not run again",
                        sender.address, peer, str(command))  # fmt: skip
            return "250 2.0.0 accepted before (the same Message-ID); not run again"
        seen[key] = time.time()  # reserved now, on the loop: the same mail in another session finds it at once
        keeping = asyncio.ensure_future(asyncio.to_thread(self.service.spool.accept, sender.address, subject, key))
        try:
            entry = await asyncio.shield(keeping)
        except asyncio.CancelledError:  # the session ended (peer gone, its timeout) before the 250: not accepted
            seen.pop(key, None)
            keeping.add_done_callback(self._forget)
            raise
        except OSError as exc:
            seen.pop(key, None)
            log.error(
                "cannot keep %r from %s in %s (%s); answered 451, its mail system sends it again later",
                str(command),
                sender.address,
                self.service.spool.folder,
                exc,
            )
            return "451 4.3.0 the command cannot be kept now; try again later"
        log.info("mail from %s (%s): running %r", sender.address, peer, str(command))
        self.service.queue_work(_Work(entry, command))
        return "250 2.0.0 accepted, the result comes by mail"

    def _forget(self, keeping: asyncio.Future[Entry]) -> None:
        """A command kept for a session that ended before its 250: its mail system sends the mail again, so this
        copy must neither run now nor after a restart."""
        if not keeping.cancelled() and keeping.exception() is None:
            entry = keeping.result()
            try:
                self.service.spool.forget(entry)
            except OSError as exc:
                log.error("cannot remove %s, kept for a session that ended before its 250: %s", entry.path, exc)


class Mail2CmdService(Service):
    name = "mail2cmd"
    tick_interval = 5.0
    drain_timeout = service_spec("mail2cmd").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        self.senders: dict[str, Sender] = {}
        self.queue: asyncio.Queue[_Work] = asyncio.Queue()
        self.spool = CommandSpool(commands_folder(paths))
        self.seen: dict[str, float] = {}  # keys of the mails accepted within KEYS_KEPT -> when (spool's keys())
        self.next_prune = time.time() + PRUNE_EVERY
        self.kept: dict[Path, Entry] = {}  # replies SENDMAIL did not take, waiting to be offered again
        self.offer_now = False
        self.next_offer = 0.0
        self.server: asyncio.Server | None = None
        self.sessions = 0
        self.refused = self.ran = 0
        self.idle = asyncio.Event()  # set while no command runs and none waits
        self.idle.set()
        self.instance = Instance(paths, config, client="MAIL2CMD")
        # one thread judges mails, one at a time: a peer sending costly mails can use one CPU, not every thread
        self.judge = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail2cmd-judge")

    async def start(self) -> None:
        # aiosmtpd logs every SMTP command of every session (and each probe's connect) at INFO: our lines suffice.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        await self.reload_rules()
        self.seen = await asyncio.to_thread(self.spool.keys, time.time())
        await self._take_left_over()
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
                command_call_limit={"*": COMMAND_LIMIT, "NOOP": NOOP_LIMIT},
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

    def queue_work(self, work: _Work) -> None:
        self.idle.clear()
        self.queue.put_nowait(work)

    async def _take_left_over(self) -> None:
        """Queue what a previous MAIL2CMD accepted and did not answer (see redpss.mail.mail2cmd_spool)."""
        entries, problems = await asyncio.to_thread(self.spool.left_over)
        for problem in problems:
            log.error("a kept command: %s", problem)
        for entry in entries:
            work = self._left_over_work(entry)
            if entry.answered:
                log.info("sending the reply to %s for %r, kept before a restart", entry.sender, entry.subject[:200])
            elif work.command is None:
                log.warning("%s from %s, accepted before a restart: %s", entry.subject[:200], entry.sender, work.notice)
            else:
                log.info("running %r from %s, accepted before a restart", str(work.command), entry.sender)
            self.queue_work(work)

    def _left_over_work(self, entry: Entry) -> _Work:
        accepted = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.accepted))
        if entry.answered:
            return _Work(entry, None, entry.reply)
        if entry.running:
            return _Work(
                entry,
                None,
                f"MAIL2CMD stopped while this command ran (accepted {accepted}); whether it took effect is not known. "
                "Look with the status or show command (or redctl show) before sending it again.",
            )
        waited = time.time() - entry.accepted
        if waited > STALE_AFTER:
            return _Work(
                entry,
                None,
                f"not run: it was accepted {accepted} and waited {waited / 60:.0f} minutes while MAIL2CMD was stopped; "
                "send it again if it is still wanted.",
            )
        try:
            command = parse_subject(entry.subject)
        except Refused as exc:
            return _Work(entry, None, f"not run: {exc}")
        return _Work(entry, command)  # whether its sender may still send it: looked at when it runs (_serve)

    async def _work_loop(self) -> None:
        while True:
            work = await self.queue.get()
            try:
                await asyncio.to_thread(self._serve, work)
            except Exception:  # a bug in one command must not end the worker: the queue behind it would be lost
                log.exception(
                    "%s for %s failed; going on with the next command", work.entry.subject[:200], work.entry.sender
                )
            finally:
                if self.queue.empty():
                    self.idle.set()

    def _serve(self, work: _Work) -> None:
        """Run the command (marked as started first) or take the notice, reply, and forget the command."""
        entry = work.entry
        if work.command is not None and not self._still_allowed(entry.sender, work.command):
            log.warning("%s from %s not run: the sender may no longer send it (etc/mail2cmd.conf was changed since "
                        "the mail was taken)", work.command, entry.sender)  # fmt: skip
            work = _Work(entry, None, f"not run: {entry.sender} may no longer send {work.command.name!r} "
                                      "(etc/mail2cmd.conf)")  # fmt: skip
        if work.command is None:
            result = work.notice
        else:
            try:
                entry = self.spool.started(entry)
            except NotMarked as exc:
                entry = exc.entry
                log.error("%s; after a crash now it would be run again", exc)
            except OSError as exc:  # run all the same: the sender was told it would be
                log.error("cannot mark %s as started (%s); after a kill now it would be run again", entry.path, exc)
            try:
                result = run_command(self.instance, work.command, by=f"MAIL2CMD ({entry.sender})")
            except Exception as exc:  # a bug: the sender hears of it, the traceback is in the log
                log.exception("%s for %s failed", work.command, entry.sender)
                result = f"{work.command} failed inside MAIL2CMD ({type(exc).__name__}); see its log"
            self.ran += 1
            log.info("%s for %s: %s", work.command, entry.sender, result.splitlines()[0][:300])
        subject = "".join(c if c.isprintable() else " " for c in entry.subject[:200])  # SENDMAIL takes one line
        try:
            submit_mail(self.config, self.paths, [entry.sender], f"Re: {subject}", result + "\n", client="MAIL2CMD")
        except MailNotAccepted as exc:
            if exc.permanent:  # SENDMAIL will never take this reply: offering it again would loop for good
                log.error("the reply to %s for %r cannot be sent: %s; it is dropped", entry.sender, subject, exc)
                self.spool.done(entry)
                return
            self._reply_later(entry, result, exc)  # SENDMAIL away
            return
        except RedpssError as exc:  # this instance's secret unusable
            self._reply_later(entry, result, exc)
            return
        self.spool.done(entry)
        self.offer_now = True  # SENDMAIL takes mails again: the kept replies need not wait

    def _still_allowed(self, address: str, command: Command) -> bool:
        """Whether the allow list as it is now lets `address` send `command`: one waiting behind another (or from
        before a restart) may find its sender removed, or the command taken from it, by a reload meanwhile."""
        sender = self.senders.get(address)
        return sender is not None and command.name in sender.commands

    def _reply_later(self, entry: Entry, text: str, why: Exception) -> None:
        """Keep a reply SENDMAIL did not take; tick() offers it again (and a restart does)."""
        if not entry.answered:
            log.error(
                "the reply to %s for %r was not sent: %s; it is kept and offered again",
                entry.sender,
                entry.subject[:200],
                why,
            )
        try:
            entry = self.spool.reply_later(entry, text)
        except OSError as exc:
            log.error("the reply to %s for %r cannot be kept either (%s); it is lost", entry.sender, entry.subject, exc)
            self.spool.done(entry)
            return
        self.kept[entry.path] = entry

    async def tick(self, now: float) -> None:
        """Offer the kept replies again: every REPLY_AGAIN_AFTER seconds, or at once after SENDMAIL took a mail; forget
        the keys of mails accepted before KEYS_KEPT, and their `.done` files every PRUNE_EVERY seconds."""
        for key in [k for k, when in self.seen.items() if when < now - KEYS_KEPT]:
            del self.seen[key]
        if now >= self.next_prune:
            self.next_prune = now + PRUNE_EVERY
            await asyncio.to_thread(self.spool.keys, now)  # removes the old `.done` files
        if self.kept and (self.offer_now or now >= self.next_offer):
            self.offer_now = False
            self.next_offer = now + REPLY_AGAIN_AFTER
            for path in list(self.kept):
                entry = self.kept.pop(path, None)
                if entry is not None:
                    self.queue_work(_Work(entry, None, entry.reply))

    def status(self) -> str:
        return f"{self.ran} command(s) run, {self.refused} mail(s) refused, {len(self.senders)} sender(s) allowed"

    def healthy(self) -> bool:
        return self.server is not None

    async def drain(self) -> None:
        """Stop listening; the command under way and those queued finish and are answered."""
        await self._close()
        await self.idle.wait()
        self.judge.shutdown(wait=False)  # a session still open meanwhile is told 421 for a mail it sends now

    async def abort(self) -> None:
        await self._close()
        self.judge.shutdown(wait=False, cancel_futures=True)

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
