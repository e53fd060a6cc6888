"""MAIL2CMD with the whole instance running (start_trace: devdb, SCHED, JMON, SENDMAIL, MAIL2CMD) and a real relay.

Mails go in over SMTP (smtplib to MAIL2CMD's aiosmtpd listener); the replies come out through SENDMAIL to the aiosmtpd
relay, as an operator's would. A refused mail is answered 550 at the SMTP level, logged with its reason, and gets no
reply mail; the secret never appears in the log.
"""

from __future__ import annotations

import email.policy
import json
import shutil
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest

from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.mail.mail2cmd import NOOP_LIMIT
from redpss.mail.mail2cmd_spool import STALE_AFTER, CommandSpool, commands_folder
from tests.support.instance_runner import RunningInstance, add_job, instance_config
from tests.support.smtp_relay import SmtpRelay
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

OPS = "ops@example.com"
SECRET = "s3cret-for-ops-0123456789"
RULES = f"""[sender {OPS}]
secret = {SECRET}
commands = status, start_job

[sender dba@example.com]
secret = another-secret-0123456789
commands = status, show, start_job, toggle_db_job, suspend, resume
"""


@pytest.fixture
def running(instance: InstancePaths, tmp_path: Path) -> Iterator[tuple[RunningInstance, SmtpRelay]]:
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        keys = {**relay.config(), "mail2cmd_enabled": "true", "mail2cmd_port": str(free_port())}
        instance.config_file.write_text(instance_config({"redctl": keys}))
        rules = instance.etc / "mail2cmd.conf"
        rules.write_text(RULES)
        rules.chmod(0o600)
        inst = RunningInstance(instance, tmp_path)
        try:
            inst.start()
            inst.redctl("db_register", "APP1")
            yield inst, relay
        finally:
            inst.close()


def command_mail(subject: str, body: str, sender: str = OPS, **headers: str) -> EmailMessage:
    """A mail as a mail program writes it: Date and Message-ID included (`headers` replace them; "" leaves one out)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "redpss@tst1.example"
    message["Subject"] = subject
    given = {name.replace("_", "-"): value for name, value in headers.items()}
    for name, value in {"Date": formatdate(localtime=True), "Message-ID": make_msgid(), **given}.items():
        if value:
            message[name] = value
    message.set_content(body)
    return message


def send(
    inst: RunningInstance, subject: str, body: str, sender: str = OPS, envelope: str | None = None, **headers: str
) -> str:
    """Send a command mail; MAIL2CMD's answer to its DATA."""
    message = command_mail(subject, body, sender, **headers)
    with smtplib.SMTP("127.0.0.1", int(inst.config.redctl.mail2cmd_port), timeout=30) as smtp:
        smtp.ehlo()
        code, answer = smtp.mail(envelope or sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, answer, envelope or sender)
        smtp.rcpt("redpss@tst1.example")
        code, answer = smtp.data(message.as_bytes(policy=email.policy.SMTP))  # CRLF: smtplib sends bytes as they are
        if code != 250:
            raise smtplib.SMTPDataError(code, answer)
        return answer.decode()


def waiting(paths: InstancePaths) -> list[str]:
    """The commands kept and not yet answered (an answered one leaves only its `.done` key for an hour)."""
    return [p.name for p in commands_folder(paths).iterdir() if p.suffix != ".done"]


def mail2cmd_log(inst: RunningInstance) -> str:
    path = inst.paths.log_file("mail2cmd")
    return path.read_text() if path.exists() else ""


def test_an_allowed_mail_starts_the_job_and_the_reply_arrives(running: tuple[RunningInstance, SmtpRelay]) -> None:
    inst, relay = running
    add_job(inst, "APP1", 17, "NIGHTLY", INTERVAL_SECONDS=86400)
    inst.redctl("reload")
    send(inst, "start_job APP1.17", f"please\nsecret: {SECRET}\n")
    [reply] = relay.wait_for(1, 60)
    assert reply.recipients == (OPS,)
    message = reply.message()
    assert message["Subject"] == "Re: start_job APP1.17"
    body = message.get_body()
    assert body is not None
    text = body.get_content()
    assert "job APP1.17 (NIGHTLY) started as run" in text, text
    wait_for(
        lambda: inst.rows("SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 17 AND STATUS = 'OK'"),
        30,
        what="the run of job 17 in ADM_JOB_LOG",
    )
    send(inst, "status", f"secret: {SECRET}")
    relay.wait_for(2, 60)
    assert '"instance": "TST1"' in relay.received[1].message().get_body().get_content()  # type: ignore[union-attr]
    assert SECRET not in mail2cmd_log(inst)


