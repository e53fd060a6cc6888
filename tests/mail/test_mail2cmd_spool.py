"""MAIL2CMD's kept commands on disk: what a restart finds, and files that cannot be used."""

from __future__ import annotations

import json
import time
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import pytest

from redpss.core.config.kinds import Secret
from redpss.core.durable import TMP_PREFIX
from redpss.mail.mail2cmd_rules import Refused, Sender, replay_key
from redpss.mail.mail2cmd_spool import KEYS_KEPT, REPLAY_WINDOW, CommandSpool


def test_commands_are_found_oldest_first_in_the_state_they_were_left_in(tmp_path: Path) -> None:
    spool = CommandSpool(tmp_path / "commands")
    queued = spool.accept("ops@example.com", "status")
    started = spool.started(spool.accept("ops@example.com", "suspend"))
    answered = spool.reply_later(spool.accept("dba@example.com", "show"), "the reply text")
    (spool.folder / f"{TMP_PREFIX}interrupted.command").write_text("{")  # a write a kill cut short: never answered
    entries, problems = spool.left_over()
    assert [e.path for e in entries] == [queued.path, started.path, answered.path]
    assert [(e.running, e.answered) for e in entries] == [(False, False), (True, False), (False, True)]
    assert entries[2].reply == "the reply text" and entries[2].sender == "dba@example.com"
    assert problems == [] and not (spool.folder / f"{TMP_PREFIX}interrupted.command").exists()
    for entry in entries:
        spool.done(entry)
    assert spool.left_over() == ([], [])


def test_names_never_meet_and_sort_in_the_order_of_acceptance(tmp_path: Path) -> None:
    spool = CommandSpool(tmp_path / "commands")
    names = [spool.accept("ops@example.com", f"status {n}").path.name for n in range(200)]
    assert len(set(names)) == 200 and sorted(names) == names


def test_a_file_that_cannot_be_used_is_set_aside_once_and_named(tmp_path: Path) -> None:
    spool = CommandSpool(tmp_path / "commands")
    good = spool.accept("ops@example.com", "status")
    bad_time = spool.accept("ops@example.com", "show")
    bad_time.path.write_text(json.dumps({"sender": "ops@example.com", "subject": "show", "accepted": float("nan")}))
    garbage = spool.folder / "00000000000000000001-x.running"
    garbage.write_text("not json")
    entries, problems = spool.left_over()
    assert [e.path for e in entries] == [good.path]
    assert len(problems) == 2 and all("kept as" in p and ".unreadable" in p for p in problems), problems
    assert any("is not a time" in p for p in problems)
    assert spool.left_over() == ([good], [])  # reported once


def test_a_command_forgotten_before_its_250_leaves_no_key_behind(tmp_path: Path) -> None:
    """A session that ended before the 250: the sender's mail system sends the mail again, so after a restart its
    key must not answer that copy "accepted before" (a `.done` file kept it), and the command must not run."""
    spool = CommandSpool(tmp_path / "commands")
    kept = spool.accept("ops@example.com", "suspend", key="k-forgotten")
    answered = spool.accept("ops@example.com", "status", key="k-answered")
    spool.done(answered)
    spool.forget(kept)
    assert spool.keys(time.time()) == {"k-answered": answered.accepted}
    assert spool.left_over() == ([], [])


def test_the_key_of_a_mail_dated_ahead_is_kept_while_a_copy_of_it_would_still_be_taken(tmp_path: Path) -> None:
    """A mail may be dated up to FUTURE_SKEW ahead of this server and stays fresh until its Date is REPLAY_WINDOW
    old; its key was kept REPLAY_WINDOW after its acceptance only. The sender's clock 10 minutes fast, a copy sent
    again 65 minutes later found no key and a Date still fresh: the command ran twice."""
    sender = Sender("ops@example.com", Secret("s"), frozenset({"suspend"}))
    spool = CommandSpool(tmp_path / "commands")
    message = EmailMessage()
    message["Message-ID"] = "<once@example.com>"
    entry = spool.accept(
        sender.address,
        "suspend",
        key=replay_key(sender, _dated(time.time() + 600, message), time.time(), REPLAY_WINDOW),
    )
    spool.done(entry)
    later = entry.accepted + 65 * 60
    assert replay_key(sender, message, later, REPLAY_WINDOW) in spool.keys(later)  # still fresh, still known
    assert spool.keys(entry.accepted + KEYS_KEPT + 1) == {}  # then both go: a copy is refused by its Date
    with pytest.raises(Refused, match="over 60 minutes ago"):
        replay_key(sender, message, entry.accepted + KEYS_KEPT + 1, REPLAY_WINDOW)


def _dated(when: float, message: EmailMessage) -> EmailMessage:
    message["Date"] = formatdate(when)
    return message
