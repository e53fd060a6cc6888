"""Talking to the mail relay: one SMTP session per round, STARTTLS, implicit TLS or plain, SASL auth when configured.

Blocking (smtplib), run in a thread by the service. Every outcome is classified per mail: SENT, RETRY (the relay
could not be reached, timed out, or answered 4xx) or DEAD (5xx: the relay will never take it). A relay that cannot
be reached, or refuses the login or TLS, is a RETRY for every mail of the round: nothing is lost because of a relay
or a setting that the operator can fix.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from redpss.core.config import Config

log = logging.getLogger("redpss.mail.relay")

SMTP_TIMEOUT = 30.0  # seconds for connect and for each SMTP reply but one:
# the reply to the end of DATA, which a relay may give only after scanning the mail (RFC 5321 4.5.3.2.6: 10 minutes).
# Given up on after 30 s, a mail the relay then took was counted a failure and sent again at every retry.
END_OF_DATA_TIMEOUT = 600.0
SENT, RETRY, DEAD = "SENT", "RETRY", "DEAD"
MAIL_TOO_LARGE = frozenset({552, 555})  # MAIL FROM refused for this mail's SIZE, or a parameter of it


@dataclass(frozen=True)
class RelaySettings:
    host: str
    port: int
    encryption: str  # STARTTLS, TLS or PLAIN
    user: str
    password: str
    sender: str
    ca_file: str
    verify: bool

    @classmethod
    def from_config(cls, config: Config) -> RelaySettings:
        r = config.redctl
        return cls(
            r.sendmail_smtp_host,
            r.sendmail_smtp_port,
            r.sendmail_smtp_encr,
            r.sendmail_smtp_user,
            r.sendmail_smtp_pass.reveal(),
            r.sendmail_smtp_from,
            r.sendmail_smtp_ca_file,
            r.sendmail_smtp_verify,
        )

    def describe(self) -> str:
        auth = f" as {self.user}" if self.user else ""
        checked = "" if self.encryption == "PLAIN" or self.verify else ", certificate NOT verified"
        return f"{self.host}:{self.port} ({self.encryption}{auth}{checked})"

    def tls_context(self) -> ssl.SSLContext:
        """The context for STARTTLS and TLS: the system's CAs or ca_file; no verification only when asked."""
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass
class Outcome:
    result: str  # SENT, RETRY or DEAD
    reply: str = ""  # the relay's answer, or why it could not be reached
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)  # recipients refused while others were taken


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"[:1000]


def _classify(code: int) -> str:
    return DEAD if 500 <= code < 600 else RETRY


class _PatientAtEndOfData(smtplib.SMTP):
    """smtplib's client waiting `end_of_data_timeout` for the reply to the mail's end (after DATA's 354 and the
    mail), the socket's own timeout for every other reply."""

    end_of_data_timeout = END_OF_DATA_TIMEOUT
    _replies_in_data = 0  # replies still to come within data(): 2 (the 354, then the end's)

    def data(self, msg: Any) -> tuple[int, bytes]:
        self._replies_in_data = 2
        try:
            return super().data(msg)
        finally:
            self._replies_in_data = 0

    def getreply(self) -> tuple[int, bytes]:
        the_end = self._replies_in_data == 1  # the reply to the mail's end: the last one data() waits for
        self._replies_in_data = max(0, self._replies_in_data - 1)
        if not the_end or self.sock is None:
            return super().getreply()
        usual = self.sock.gettimeout()
        self.sock.settimeout(self.end_of_data_timeout)
        try:
            return super().getreply()
        finally:
            if self.sock is not None:
                self.sock.settimeout(usual)


class _SmtpSsl(_PatientAtEndOfData, smtplib.SMTP_SSL):
    pass


