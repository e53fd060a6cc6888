"""CFISRV's FTP handlers: pyftpdlib's TLS handler with this project's rules set on its own classes.

Every option lives on a class made here (never on pyftpdlib's classes or module globals), and `handler_class`
derives one class per listener, so two servers in one process (the tests, the benchmark) never share settings.

- TLS is required before USER/PASS (explicit AUTH TLS) or from the first byte (implicit), and on the data channel
  (PROT P before PASV/EPSV); plain FTP never reaches a login.
- One account; its password is compared in constant time; `anonymous` is an unknown user like any other.
- Read-only: list, change folder, download (pyftpdlib permissions "elr"). The database only pulls files.
- Data connections only in passive mode, from the address of the control connection.
"""

from __future__ import annotations

import hmac
import logging
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # pyftpdlib 2 imports asyncore/asynchat: deprecated in 3.11, the pinned pyasyncore/pyasynchat from 3.12 on.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
    from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

from OpenSSL import SSL
from OpenSSL._util import lib as libssl  # pyOpenSSL's cffi binding of libssl, for what it does not wrap

from redpss.cfi.confine import ConfinedFilesystem, Confinement

log = logging.getLogger("redpss.cfi")

READ_ONLY = "elr"  # pyftpdlib permissions: change folder, list, retrieve
LOGIN_FAILED = "Login incorrect."
# Bytes read from a file and handed to TLS per step: larger steps mean fewer trips through the IO loop per GiB
# (bench/bench_ftps.py measured 64 KiB, pyftpdlib's default, against this).
TRANSFER_CHUNK = 256 * 1024
# Replies queued for a control connection that does not read them: pyftpdlib answers every command into an unbounded
# queue and keeps reading, so a peer sending NOOP without reading grew the server's memory without end, before any
# login. An FTP client reads each reply before its next command; a few queued at most.
MAX_QUEUED_REPLIES = 256
CLOSE_GRACE = 5.0  # seconds a connection told 421 has to take the reply before it is closed regardless


@dataclass
class Counters:
    """What status() reports; updated on the IO loop's thread only."""

    logins: int = 0
    failed_logins: int = 0
    files_sent: int = 0
    data_channels: int = 0
    data_channels_resumed: int = 0  # TLS session reused from the control connection
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1


class OneAccountAuthorizer(DummyAuthorizer):  # type: ignore[misc]
    """The instance's single FTPS account, read-only, rooted at the data tree."""

    def __init__(self, user: str, password: str, home: Path) -> None:
        super().__init__()
        self._user = user
        self._password = password.encode()
        self.add_user(user, "", str(home), perm=READ_ONLY, msg_login="Login successful.", msg_quit="Goodbye.")

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        same_user = hmac.compare_digest(username.encode(), self._user.encode())
        same_password = hmac.compare_digest(password.encode(), self._password)
        if not (same_user and same_password and self._password):
            raise AuthenticationFailed(LOGIN_FAILED)


def session_reused(connection: SSL.Connection) -> bool:
    """Whether the handshake resumed an earlier session (pyOpenSSL has no wrapper for SSL_session_reused)."""
    return bool(libssl.SSL_session_reused(connection._ssl))


def whole_writes(connection: SSL.Connection) -> None:
    """Let one SSL_write send a whole chunk instead of one 16 KiB record.

    pyOpenSSL enables partial writes, with which OpenSSL returns after every record: a 256 KiB chunk then takes 16
    trips through the IO loop, and asynchat copies the rest of the chunk after each. Without them a write that would
    block answers WantWrite, pyftpdlib retries the same chunk, and OpenSSL goes on where it stopped (pyOpenSSL sets
    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER, so the retried chunk may sit at another address).
    """
    libssl.SSL_clear_mode(connection._ssl, libssl.SSL_MODE_ENABLE_PARTIAL_WRITE)


