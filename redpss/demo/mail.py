"""The demo's mail: a local SMTP relay it starts, a mail from the database's side through SENDMAIL, and where to see it.

`SmtpRelay` is a real relay (aiosmtpd) on a loopback port, over STARTTLS, implicit TLS or plain, with SASL auth when
a user is given, keeping every message it takes. It can be stopped and started again on the same port (a relay that
is down for a while), refuse recipients for good (550) or for now (451) or the sender (553), offer SMTPUTF8 or
not, and hands SENDMAIL the config keys that point at it, its own CA file included. The tests use it too
(tests/support/smtp_relay.py): it lives here because the demo ships in the package, and tests may import the package
but not the other way round.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import gc
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from redpss.core.config import load_config
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.devdb.tls import self_signed, server_context
from redpss.sql.udf.pss_client import PssClient, PssError


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    data: bytes

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.relay.refuse_senders:
            return "553 5.7.1 sender address not owned by the authenticated user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.relay.refuse:
            return "550 5.1.1 no such user here"
        if address in self.relay.defer:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.relay.lock:
            self.relay.received.append(Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), content))
            self.relay.arrived.notify_all()
        if self.relay.answer_after:  # a relay that scans a mail before it answers its end (it took it already)
            await asyncio.sleep(self.relay.answer_after)
        return "250 2.0.0 accepted"


class _Controller(Controller):
    def factory(self) -> SMTP:
        # Under implicit TLS, AUTH without aiosmtpd's STARTTLS check is what we want; its warning says otherwise.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return SMTP(self.handler, **self.SMTP_kwargs)


class SmtpRelay:
    """`start()`/`stop()` any number of times on one port; `received` holds what it took, in order."""

    def __init__(
        self,
        workdir: Path,
        mode: str = "STARTTLS",
        *,
        user: str = "",
        password: str = "",
        refuse: Iterable[str] = (),
        defer: Iterable[str] = (),
        port: int | None = None,
        utf8: bool = False,
    ) -> None:
        self.mode = mode
        self.utf8 = utf8  # offers SMTPUTF8 (addresses beyond ASCII)
        self.refuse_senders: set[str] = set()  # MAIL FROM refused (553), as a relay does for a sender not owned
        self.answer_after = 0.0  # seconds before the reply to a mail's end (a relay that scans attachments first)
        self.user = user
        self.password = password
        self.refuse = set(refuse)
        self.defer = set(defer)
        self.port = port or free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.logins: list[str] = []
        self.cert_file = workdir / "relay-cert.pem"
        self.key_file = workdir / "relay-key.pem"
        if mode != "PLAIN" and not self.cert_file.exists():
            self_signed(self.cert_file, self.key_file)
        self.controller: _Controller | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        if ok:
            self.logins.append(f"{mechanism}:{self.user}")
        return AuthResult(success=ok)

    def start(self) -> None:
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": self.utf8}
        if self.mode == "STARTTLS":
            kwargs.update(tls_context=server_context(self.cert_file, self.key_file), require_starttls=True)
        elif self.mode == "TLS":
            kwargs.update(ssl_context=server_context(self.cert_file, self.key_file))
        if self.user:
            # aiosmtpd counts only STARTTLS as TLS: under implicit TLS it would hide AUTH unless told not to insist
            kwargs.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self.mode == "STARTTLS"
            )
        self.controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller.loop.close()
            self.controller = None
            # aiosmtpd 1.4 never closes the plain transport under a STARTTLS session (the relay's side of a socket
            # the client has already closed); collect it now, quietly, instead of in a later test.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()

    def config(self, sender: str = "redsys@test.example") -> dict[str, str]:
        """The [redctl] keys that make SENDMAIL relay here, trusting this relay's certificate."""
        keys = {
            "sendmail_smtp_host": "127.0.0.1",
            "sendmail_smtp_port": str(self.port),
            "sendmail_smtp_encr": self.mode,
            "sendmail_smtp_from": sender,
        }
        if self.mode != "PLAIN":
            keys["sendmail_smtp_ca_file"] = str(self.cert_file)
        if self.user:
            keys.update(sendmail_smtp_user=self.user, sendmail_smtp_pass=self.password)
        return keys

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        """The messages once at least `count` arrived; AssertionError naming how many did when `timeout` passes."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"the relay received {len(self.received)} of {count} mail(s) within {timeout} s")
            return list(self.received)

    def __enter__(self) -> SmtpRelay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


RELAY_FOLDER = "mail-relay"  # below the instance's tmp/: the demo relay's certificate
DEMO_RECIPIENT = "operator@demo.example"


def relay_keys(paths: InstancePaths) -> dict[str, str]:
    """The [redctl] keys of the demo instance: SENDMAIL relays over STARTTLS to the local relay `demonstrate` starts
    (its certificate made now, so SENDMAIL verifies it), and tries again after 1 s while the relay is not up yet."""
    folder = paths.tmp / RELAY_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    relay = SmtpRelay(folder, "STARTTLS")
    return {**relay.config("redsys@demo.example"), "sendmail_retry_delay": "1", "sendmail_retry_max_delay": "2"}


def demonstrate(paths: InstancePaths, timeout: float = 30.0) -> None:
    """Start the local relay, hand a mail with an attachment to SENDMAIL as PSS_MAIL does, show what arrived."""
    config = load_config(paths.config_file)
    redctl = config.redctl
    attachment = paths.data_work / "demo-report.csv"
    attachment.write_text("JOB_NAME,STATUS,RUNS\nHEARTBEAT,OK,7\nBROKEN,FAILED,2\n")
    relay = SmtpRelay(paths.tmp / RELAY_FOLDER, "STARTTLS", port=redctl.sendmail_smtp_port)
    print(f"== mail: a local SMTP relay on 127.0.0.1:{relay.port} (STARTTLS); SENDMAIL relays to it", flush=True)
    with relay:
        try:
            with PssClient("127.0.0.1", redctl.sendmail_port, instance_secret(paths), client="demo PSS_MAIL") as c:
                reply = c.send_mail(
                    DEMO_RECIPIENT,
                    "RED-PSS demo report",
                    "The run summary is attached.\n",
                    attachments=["work/demo-report.csv"],
                    schema="DEMO",
                )
        except PssError as exc:
            print(f"   SENDMAIL did not take the mail: {exc}")
            return
        print(f"   mail {reply['mail_id']} spooled in {paths.data / 'mail' / 'spool'} and acknowledged")
        try:
            [received] = relay.wait_for(1, timeout)
        except AssertionError as exc:
            print(f"   {exc}; see `redctl show` and {paths.log_file('sendmail')}")
            return
    message = received.message()
    names = ", ".join(str(part.get_filename()) for part in message.iter_attachments())
    print(
        f"   the relay received it: From {message['From']}, To {', '.join(received.recipients)}, "
        f"Subject {message['Subject']!r}, attachment(s) {names}"
    )
    print(
        f"   where to see it: SENDMAIL's log {paths.log_file('sendmail')}; the spool (now empty) and dead letters "
        f"below {paths.data / 'mail'}; `redctl show` and `redinfo` print the spool's line"
    )