def test_toggle_suspend_and_resume_by_mail(running: tuple[RunningInstance, SmtpRelay]) -> None:
    inst, relay = running
    add_job(inst, "APP1", 18, "WEEKLY", INTERVAL_SECONDS=86400)
    dba = ("dba@example.com", "secret: another-secret-0123456789")
    for number, (subject, expected) in enumerate(
        [
            ("toggle_db_job APP1.18", "job APP1.18 (WEEKLY) is now inactive"),
            ("suspend", "instance TST1: suspend done"),
            ("resume", "instance TST1: resume done"),
        ],
        start=1,
    ):
        send(inst, subject, dba[1], sender=dba[0])
        reply = relay.wait_for(number, 60)[-1].message()
        assert reply["Subject"] == f"Re: {subject}"
        body = reply.get_body()
        assert body is not None and expected in body.get_content(), body
        if subject == "suspend":
            assert inst.paths.suspend_marker.exists()
    assert not inst.paths.suspend_marker.exists()
    assert inst.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 18")[0]["ACTIVE"] is False


REFUSED = [  # subject, body, From:, envelope sender (None: the same), the reason logged
    ("status", f"secret: {SECRET}", OPS, "mallory@evil.example", "envelope sender 'mallory@evil.example' is not"),
    ("status", f"secret: {SECRET}", "mallory@evil.example", OPS, "sender 'mallory@evil.example' is not allow-listed"),
    ("status", f"secret: {SECRET}", "dba@example.com", OPS, "forged sender: From: 'dba@example.com'"),
    ("status", "secret: wrong-secret-0123456789", OPS, None, "the secret line is missing or wrong"),
    ("show", "no secret at all", OPS, None, "the secret line is missing or wrong"),
    ("suspend", f"secret: {SECRET}", OPS, None, "command 'suspend' is not on its list"),
    ("status; rm -rf /", f"secret: {SECRET}", OPS, None, "holds shell syntax (';')"),
    ("start_job APP1.17 $(reboot)", f"secret: {SECRET}", OPS, None, "holds shell syntax ('$')"),
    ("start_job ../../etc", f"secret: {SECRET}", OPS, None, "start_job takes the form 'start_job SCHEMA.JOB'"),
]


def test_refused_mails_are_answered_550_logged_and_not_run(running: tuple[RunningInstance, SmtpRelay]) -> None:
    inst, relay = running
    for subject, body, sender, envelope, reason in REFUSED:
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            send(inst, subject, body, sender, envelope)
        assert refused.value.smtp_code == 550, subject
        # one answer whatever the reason: told to the peer, it showed who is allow-listed and which guess failed
        assert refused.value.smtp_error == b"5.7.1 refused; the reason is in MAIL2CMD's log", refused.value.smtp_error
        wait_for(lambda: reason in mail2cmd_log(inst), 10, what=f"{reason!r} in MAIL2CMD's log")  # noqa: B023
    # thousands of encoded words in From: took the email package seconds, on the event loop, before any check
    words = "\r\n ".join(" ".join("=?utf-8?q?a?=" for _ in range(60)) for _ in range(100))  # folded lines
    raw = f"From: {words} <{OPS}>\r\nTo: redpss@tst1.example\r\nSubject: status\r\n\r\nsecret: {SECRET}\r\n"
    port = int(inst.config.redctl.mail2cmd_port)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp, pytest.raises(smtplib.SMTPDataError) as huge:
        smtp.sendmail(OPS, ["redpss@tst1.example"], raw.encode())
    assert huge.value.smtp_code == 552 and b"the header is over 65536 bytes" in huge.value.smtp_error
    log = mail2cmd_log(inst)
    assert log.count("refused a mail from 127.0.0.1") == len(REFUSED) + 1
    assert "wrong-secret" not in log and SECRET not in log
    assert "running" not in log  # nothing was run
    assert not inst.paths.suspend_marker.exists()
    assert relay.received == []  # no reply: a forged sender must not turn MAIL2CMD into a source of backscatter


def folded(words: list[str]) -> str:
    """Header text folded into lines of about 60 words (SMTP takes lines of at most 1,000 bytes)."""
    return "\r\n ".join(" ".join(words[start : start + 60]) for start in range(0, len(words), 60))


COSTLY_PARTS = [  # what the email package took 20-40 s of CPU each to parse (a 250 KB MIME part header), refused
    ("Content-Type: text/plain;" + folded([f"p{i}=v;" for i in range(15_000)]), "a MIME part's header is over"),
    ('Content-Type: text/plain; name="' + folded(["=?utf-8?q?a?="] * 300) + '"', "encoded words"),
    ("Content-Type: text/plain", "MIME parts"),  # the same small part, 3,000 times
]