class CfiDtpHandler(TLS_DTPHandler):  # type: ignore[misc]
    """A data connection: TLS (PROT P is required), larger transfer steps, counted resumptions."""

    ac_out_buffer_size = TRANSFER_CHUNK
    ac_in_buffer_size = TRANSFER_CHUNK

    def __init__(self, sock: socket.socket, cmd_channel: Any) -> None:
        # A file's last TLS record is usually a short segment: without TCP_NODELAY it waits for the ACK of the
        # segments before it (Nagle), pyftpdlib sets the option on control connections only.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, cmd_channel)

    def __repr__(self) -> str:
        # pyftpdlib formats the connection into every debug message, logged or not: keep that cheap.
        return f"<{type(self).__name__} {self.cmd_channel.remote_ip}:{self.cmd_channel.remote_port}>"

    # The RETR usually arrives before the client starts the data connection's handshake. pyftpdlib would queue the
    # file at once and wait for READ|WRITE: the socket is writable all along, so the loop spun about 40 times per
    # data connection while the handshake waited for the client, taking the CPU the client needed (2 CPUs). What
    # comes during the handshake is held here and handed on once it is done.
    _held: list[tuple[str, Any]]

    def _hold(self, what: str, data: Any) -> bool:
        if not self._ssl_accepting:
            return False
        self.__dict__.setdefault("_held", []).append((what, data))
        return True

    def push(self, data: Any) -> None:
        if not self._hold("push", data):
            super().push(data)

    def push_with_producer(self, producer: Any) -> None:
        if hasattr(producer, "buffer_size"):
            producer.buffer_size = TRANSFER_CHUNK  # per producer: pyftpdlib's FileProducer class stays as it is
        if not self._hold("producer", producer):
            super().push_with_producer(producer)

    def close_when_done(self) -> None:
        if not self._hold("close", None):
            super().close_when_done()

    def _release(self) -> None:
        for what, data in self.__dict__.pop("_held", []):
            if what == "push":
                super().push(data)
            elif what == "producer":
                super().push_with_producer(data)
            else:
                super().close_when_done()

    def handle_ssl_established(self) -> None:
        counters: Counters = self.cmd_channel.counters
        counters.data_channels += 1
        if isinstance(self.socket, SSL.Connection):
            whole_writes(self.socket)
            if session_reused(self.socket):
                counters.data_channels_resumed += 1
        super().handle_ssl_established()
        self._release()


