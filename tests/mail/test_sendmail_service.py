"""SENDMAIL with real processes and a real SMTP relay: TLS and SASL, attachments, a relay that is away while the
daemon is killed -9, refusals for good, and requests that must be refused.

The client is the stdlib-only file the database's UDF scripts embed (redpss/sql/udf/pss_client.py).
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redpss.core.config import load_config
from redpss.mail.client import MailNotAccepted, submit_mail
from redpss.mail.spoolstat import dead_folder, spool_folder, spool_summary
from redpss.sql.udf.pss_client import PssError
from tests.mail.conftest import Mailer
from tests.support.daemons import DaemonProcess
from tests.support.private_tmp import PrivateTmp
from tests.support.smtp_relay import SmtpRelay
from tests.support.wait import wait_for

MailerFor = Callable[..., Mailer]


@pytest.mark.parametrize("mode", ["STARTTLS", "TLS"])
def test_mail_with_attachment_arrives_over_tls_with_sasl_auth(mode: str, mailer_for: MailerFor, tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, mode, user="relayuser", password="relay-pw") as relay:
        mailer = mailer_for(relay)
        export = mailer.paths.data_work / "orders.csv"
        export.write_bytes(b'ID,NAME\n1,"a, b"\n2,\xc3\xa4\n')
        daemon = mailer.start()
        with mailer.client() as client:
            reply = client.send_mail(
                ["ops@example.com", "dba@example.com"],
                "orders of today",
                "see attached\n",
                attachments=["work/orders.csv"],
                schema="APP1",
            )
        assert reply["durable"] is True
        received = relay.wait_for(1, 30)
        assert received[0].recipients == ("ops@example.com", "dba@example.com")
        assert received[0].sender == "redsys@test.example"
        message = received[0].message()
        assert message["Subject"] == "orders of today"
        body = message.get_body()
        assert body is not None
        assert body.get_content().replace("\r\n", "\n") == "see attached\n"
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == "orders.csv"
        assert attachment.get_payload(decode=True) == export.read_bytes()  # byte for byte
        assert relay.logins == ["PLAIN:relayuser"]
        wait_for(lambda: spool_summary(mailer.paths)["count"] == 0, 10, what="the spool to be empty")
        assert export.exists()  # the sender's file is left alone unless it asked otherwise
        daemon.wait_log(f"mail {reply['mail_id']} sent to ops@example.com, dba@example.com")


def test_relay_down_and_kill_9_every_mail_arrives_exactly_once(mailer_for: MailerFor, tmp_path: Path) -> None:
    relay = SmtpRelay(tmp_path, "STARTTLS", user="u", password="p")  # not started: the relay is down
    mailer = mailer_for(relay)
    daemon = mailer.start()
    with mailer.client() as client:
        ids = [client.send_mail("ops@example.com", f"mail {n}", f"body {n}")["mail_id"] for n in range(20)]
    wait_for(lambda: "not reachable" in daemon.log, 20, what="a failed try in the log")
    os.kill(daemon.pid, signal.SIGKILL)  # while the relay is down and tries are going on
    daemon.close()
    assert spool_summary(mailer.paths)["count"] == 20  # acknowledged means on disk
    daemon = mailer.start()
    with mailer.client() as client:  # more mails while the relay is still down
        ids += [client.send_mail("ops@example.com", f"mail {n}", f"body {n}")["mail_id"] for n in range(20, 30)]
    relay.start()
    try:
        received = relay.wait_for(30, 60)
        wait_for(lambda: spool_summary(mailer.paths)["count"] == 0, 30, what="the spool to be empty")
        mailer.procs["sendmail"].stop()
        subjects = sorted(r.message()["Subject"] for r in relay.received)
        assert subjects == sorted(f"mail {n}" for n in range(30))  # each exactly once
        assert len(received) == len(relay.received) == 30
        assert len(set(ids)) == 30
    finally:
        relay.stop()


def test_permanent_refusal_goes_to_dead_letters_with_an_alert_and_a_log_messages_row(
    mailer_for: MailerFor, tmp_path: Path
) -> None:
    with SmtpRelay(tmp_path, "STARTTLS", refuse={"nobody@example.com"}) as relay:
        mailer = mailer_for(relay)
        mailer.start("devdb")
        mailer.inst.redctl("db_register", "APP1")
        daemon = mailer.start()
        with mailer.client() as client:
            dead_id = client.send_mail("nobody@example.com", "to nobody", "x", schema="APP1")["mail_id"]
            both_id = client.send_mail(["ops@example.com", "nobody@example.com"], "half", "y", schema="APP1")["mail_id"]
        received = relay.wait_for(1, 30)
        assert received[0].recipients == ("ops@example.com",)
        dead = dead_folder(mailer.paths)
        wait_for((dead / f"{dead_id}.mail").exists, 30, what="the dead letter")
        assert "550 5.1.1 no such user here" in (dead / f"{dead_id}.reply").read_text()
        wait_for((dead / f"{both_id}-refused-1.mail").exists, 10, what="the refused recipient's copy")
        wait_for(lambda: spool_summary(mailer.paths)["count"] == 0, 10, what="the spool to be empty")
        assert spool_summary(mailer.paths)["dead"] == 2
        alert = f"mail {dead_id} to nobody@example.com ('to nobody') refused by the relay for good"
        wait_for(lambda: alert in daemon.log, 10, what="the ALERT line")
        assert any(" ALERT " in line and alert in line for line in daemon.log.splitlines())
        rows = wait_for(
            lambda: mailer.rows(
                'SELECT LOG_LEVEL, "SOURCE", MESSAGE FROM APP1.LOG_MESSAGES WHERE "SOURCE" = \'SENDMAIL\''
            ),
            60,
            interval=0.5,
            what="the LOG_MESSAGES rows",
        )
        wait_for(lambda: len(mailer.rows("SELECT * FROM APP1.LOG_MESSAGES WHERE \"SOURCE\" = 'SENDMAIL'")) == 2, 30)
        assert all(row["LOG_LEVEL"] == "ALERT" for row in rows)


def test_a_mail_to_a_non_ascii_address_or_a_refused_sender_never_stops_sendmail(
    mailer_for: MailerFor, tmp_path: Path
) -> None:
    """smtplib raises UnicodeEncodeError (no SMTPException) for an address beyond ASCII: that ended the relay task
    and SENDMAIL, again at every restart. Now such a mail is dead, with the reason, unless the relay offers
    SMTPUTF8. A relay refusing the sender (a setting, the same for every mail) buries nothing: all wait for the fix."""
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        mailer = mailer_for(relay)
        daemon = mailer.start()
        with mailer.client() as client:
            wide = client.send_mail("jörg@example.com", "umlaut", "x")["mail_id"]
            client.send_mail("ops@example.com", "after it", "y")
        assert [m.recipients for m in relay.wait_for(1, 30)] == [("ops@example.com",)]
        reply = wait_for((dead_folder(mailer.paths) / f"{wide}.reply").read_text, 30, what="the dead letter's reply")
        assert "jörg@example.com is not an ASCII address, and the relay does not offer SMTPUTF8" in reply
        relay.refuse_senders.add(load_config(mailer.paths.config_file).redctl.sendmail_smtp_from)
        with mailer.client() as client:
            waiting = [client.send_mail("ops@example.com", f"while refused {n}", "z")["mail_id"] for n in range(2)]
        wait_for(lambda: all(f"mail {m} not sent" in daemon.log for m in waiting), 30, what="both tried")
        assert (
            "the relay refused the sender redsys@test.example: 553 5.7.1" in spool_summary(mailer.paths)["last_error"]
            and "check [redctl] sendmail_smtp_from" in spool_summary(mailer.paths)["last_error"]
        )
        assert spool_summary(mailer.paths)["dead"] == 1 and daemon.process.poll() is None
        # the operator mends sendmail_smtp_from and restarts SENDMAIL: the mails that waited go with the new sender
        config = mailer.paths.config_file
        config.write_text(config.read_text().replace("redsys@test.example", "ops-sender@test.example"))
        assert daemon.stop() == 0
        daemon.close()
        mailer.start()
        arrived = relay.wait_for(3, 30)
        assert [m.sender for m in arrived[1:]] == ["ops-sender@test.example"] * 2
    with SmtpRelay(tmp_path, "PLAIN", utf8=True, port=relay.port) as relay:
        with mailer.client() as client:
            client.send_mail("jörg@example.com", "umlaut again", "x")
        assert relay.wait_for(1, 30)[0].recipients == ("jörg@example.com",)


def test_temporary_refusal_is_retried_and_an_old_mail_raises_one_alert(mailer_for: MailerFor, tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, "PLAIN", defer={"later@example.com"}) as relay:
        mailer = mailer_for(relay, sendmail_alert_age="1")
        daemon = mailer.start()
        with mailer.client() as client:
            mail_id = client.send_mail("later@example.com", "deferred", "z")["mail_id"]
        wait_for(lambda: daemon.log.count(f"mail {mail_id} not sent") >= 3, 30, what="three tries")
        assert "451 4.3.0 try again later" in spool_summary(mailer.paths)["last_error"]
        wait_for(lambda: f"mail {mail_id} to later@example.com has waited" in daemon.log, 30, what="the age ALERT")
        relay.defer.clear()
        relay.wait_for(1, 30)
        wait_for(lambda: spool_summary(mailer.paths)["count"] == 0, 10, what="the spool to be empty")
        assert daemon.log.count("has waited") == 1  # once, not on every tick


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"to": "not-an-address", "subject": "s", "body": "b"}, "is not a mail address"),
        ({"to": "a@example.com", "subject": "s\nBcc: x@evil.example", "body": "b"}, "must be one line"),
        (
            {"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["../etc/red_params.conf"]},
            "is not below",
        ),
        ({"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["work/missing.csv"]}, "does not exist"),
        ({"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["work/link.csv"]}, "is not below"),
        ({"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["work"]}, "not a regular file"),
        # other senders' spooled mails and MAIL2CMD's commands are data/ too, but not to be mailed
        ({"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["mail/spool"]}, "mail daemons' own"),
        ({"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["work/../mail/x"]}, "mail daemons' own"),
        ({"to": [], "subject": "s", "body": "b"}, "at least one recipient"),
        # characters the email library refuses in a header or a body (these were INTERNAL, with a traceback)
        ({"to": "a@example.com", "subject": "s\x0bt", "body": "b"}, "no line breaks or control characters"),
        ({"to": "a@example.com", "subject": "s\u2028t", "body": "b"}, "no line breaks or control characters"),
        ({"to": "a@example.com", "subject": "s\x85t", "body": "b"}, "no line breaks or control characters"),
        ({"to": "a@example.com", "subject": "s", "body": "b\ud800"}, "a lone surrogate at character 2"),
        ({"to": "a@example.com", "subject": "s", "body": "b", "attachments": ["work/a\nb.csv"]}, "control character"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_spooled(
    fields: dict[str, object], expected: str, mailer_for: MailerFor, tmp_path: Path
) -> None:
    relay = SmtpRelay(tmp_path, "PLAIN")
    mailer = mailer_for(relay)
    (mailer.paths.data_work / "link.csv").symlink_to(mailer.paths.config_file)
    (mailer.paths.data_work / "a\nb.csv").write_text("x\n")
    mailer.start()
    with mailer.client() as client:
        with pytest.raises(PssError, match=expected) as refused:
            client.request("mail", **fields)
        assert refused.value.code == "BAD_REQUEST"
        assert client.ping()["server"] == "sendmail"  # the connection stays
    assert not any(spool_folder(mailer.paths).iterdir())


def test_redinfo_shows_the_spool_and_the_status_reply_has_its_figures(mailer_for: MailerFor, tmp_path: Path) -> None:
    relay = SmtpRelay(tmp_path, "STARTTLS")  # down: the mails wait
    mailer = mailer_for(relay, sendmail_retry_delay="60", sendmail_retry_max_delay="120")
    mailer.start()
    with mailer.client() as client:
        for n in range(3):
            client.send_mail("ops@example.com", f"waiting {n}", "w")
        # every mail tried once: the earliest next try is the retry delay (60 s) away
        wait_for(lambda: client.request("status")["next_try"] > time.time() + 30, 20, what="a failed try of each")
        status = client.request("status")
        ping = client.ping()  # its status text is what JMON writes to REDSYS.DAEMON_STATUS
    assert status["waiting"] == 3
    assert "3 mail(s) waiting, oldest " in ping["status"]
    assert status["next_try"] > status["oldest"]
    assert "not reachable" in status["relay_error"]
    shown = subprocess.run(
        [sys.executable, "-m", "redpss.cli.redinfo", "-i", "TST1"],
        env=mailer.inst.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in shown.splitlines() if line.startswith("mail spool:"))
    assert "3 mail(s) waiting, oldest " in line
    assert ", next try 20" in line  # a clock time: 60 s away, not "now"
    assert "not reachable" in line


def test_the_relay_certificate_is_verified_unless_turned_off_which_is_logged(
    mailer_for: MailerFor, tmp_path: Path
) -> None:
    with SmtpRelay(tmp_path, "STARTTLS") as relay:
        mailer = mailer_for(relay, sendmail_smtp_ca_file="")  # the system's CAs do not know the relay's certificate
        daemon = mailer.start()
        with mailer.client() as client:
            client.send_mail("ops@example.com", "not to an untrusted relay", "x")
        wait_for(lambda: "certificate not trusted" in spool_summary(mailer.paths)["last_error"], 20, what="the refusal")
        assert "sendmail_smtp_ca_file" in spool_summary(mailer.paths)["last_error"]
        assert not relay.received
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.close()

        mailer.paths.config_file.write_text(
            mailer.paths.config_file.read_text().replace("#sendmail_smtp_verify = true", "sendmail_smtp_verify = false")
        )
        daemon = mailer.start()
        relay.wait_for(1, 30)  # the waiting mail, now over an unverified TLS session
        assert "the relay's certificate is NOT verified ([redctl] sendmail_smtp_verify = false)" in daemon.log
        assert any(" WARNING " in line and "NOT verified" in line for line in daemon.log.splitlines())


def test_a_mail_sendmail_refuses_as_such_is_a_permanent_failure_for_its_sender(
    mailer_for: MailerFor, tmp_path: Path
) -> None:
    """SENDFILE retried every refusal for hours; one SENDMAIL will never take is now told apart from SENDMAIL away."""
    mailer = mailer_for(SmtpRelay(tmp_path, "PLAIN"))
    config = load_config(mailer.paths.config_file)
    daemon = mailer.start()
    with pytest.raises(MailNotAccepted, match="control characters") as refused:
        submit_mail(config, mailer.paths, "a@example.com", "sub\x0bject", "body")
    assert refused.value.permanent
    daemon.stop()
    with pytest.raises(MailNotAccepted) as away:
        submit_mail(config, mailer.paths, "a@example.com", "subject", "body")
    assert not away.value.permanent


@pytest.mark.root
def test_a_full_disk_while_relaying_keeps_the_relay_going_and_sends_the_mail_once(
    mailer_for: MailerFor, tmp_path: Path
) -> None:
    """The spool on a full tmpfs (a private mount namespace: a real ENOSPC for SENDMAIL alone). Before, the first
    state the relay loop could not write ended that loop with a traceback, and SENDMAIL with it. SENDMAIL keeps
    pinging the watchdog meanwhile: restarts would free no space, only use up the unit's start limit. The mail
    passes sendmail_alert_age while the disk is full: its ALERT was lost (its mark could not be saved first)."""
    with SmtpRelay(tmp_path, "PLAIN", defer={"later@example.com"}) as relay:
        mailer = mailer_for(relay, sendmail_alert_age="3")
        folder = spool_folder(mailer.paths)
        folder.mkdir(parents=True, exist_ok=True)
        private = PrivateTmp(folder, "4m")
        daemon = DaemonProcess(
            "redpss.mail.service", mailer.paths, tmp_path / "sendmail-full", log_name="sendmail",
            launcher=private.launcher(), env={"WATCHDOG_USEC": "400000"},
        )  # fmt: skip
        try:
            daemon.wait_ready()
            with mailer.client() as client:
                mail_id = client.send_mail("later@example.com", "deferred", "z")["mail_id"]
            wait_for(lambda: f"mail {mail_id} not sent" in daemon.log, 30, what="a first try deferred")
            private.fill()
            wait_for(lambda: "cannot write the mail spool" in daemon.log, 30, what="the full spool noticed")
            pings = daemon.notify.count("WATCHDOG", "1")  # still pinging: a restart frees no space
            daemon.notify.wait_for("WATCHDOG", "1", nth=pings + 3, timeout=10)
            tries = daemon.log.count(f"mail {mail_id} not sent")
            wait_for(lambda: daemon.log.count(f"mail {mail_id} not sent") >= tries + 2, 30, what="tries going on")
            wait_for(lambda: f"mail {mail_id} to later@example.com has waited" in daemon.log, 30, what="the ALERT")
            private.free()
            relay.defer.clear()
            relay.wait_for(1, 30)
            wait_for(lambda: not any(private.inside(folder).glob("*.mail")), 30, what="the sent mail out of the spool")
            assert daemon.process.poll() is None  # still serving
            assert len(relay.received) == 1  # once
            assert "Traceback" not in daemon.log
        finally:
            daemon.stop()
            daemon.close()
            private.close()


def test_large_mails_sent_at_once_are_composed_a_few_at_a_time(mailer_for: MailerFor, tmp_path: Path) -> None:
    """Each new mail reads its attachments (up to 25 MiB) and holds them encoded, several copies: six callers at once
    with 20 MiB each took SENDMAIL's peak RSS to ~970 MiB. They are composed two at a time now (~460 MiB, of it the
    relay's round sending one); every one is still accepted and sent."""
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        mailer = mailer_for(relay)
        export = mailer.paths.data_work / "big.csv"
        export.write_bytes(os.urandom(10 << 20).hex().encode())  # 20 MiB of text
        daemon = mailer.start()

        def send(number: int) -> dict[str, Any]:
            with mailer.client(f"caller-{number}") as client:
                return client.send_mail(
                    ["ops@example.com"], f"export {number}", "attached\n", attachments=["work/big.csv"]
                )

        with concurrent.futures.ThreadPoolExecutor(6) as callers:
            replies = list(callers.map(send, range(6)))
        assert all(reply["durable"] for reply in replies)
        relay.wait_for(6, 120)
        peak = _peak_rss_mib(daemon.process.pid)
    assert peak < 700, f"SENDMAIL peak RSS was {peak:.0f} MiB (six composed at once: ~970)"


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")
