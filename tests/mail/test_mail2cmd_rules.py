"""MAIL2CMD's rules without processes: the allow list file, who proves what, and how a subject becomes a command."""

from __future__ import annotations

import re
import threading
from email.message import EmailMessage

import pytest

from redpss.core.paths import InstancePaths
from redpss.mail.mail2cmd_rules import Command, Refused, RulesError, authorise, load_rules, parse_subject, secret_lines

SECRET = "0123456789abcdef-secret"
RULES = f"[sender Ops@Example.com]\nsecret = {SECRET}\ncommands = status, start_job\n"


def mail(subject: str, body: str, sender: str = "ops@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Ops Team <{sender}>"
    message["Subject"] = subject
    message.set_content(body)
    return message


@pytest.fixture
def rules(instance: InstancePaths) -> InstancePaths:
    path = instance.etc / "mail2cmd.conf"
    path.write_text(RULES)
    path.chmod(0o600)
    return instance


def test_an_allowed_mail_gives_its_command(rules: InstancePaths) -> None:
    senders = load_rules(rules)
    sender, command = authorise(senders, "OPS@example.com", mail("start_job APP1.17", f"hi\nSecret: {SECRET}\n"))
    assert sender.address == "ops@example.com"
    assert command == Command("start_job", ("APP1.17",))
    assert SECRET not in repr(sender)  # the secret prints masked


@pytest.mark.parametrize(
    ("envelope", "message", "reason"),
    [
        ("ops@example.com", mail("status", f"secret: {SECRET}", "eve@example.com"), "is not allow-listed"),
        ("eve@example.com", mail("status", f"secret: {SECRET}"), "forged sender"),
        ("ops@example.com", mail("status", "secret: 0123456789abcdef-wrong"), "secret line is missing or wrong"),
        ("ops@example.com", mail("status", f"secret: {SECRET}\nsecret: {SECRET}"), "missing or wrong"),
        ("ops@example.com", mail("suspend", f"secret: {SECRET}"), "'suspend' is not on its list"),
    ],
)
def test_refusals(rules: InstancePaths, envelope: str, message: EmailMessage, reason: str) -> None:
    with pytest.raises(Refused, match=re.escape(reason)) as refused:
        authorise(load_rules(rules), envelope, message)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("status; rm -rf /", "shell syntax (';')"),
        ("status && reboot", "shell syntax ('&')"),
        ("start_job `id`", "shell syntax ('`')"),
        ("start_job APP1.17 > /etc/passwd", "shell syntax ('>')"),
        ("start_job", "start_job takes the form 'start_job SCHEMA.JOB'"),
        ("start_job APP1.17 APP1.18", "takes the form"),
        ("status now", "status takes the form 'status'"),
        ("rm -rf /", "'rm' is not a command"),
        ("Re: status", "a reply or forward is not a command"),
        ("", "the subject is empty"),
    ],
)
def test_subjects_with_shell_syntax_or_bad_arguments_are_refused(subject: str, reason: str) -> None:
    with pytest.raises(Refused, match=re.escape(reason)):
        parse_subject(subject)


def test_the_allow_list_must_be_private_and_well_formed(instance: InstancePaths) -> None:
    path = instance.etc / "mail2cmd.conf"
    with pytest.raises(RulesError, match="is missing"):
        load_rules(instance)
    path.write_text(RULES)
    path.chmod(0o640)
    with pytest.raises(RulesError, match="chmod 600"):
        load_rules(instance)
    path.chmod(0o600)
    for text, reason in (
        ("[sender ops@example.com]\nsecret = short\ncommands = status\n", "at least 16 characters"),
        (f"[sender ops@example.com]\nsecret = {SECRET}\ncommands = status, rm\n", "commands: rm; allowed"),
        (f"[sender nobody]\nsecret = {SECRET}\ncommands = status\n", "is not a mail address"),
        (f"[ops@example.com]\nsecret = {SECRET}\n", "each section is [sender"),
    ):
        path.write_text(text)
        with pytest.raises(RulesError, match=re.escape(reason)) as refused:
            load_rules(instance)
        assert "short" not in str(refused.value) and SECRET not in str(refused.value)  # values of secrets not shown


def test_a_body_of_blank_lines_is_refused_at_once(rules: InstancePaths) -> None:
    """The secret-line pattern ran over line breaks: 256 KiB of blank lines held MAIL2CMD (and its watchdog pings)
    for minutes. A generous deadline, not a speed figure: the check now reads each line once."""
    senders = load_rules(rules)
    message = mail("status", "\n" * (256 * 1024 - 64) + f"secret: {SECRET}\n")
    finished: list[BaseException | tuple[object, ...]] = []

    def check() -> None:
        try:
            finished.append(authorise(senders, "ops@example.com", message))
        except Refused as refused:
            finished.append(refused)

    worker = threading.Thread(target=check, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert finished, "the check of a 256 KiB body of blank lines took longer than 10 s"
    assert finished[0] == (senders["ops@example.com"], Command("status", ()))


def test_the_secret_line_may_have_blanks_around_it_and_any_line_end() -> None:
    assert secret_lines(f"hello\r\n  Secret :\t{SECRET}  \r\nbye") == [SECRET]
    assert secret_lines(f"secret: {SECRET} trailing words") == []  # a line holds the secret and nothing else
    assert secret_lines(f"\n\nsecret:\n{SECRET}") == []  # the secret stays on its line