class CfiHandler(TLS_FTPHandler):  # type: ignore[misc]
    """Explicit FTPS (AUTH TLS): the server greets in plain text, the client must switch to TLS before USER."""

    tls_control_required = True
    tls_data_required = True
    dtp_handler = CfiDtpHandler
    abstracted_fs = ConfinedFilesystem
    banner = "RED-PSS CFISRV ready (TLS required)."
    permit_foreign_addresses = False
    permit_privileged_ports = False
    use_sendfile = False
    max_login_attempts = 3
    auth_failed_timeout = 1  # seconds before a failed login is answered (pyftpdlib's brake on guessing)
    timeout = 300  # seconds a control connection may idle
    # seconds from connect to a successful login: the idle timeout starts again at every command, so without this a
    # peer that never logs in (silent in the TLS handshake, or sending NOOP) held one of max_cons slots for good
    login_timeout = 30.0
    counters: Counters  # set per listener by handler_class
    _login_deadline: Any = None

    def __init__(self, conn: socket.socket, server: Any, ioloop: Any = None) -> None:
        super().__init__(conn, server, ioloop)
        if not self._closed:
            self._login_deadline = self.ioloop.call_later(
                self.login_timeout, self._login_overdue, _errback=self.handle_error
            )

    def _login_overdue(self) -> None:
        self._login_deadline = None
        if self.authenticated or self._closed or self._closing:
            return
        self.counters.refuse("no login in time")
        log.warning("closed a connection from %s: no login within %g s", self.remote_ip, self.login_timeout)
        if self._ssl_accepting:
            self.close()  # in the TLS handshake: no reply can be sent
        else:
            self.respond(f"421 No login within {self.login_timeout:g} seconds; closing the connection.")
            self._close_after_reply()

    def handle_timeout(self) -> None:
        super().handle_timeout()  # 421, then close once the reply is out ...
        self._close_after_reply()

    def _close_after_reply(self) -> None:
        """Close once the last reply is sent, or after CLOSE_GRACE seconds: a peer that does not read would keep a
        connection waiting for its queue to drain (pyftpdlib's close_when_done) open, and its slot taken, for good."""
        self.close_when_done()
        if not self._closed:
            self.ioloop.call_later(CLOSE_GRACE, self._close_now, _errback=self.handle_error)

    def _close_now(self) -> None:
        if not self._closed:
            self.close()

    def push(self, data: Any) -> None:
        if len(self.producer_fifo) >= MAX_QUEUED_REPLIES:
            if not self._closed:
                self.counters.refuse("replies not read")
                log.warning("closed a connection from %s: it sends commands without reading replies", self.remote_ip)
                self.close()
            return
        super().push(data)

    def close(self) -> None:
        if self._login_deadline is not None:
            self._login_deadline.cancel()
            self._login_deadline = None
        super().close()

    def __repr__(self) -> str:
        # pyftpdlib formats the connection into every debug message, logged or not: keep that cheap.
        return f"<{type(self).__name__} {self.remote_ip}:{self.remote_port}>"

    def log(self, msg: str, logfun: Callable[..., Any] | None = None) -> None:
        """pyftpdlib's per-command lines (session opened, USER, RETR ...) at DEBUG: what matters is logged below."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s:%s %s", self.remote_ip, self.remote_port, msg)

    def on_login(self, username: str) -> None:
        self.counters.logins += 1
        log.debug("%s:%s logged in as %s", self.remote_ip, self.remote_port, username)

    def on_login_failed(self, username: str, password: str) -> None:
        self.counters.failed_logins += 1
        log.warning("refused a login as %r from %s", username, self.remote_ip)

    def on_file_sent(self, file: str) -> None:
        self.counters.files_sent += 1
        log.info("sent %s to %s", file, self.remote_ip)

    def on_incomplete_file_sent(self, file: str) -> None:
        log.warning("transfer of %s to %s ended early", file, self.remote_ip)

    def process_command(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        if cmd in ("USER", "PASS") and not self._ssl_established:
            self.counters.refuse("plain-text login")
        elif cmd in ("PORT", "EPRT"):
            self.counters.refuse("active mode")
            self.respond("502 Active mode is not offered; use passive mode (PASV/EPSV).")
            return
        super().process_command(cmd, *args, **kwargs)

    def respond(self, resp: str, logfun: Callable[..., Any] = logging.debug) -> None:
        if resp.startswith("550") and "outside the user's root" in resp:
            self.counters.refuse("path outside the data tree")
            resp = "550 No such file or folder inside the data tree."
        super().respond(resp, logfun)


class ImplicitCfiHandler(CfiHandler):
    """Implicit FTPS (the database's ftps://): TLS from the first byte, the greeting comes after the handshake."""

    def handle(self) -> None:
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self) -> None:
        CfiHandler.handle(self)


@dataclass(frozen=True)
class ListenerSettings:
    """What one listener's handler class carries."""

    context: SSL.Context
    authorizer: OneAccountAuthorizer
    confinement: Confinement
    passive_ports: range
    counters: Counters


def handler_class(base: type[CfiHandler], settings: ListenerSettings) -> type[CfiHandler]:
    """A subclass of `base` carrying one listener's context, account, confinement and passive ports."""
    filesystem = type("ServedFilesystem", (ConfinedFilesystem,), {"confinement": settings.confinement})
    attributes = {
        "ssl_context": settings.context,
        "authorizer": settings.authorizer,
        "abstracted_fs": filesystem,
        "passive_ports": list(settings.passive_ports),
        "counters": settings.counters,
    }
    return type(f"Served{base.__name__}", (base,), attributes)