def test_mails_too_costly_to_parse_are_refused_before_the_full_parse(
    running: tuple[RunningInstance, SmtpRelay],
) -> None:
    """From an allow-listed sender (the envelope is not proof of anything): the full parse ran in the shared thread
    pool, so a few such mails held up every command's spooling and the daemon's own ticks for minutes."""
    inst, _ = running
    port = int(inst.config.redctl.mail2cmd_port)
    head = f"From: {OPS}\r\nTo: redpss@tst1.example\r\nSubject: status\r\nMIME-Version: 1.0\r\n"
    head += "Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
    for part_header, reason in COSTLY_PARTS:
        copies = 3000 if reason == "MIME parts" else 1
        parts = f"--BB\r\n{part_header}\r\n\r\nsecret: {SECRET}\r\n" * copies
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(OPS, ["redpss@tst1.example"], (head + parts + "--BB--\r\n").encode())
        assert refused.value.smtp_code == 550
        wait_for(lambda: reason in mail2cmd_log(inst), 10, what=f"{reason!r} in MAIL2CMD's log")  # noqa: B023
    assert send(inst, "status", f"secret: {SECRET}").startswith("2.0.0 accepted")  # served at once after them
    # a From: nested a thousand parentheses deep made the email package raise RecursionError: a 500 and a traceback
    deep = "\r\n ".join(["(" * 500] * 3 + [")" * 500] * 3)  # folded: SMTP takes lines of at most 1,000 bytes
    nested = f"From: {deep} <{OPS}>\r\nTo: redpss@tst1.example\r\nSubject: status\r\n\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.sendmail(OPS, ["redpss@tst1.example"], (nested + f"secret: {SECRET}\r\n").encode())
    assert refused.value.smtp_code == 550
    wait_for(lambda: "the mail cannot be read (RecursionError)" in mail2cmd_log(inst), 10, what="the refusal logged")
    assert "Traceback" not in mail2cmd_log(inst)


def test_a_command_mail_with_a_gateway_s_long_header_is_taken_and_strangers_learn_nothing_at_mail_from(
    running: tuple[RunningInstance, SmtpRelay],
) -> None:
    """Gateways add DKIM, ARC and Received lines (8-20 KB): the limit of a MIME part's header must not apply to the
    mail's own. And MAIL FROM is answered alike for every sender: a 550 there told a prober who is allow-listed."""
    inst, _ = running
    gateway = {f"X_Gateway_{n}": " ".join(["d=example.com;"] * 14) for n in range(60)}  # 12 KB of header lines
    assert send(inst, "status", f"secret: {SECRET}", **gateway).startswith("2.0.0 accepted")
    for sender in ("mallory@evil.example", OPS):
        with smtplib.SMTP("127.0.0.1", int(inst.config.redctl.mail2cmd_port), timeout=30) as smtp:
            smtp.ehlo()
            assert smtp.mail(sender)[0] == 250, sender


def test_a_session_cannot_be_kept_open_with_noop(running: tuple[RunningInstance, SmtpRelay]) -> None:
    """Every command starts the idle timeout again: NOOPs held one of MAX_SESSIONS places for as long as wanted."""
    inst, _ = running
    with smtplib.SMTP("127.0.0.1", int(inst.config.redctl.mail2cmd_port), timeout=30) as smtp:
        answers = [smtp.noop()[0] for _ in range(NOOP_LIMIT + 1)]
        assert answers == [250] * NOOP_LIMIT + [421]
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.noop()


def test_a_reply_that_cannot_be_sent_is_logged_and_the_next_command_is_served(
    running: tuple[RunningInstance, SmtpRelay],
) -> None:
    """An unusable instance secret made the reply raise StartupError, which ended MAIL2CMD's worker (and with it
    every command queued behind). The reply is kept and sent once SENDMAIL takes mails again."""
    inst, relay = running
    secret_file = inst.paths.etc / "instance.secret"
    secret_file.chmod(0o644)  # refused by every client of the instance: "readable by others"
    try:
        send(inst, "status", f"secret: {SECRET}")
        wait_for(lambda: "was not sent" in mail2cmd_log(inst), 30, what="the failed reply logged")
    finally:
        secret_file.chmod(0o600)
    send(inst, "status", f"secret: {SECRET}")
    replies = relay.wait_for(2, 60)  # this one's, then the kept one, offered again once SENDMAIL took a mail
    for reply in replies:
        assert '"instance": "TST1"' in reply.message().get_body().get_content()  # type: ignore[union-attr]
    assert "has mode 0644" in mail2cmd_log(inst)
    assert "it is kept and offered again" in mail2cmd_log(inst)
    wait_for(lambda: not waiting(inst.paths), 30, what="the sent replies removed")


