"""SENDMAIL's SMTP client against a real relay (aiosmtpd): the replies it waits for, and how long."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.mail.relay import SENT, RelaySession, RelaySettings
from tests.support.smtp_relay import SmtpRelay

MESSAGE = b"From: redsys@test.example\r\nTo: ops@example.com\r\nSubject: report\r\n\r\nthe body\r\n"


@pytest.fixture(params=["PLAIN", "STARTTLS", "TLS"])
def relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmtpRelay]:
    with SmtpRelay(tmp_path, request.param) as running:
        yield running


def _session(relay: SmtpRelay, **timeouts: float) -> RelaySession:
    settings = RelaySettings(
        "127.0.0.1", relay.port, relay.mode, "", "", "redsys@test.example", str(relay.cert_file), True
    )
    session = RelaySession(settings, settings.tls_context() if relay.mode != "PLAIN" else None, **timeouts)
    session.open()
    return session


def test_a_relay_slow_to_answer_the_mails_end_gets_the_longer_wait_and_the_mail_goes_once(relay: SmtpRelay) -> None:
    """A relay may answer the end of DATA only after scanning the mail (RFC 5321 gives it 10 minutes). Given up on
    after the usual reply timeout, a mail the relay then took counted as failed and was sent again at every retry."""
    relay.answer_after = 1.5  # the relay took the mail, and answers 1.5 s later
    session = _session(relay, reply_timeout=0.5, end_of_data_timeout=10.0)
    try:
        outcome = session.send("redsys@test.example", ["ops@example.com"], MESSAGE)
        assert outcome.result == SENT, outcome
        relay.answer_after = 0.0
        second = session.send("redsys@test.example", ["ops@example.com"], MESSAGE)  # the session goes on
        assert second.result == SENT, second
        assert session.smtp is not None and session.smtp.sock is not None
        assert session.smtp.sock.gettimeout() == 0.5  # the other replies keep the usual wait
    finally:
        session.close()
    assert len(relay.wait_for(2, 10)) == 2