class RelaySession:
    """One connection to the relay for a round of mails; `send` classifies each."""

    def __init__(
        self,
        settings: RelaySettings,
        context: ssl.SSLContext | None,
        *,
        reply_timeout: float = SMTP_TIMEOUT,
        end_of_data_timeout: float = END_OF_DATA_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.context = context
        self.reply_timeout = reply_timeout
        self.end_of_data_timeout = end_of_data_timeout
        self.smtp: smtplib.SMTP | None = None

    def open(self) -> None:
        s = self.settings
        host = socket.getfqdn() if s.host not in ("localhost", "127.0.0.1") else "localhost"
        timeout = self.reply_timeout
        if s.encryption == "TLS":
            smtp: _PatientAtEndOfData = _SmtpSsl(
                s.host, s.port, local_hostname=host, timeout=timeout, context=self.context
            )
        else:
            smtp = _PatientAtEndOfData(s.host, s.port, local_hostname=host, timeout=timeout)
        smtp.end_of_data_timeout = self.end_of_data_timeout
        self.smtp = smtp
        smtp.ehlo()
        if s.encryption == "STARTTLS":
            smtp.starttls(context=self.context)
            smtp.ehlo()
        if s.user:
            smtp.login(s.user, s.password)

    def send(self, sender: str, recipients: list[str], message: bytes) -> Outcome:
        assert self.smtp is not None
        options = self._utf8_options(sender, recipients)
        if isinstance(options, Outcome):
            return options
        try:
            refused = self.smtp.sendmail(sender, recipients, message, mail_options=options)
        except smtplib.SMTPSenderRefused as exc:
            return self._sender_refused(sender, exc)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {r: (code, _reply_text(code, text)) for r, (code, text) in exc.recipients.items()}
            worst = min(code for code, _ in codes.values())  # a 4xx among them: worth another try
            return Outcome(_classify(worst), "; ".join(f"{r}: {t}" for r, (_, t) in codes.items()))
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:  # the relay closes the session: the rest of the round is tried later
                self.smtp = None
            return Outcome(_classify(exc.smtp_code), _reply_text(exc.smtp_code, exc.smtp_error))
        refusals = {r: (int(code), _reply_text(int(code), text)) for r, (code, text) in refused.items()}
        return Outcome(SENT, "250", refusals)

    def _utf8_options(self, sender: str, recipients: list[str]) -> list[str] | Outcome:
        """The MAIL FROM options addresses beyond ASCII need (SMTPUTF8), or the outcome when the relay lacks it: a
        recipient's mail is dead, a sender beyond ASCII (the setting, the same for every mail) waits to be mended."""
        assert self.smtp is not None
        if all(address.isascii() for address in (sender, *recipients)):
            return []
        if self.smtp.has_extn("smtputf8"):
            return ["SMTPUTF8"]
        if not sender.isascii():
            return Outcome(RETRY, f"the sender {sender} is not an ASCII address, and the relay does not offer "
                                  "SMTPUTF8 (check [redctl] sendmail_smtp_from)")  # fmt: skip
        wide = next(address for address in recipients if not address.isascii())
        return Outcome(DEAD, f"{wide} is not an ASCII address, and the relay does not offer SMTPUTF8")

    def _sender_refused(self, sender: str, exc: smtplib.SMTPSenderRefused) -> Outcome:
        """MAIL FROM refused: for this mail's size (552, 555) it is dead, for a while (4xx) retried; any other 5xx is
        about the sender address (sendmail_smtp_from) or the login, the same for every mail: a setting to mend, not
        a mail to bury, and the rest of the round is tried later too."""
        if exc.smtp_code in MAIL_TOO_LARGE or not 500 <= exc.smtp_code < 600:
            if exc.smtp_code == 421:  # the relay closes the session
                self.smtp = None
            return Outcome(_classify(exc.smtp_code), _reply_text(exc.smtp_code, exc.smtp_error))
        self.smtp = None
        return Outcome(
            RETRY,
            f"the relay refused the sender {sender}: {_reply_text(exc.smtp_code, exc.smtp_error)}"
            " (check [redctl] sendmail_smtp_from and sendmail_smtp_user)",
        )

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None


def deliver_round(
    settings: RelaySettings,
    context: ssl.SSLContext | None,
    mails: Iterable[tuple[str, str, list[str], Callable[[], bytes]]],
    record: Callable[[str, Outcome], None],
) -> str:
    """Send each (id, sender, recipients, read message) over one session; `record(id, outcome)` after each.

    Returns "" when the relay was reached, else why not (each mail of the round then gets a RETRY)."""
    session = RelaySession(settings, context)
    pending = list(mails)
    try:
        session.open()
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        why = _describe_failure(settings, exc)
        session.close()
        for mail_id, *_ in pending:
            record(mail_id, Outcome(RETRY, why))
        return why
    try:
        for index, (mail_id, sender, recipients, read) in enumerate(pending):
            if session.smtp is None:
                for rest_id, *_ in pending[index:]:
                    record(rest_id, Outcome(RETRY, "the relay closed the session (421)"))
                break
            try:
                outcome = session.send(sender, recipients, read())
            except (smtplib.SMTPException, OSError) as exc:
                outcome = Outcome(RETRY, _describe_failure(settings, exc))
                session.smtp = None
            except Exception as exc:  # this mail cannot be sent; it must not end the relay, and with it SENDMAIL
                log.exception("mail %s cannot be sent", mail_id)
                outcome = Outcome(DEAD, f"cannot be sent: {type(exc).__name__}: {exc}")
                session.close()  # in an unknown state: the next mail gets a new session
                session = RelaySession(settings, context)
                try:
                    session.open()
                except (smtplib.SMTPException, OSError, ssl.SSLError):
                    session.smtp = None
            record(mail_id, outcome)
    finally:
        session.close()
    return ""


def _describe_failure(settings: RelaySettings, exc: BaseException) -> str:
    where = f"relay {settings.host}:{settings.port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"{where} refused the login of {settings.user}: {_reply_text(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"{where}: {exc} (check [redctl] sendmail_smtp_encr and sendmail_smtp_user)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: certificate not trusted ({exc.verify_message}); name its CA in [redctl] sendmail_smtp_ca_file"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where}: {_reply_text(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{where} not reachable: {exc.strerror}"
    return f"{where}: {type(exc).__name__}: {exc}"
