"""SENDMAIL's spool, message building and backoff as plain logic (the daemon's tests cover them through processes)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from redpss.core.durable import TMP_PREFIX
from redpss.mail.message import MAX_ATTACHMENT_BYTES, MailError, build_message, parse_request
from redpss.mail.service import retry_delay
from redpss.mail.spool import Spool, SpooledMail
from redpss.mail.spoolstat import describe


def new_mail(spool: Spool, subject: str = "s") -> SpooledMail:
    mail = SpooledMail(spool.new_id(), "redsys@x.example", ["a@example.com"], "APP1", subject, time.time())
    spool.put(mail, b"Subject: " + subject.encode() + b"\r\n\r\nbody\r\n")
    return mail


def test_a_spooled_mail_is_loaded_again_with_its_state_and_leftovers_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", tmp_path / "dead")
    first, second = new_mail(spool, "first"), new_mail(spool, "second")
    second.attempts, second.next_try, second.last_error = 3, 12345.0, "451 later"
    spool.save_state(second)
    (spool.folder / f"{TMP_PREFIX}{spool.new_id()}.mail").write_bytes(b"half a mail")  # killed while writing
    (spool.folder / "0000000000000001-gone.state").write_text("{}")  # its mail was sent just before a crash
    loaded = Spool(tmp_path / "spool", tmp_path / "dead").load()
    assert [m.mail_id for m in loaded] == [first.mail_id, second.mail_id]  # oldest first
    assert (loaded[1].attempts, loaded[1].next_try, loaded[1].last_error) == (3, 12345.0, "451 later")
    assert sorted(p.name for p in spool.folder.iterdir()) == sorted(
        [f"{first.mail_id}.mail", f"{second.mail_id}.mail", f"{second.mail_id}.state"]
    )
    assert spool.message(first.mail_id) == b"Subject: first\r\n\r\nbody\r\n"


def test_a_mail_whose_recipients_were_narrowed_is_known_as_such_after_a_restart(tmp_path: Path) -> None:
    """Its later states are fsync'd too (a state written without could come back empty after a power cut, and the
    recipients that have the mail would get it again): the restarted SENDMAIL must know it was narrowed."""
    spool = Spool(tmp_path / "spool", tmp_path / "dead")
    mail = SpooledMail(spool.new_id(), "redsys@x.example", ["a@example.com", "b@example.com"], None, "s", time.time())
    spool.put(mail, b"Subject: s\r\n\r\nbody\r\n")
    plain = new_mail(spool)
    spool.save_state(plain)
    mail.recipients, mail.narrowed = ["b@example.com"], True
    spool.save_state(mail)
    loaded = {m.mail_id: m for m in Spool(tmp_path / "spool", tmp_path / "dead").load()}
    assert (loaded[mail.mail_id].recipients, loaded[mail.mail_id].narrowed) == (["b@example.com"], True)
    assert loaded[plain.mail_id].narrowed is False


def test_state_of_a_mail_already_sent_is_not_written_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", tmp_path / "dead")
    mail = new_mail(spool)
    spool.remove(mail.mail_id)
    spool.save_state(mail)  # the age check of a mail the relay round just sent
    assert not any(spool.folder.iterdir())


def test_bury_moves_the_mail_or_copies_it_for_refused_recipients(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", tmp_path / "dead")
    whole, half = new_mail(spool), new_mail(spool)
    spool.bury(whole, "550 no such user")
    half.attempts = 1
    spool.bury(half, "550 no such user", partial=True)
    half.attempts = 2  # a later try refuses another recipient: a copy of its own, the first one kept
    spool.bury(half, "550 mailbox closed", partial=True)
    assert not (spool.folder / f"{whole.mail_id}.mail").exists()
    assert (spool.folder / f"{half.mail_id}.mail").exists()  # still waiting for the other recipients
    assert (spool.dead / f"{half.mail_id}-refused-1.mail").exists()
    assert "550 no such user" in (spool.dead / f"{half.mail_id}-refused-1.reply").read_text()
    assert "550 mailbox closed" in (spool.dead / f"{half.mail_id}-refused-2.reply").read_text()
    assert "relay reply: 550 no such user" in (spool.dead / f"{whole.mail_id}.reply").read_text()


def test_retry_delay_doubles_up_to_the_longest() -> None:
    assert [retry_delay(n, 30, 300) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]
    assert retry_delay(10_000, 30, 1800) == 1800  # no overflow after days of an absent relay


def test_sendfiles_exports_are_attached_for_red_pss_own_clients_only(tmp_path: Path) -> None:
    """A database session could attach a file SENDFILE was exporting for another partner (data/work/sendfile/<id>)
    and mail it to itself; only SENDFILE (a client holding the instance secret) attaches those."""
    data = tmp_path / "data"
    export = data / "work" / "sendfile" / "20261202-1"
    export.mkdir(parents=True)
    (export / "salaries.csv").write_text("1,100\n")
    (data / "work" / "to-exports").symlink_to(data / "work" / "sendfile")
    base = {"to": "a@example.com", "subject": "s", "body": "b"}
    for name in ("work/sendfile/20261202-1/salaries.csv", "work/to-exports/20261202-1/salaries.csv"):
        with pytest.raises(MailError, match="SENDFILE's exports: not sent"):
            parse_request({**base, "attachments": [name]}, data)
    mail = parse_request({**base, "attachments": ["work/sendfile/20261202-1/salaries.csv"]}, data, own_client=True)
    assert mail.attachments[0].data == b"1,100\n"


def test_attachments_stay_below_data_and_within_the_size_limit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "work").mkdir(parents=True)
    (data / "work" / "big.bin").write_bytes(b"\0" * (MAX_ATTACHMENT_BYTES + 1))
    (data / "work" / "ok.csv").write_text("a,b\n")
    (tmp_path / "secret").write_text("x")
    base = {"to": "a@example.com", "subject": "s", "body": "b"}
    for name, reason in [
        ("work/big.bin", "the attachments of one mail may hold"),
        (str(tmp_path / "secret"), "is not below"),
        ("work/../../secret", "is not below"),
    ]:
        with pytest.raises(MailError, match=reason):
            parse_request({**base, "attachments": [name]}, data)
    mail = parse_request({**base, "attachments": [str(data / "work" / "ok.csv")], "schema": "app1"}, data)
    assert mail.schema == "APP1" and mail.attachments[0].data == b"a,b\n"
    message = build_message(mail, "redsys@x.example", "x.example")
    assert b'Content-Disposition: attachment; filename="ok.csv"' in message and b"\r\n" in message


def test_describe_names_count_oldest_next_try_and_dead_letters() -> None:
    now = 1_800_000_000.0
    summary = {
        "count": 2,
        "oldest": now - 60,
        "next_try": now + 30,
        "last_error": "451 later",
        "dead": 1,
        "folder": "/x/data/mail",
    }
    text = describe(summary, now)
    assert text.startswith("2 mail(s) waiting, oldest ") and ", next try " in text and "(last: 451 later)" in text
    assert text.endswith("; 1 dead letter(s) in /x/data/mail/dead")
    assert describe({**summary, "count": 0, "dead": 0}, now) == "no mail waiting"
    assert json.dumps(summary)  # the --json form is plain data