def test_a_subject_with_a_control_character_still_gets_its_reply(running: tuple[RunningInstance, SmtpRelay]) -> None:
    """`status` followed by a vertical tab is the command status (words split at any blank), but "Re: status\\v" is
    no subject SENDMAIL takes: the reply was refused for good and offered again every minute, for ever."""
    inst, relay = running
    send(inst, "status\x0b", f"secret: {SECRET}")
    [reply] = relay.wait_for(1, 60)
    assert reply.message()["Subject"].strip() == "Re: status"
    wait_for(lambda: not waiting(inst.paths), 30, what="the command forgotten")
    assert "offered again" not in mail2cmd_log(inst)


def test_a_command_mail_sent_again_or_replayed_is_not_run_again(running: tuple[RunningInstance, SmtpRelay]) -> None:
    """A mail system that did not see the 250 sends the mail again, and a copy of a command mail lies in mailboxes
    and archives: the same Message-ID is taken (250) but not run again, also after a restart; a mail dated over an
    hour ago, or without Message-ID, is refused."""
    inst, relay = running
    message_id = make_msgid()
    assert send(inst, "status", f"secret: {SECRET}", Message_ID=message_id).startswith("2.0.0 accepted, the result")
    relay.wait_for(1, 60)
    again = send(inst, "status", f"secret: {SECRET}", Message_ID=message_id)
    assert "accepted before (the same Message-ID); not run again" in again
    inst.stop()
    inst.start()
    assert "not run again" in send(inst, "status", f"secret: {SECRET}", Message_ID=message_id)
    for headers, reason in (
        ({"Date": formatdate(time.time() - 7200)}, "over 60 minutes ago; a command is taken fresh only"),
        ({"Date": formatdate(time.time() + 7200)}, "ahead of this server's clock"),
        ({"Message_ID": ""}, "has no Message-ID"),
        ({"Date": ""}, "has no Date"),
    ):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(inst, "status", f"secret: {SECRET}", **headers)
        assert refused.value.smtp_code == 550, headers
        wait_for(lambda: reason in mail2cmd_log(inst), 10, what=f"{reason!r} in MAIL2CMD's log")  # noqa: B023
    assert mail2cmd_log(inst).count("running 'status'") == 1  # the first mail only, before and after the restart
    assert len(relay.received) == 1


def reply_text(relay: SmtpRelay, subject: str) -> str:
    [reply] = [r.message() for r in relay.received if r.message()["Subject"] == f"Re: {subject}"]
    body = reply.get_body()
    assert body is not None
    return str(body.get_content())


def test_commands_accepted_before_a_restart_are_run_or_answered(running: tuple[RunningInstance, SmtpRelay]) -> None:
    """Accepted commands were held in memory only: a MAIL2CMD killed or stopped by force lost those queued behind the
    one running, although each had been answered 250 (the sender's mail system does not send such a mail again)."""
    inst, relay = running
    assert inst.stop() == 0
    spool = CommandSpool(commands_folder(inst.paths))  # what a MAIL2CMD killed with three commands in hand left
    spool.accept("dba@example.com", "suspend")  # queued: run after the restart
    spool.started(spool.accept(OPS, "status"))  # under way when killed: not run again, its sender told
    stale = spool.accept("dba@example.com", "resume")  # queued, but long ago: not run, its sender told
    record = json.loads(stale.path.read_text())
    stale.path.write_text(json.dumps({**record, "accepted": record["accepted"] - 2 * STALE_AFTER}))
    spool.accept("gone@example.com", "show")  # its sender was taken off the allow list meanwhile
    inst.start()
    relay.wait_for(4, 60)
    assert "not run: gone@example.com may no longer send 'show'" in reply_text(relay, "show")
    assert "instance TST1: suspend done" in reply_text(relay, "suspend")
    assert inst.paths.suspend_marker.exists()
    assert "whether it took effect is not known" in reply_text(relay, "status")
    assert "not run: it was accepted" in reply_text(relay, "resume")
    wait_for(lambda: not waiting(inst.paths), 30, what="the answered commands removed from the spool")
    assert "running 'suspend' from dba@example.com, accepted before a restart" in mail2cmd_log(inst)


def test_a_command_that_cannot_be_kept_is_answered_451_and_not_run(running: tuple[RunningInstance, SmtpRelay]) -> None:
    inst, relay = running
    folder = commands_folder(inst.paths)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("a file where the folder of kept commands belongs")  # refused even to root, unlike a mode
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(inst, "status", f"secret: {SECRET}")
    assert refused.value.smtp_code == 451
    wait_for(lambda: "answered 451" in mail2cmd_log(inst), 10, what="the refusal logged")
    assert "running 'status'" not in mail2cmd_log(inst)
    folder.unlink()
    send(inst, "status", f"secret: {SECRET}")  # its mail system sends it again later: taken now
    [reply] = relay.wait_for(1, 60)
    assert '"instance": "TST1"' in reply.message().get_body().get_content()  # type: ignore[union-attr]
    assert mail2cmd_log(inst).count("running 'status'") == 1  # the refused mail was never run
