"""Exasol's WebSocket API (protocol versions 1-3) for one client connection.

Login: `login` -> public key; credentials (password RSA-encrypted) -> session. Then JSON commands, one reply each,
in order, handled by a worker thread; the reading thread answers `abortQuery` at once (it has no reply) so a
running statement can be aborted. With useCompression every frame after the login reply is zlib-compressed.
Before login nothing a peer sends may raise: a malformed message gets an Exasol-style error reply and the connection
is closed, with one (rate-limited) log line; the login as a whole has a deadline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

from redpss.core.digits import is_decimal
from redpss.devdb import wsapi
from redpss.devdb.errors import AUTH_FAILED, CONNECTION_EXCEPTION, INTERNAL, AuthFailed, DevDbError, Unsupported
from redpss.devdb.wsconn import MessageTooBig, WebSocketChannel

if TYPE_CHECKING:
    from redpss.devdb.server import DevDbServer
    from redpss.devdb.session import Session

log = logging.getLogger("redpss.devdb.protocol")

MAX_PROTOCOL = 3
RELEASE_VERSION = "8.32.0"  # >= 8.32 makes pyexasol send PUBLIC KEY with encrypted HTTP transport, which devdb checks


class ClientConnection:
    def __init__(self, server: DevDbServer, channel: WebSocketChannel, peer: str) -> None:
        self.server = server
        self.channel = channel
        self.peer = peer
        self.session: Session | None = None
        self.admission_key = 0  # the server's key for this connection while it has not logged in
        self._compressed = False
        self._dropped = threading.Event()

    @property
    def address(self) -> str:
        """The client's IP address (peer without the port)."""
        return self.peer.rpartition(":")[0]

    def serve(self) -> None:
        """Run until the client disconnects or the server drops the connection."""
        deadline = time.monotonic() + self.server.settings.login_timeout
        if not self.channel.handshake(deadline):
            if self.channel.close_reason:
                self.server.refused(self.peer, self.channel.close_reason)
            return
        try:
            session = self._login(deadline)
        except DevDbError as exc:
            self.server.refused(self.peer, exc.text)
            with contextlib.suppress(OSError):
                self._send(_error(exc))
            self.channel.close()
            return
        if session is None:
            if self.channel.close_reason:
                self.server.refused(self.peer, self.channel.close_reason)
            return
        self.session = session
        self.server.logged_in(self)
        self.channel.authenticated()
        requests: queue.Queue[tuple[int, dict[str, Any] | DevDbError] | None] = queue.Queue()
        worker = threading.Thread(target=self._work, args=(requests,), name=f"devdb-session-{session.id}", daemon=True)
        worker.start()
        received = 0  # requests read so far: the worker is told each one's number, an abort the last one's
        try:
            while True:
                try:
                    request: dict[str, Any] | DevDbError | None = self._receive()
                except DevDbError as exc:
                    request = exc  # answered in order by the worker
                if request is None:
                    break
                if isinstance(request, dict) and request.get("command") == "abortQuery":
                    # Exasol reads an abort only once the statements sent before it run; this reader reads ahead
                    # of the worker, so the abort is for every statement read so far, started or not
                    session.abort_requests_through(received)
                    continue
                received += 1
                requests.put((received, request))
        finally:
            session.cancel("abort")
            requests.put(None)
            worker.join()
            self.server.forget_session(self)
            session.close()

    def drop(self) -> None:
        """Cut the connection (fault injection and shutdown): the client sees the session vanish."""
        self._dropped.set()
        if self.session is not None:
            self.session.cancel("abort")
        self.channel.abort()

    # ---------------------------------------------------------------- framing
    def _receive(self, deadline: float | None = None) -> dict[str, Any] | None:
        """The next request; None at the end of the connection; DevDbError (raised) for a malformed message."""
        message = self.channel.recv(deadline)
        if message is None:
            return None
        if isinstance(message, bytes):
            try:
                message = (self.channel.inflate(message) if self._compressed else message).decode()
            except UnicodeDecodeError as exc:
                raise _bad_request(f"the message is not valid UTF-8 (byte {exc.start})") from None
            except zlib.error as exc:
                raise _bad_request(f"the message is not zlib-compressed as useCompression requires ({exc})") from None
            except MessageTooBig as exc:
                raise _bad_request(str(exc)) from None
        try:
            request = json.loads(message)
        except ValueError as exc:
            raise _bad_request(f"the message is not valid JSON ({exc})") from None
        except RecursionError:
            raise _bad_request("the message is JSON nested too deeply") from None
        if not isinstance(request, dict):
            raise _bad_request(f"the message is JSON {type(request).__name__}, not an object with a command")
        return request

    def _send(self, reply: dict[str, Any]) -> None:
        data = json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()
        if self._compressed:
            self.channel.send(zlib.compress(data, 1), binary=True)
        else:
            self.channel.send(data, binary=False)

    # ---------------------------------------------------------------- login
    def _login(self, deadline: float) -> Session | None:
        """The session, or None when the peer went away; DevDbError for a refused or malformed login."""
        first = self._receive(deadline)
        if first is None:
            return None
        command = first.get("command")
        if command != "login":
            shown = _shown(command)
            what = "token login (loginToken)" if command == "loginToken" else f"the command {shown} before login"
            raise Unsupported(what, "log in with user and password")
        version = _protocol_version(first.get("protocolVersion"))
        key = self.server.login_key
        self._send(_ok({"publicKeyPem": key.pem, "publicKeyModulus": key.modulus, "publicKeyExponent": key.exponent}))
        credentials = self._receive(deadline)
        if credentials is None:
            return None
        attributes = credentials.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _bad_request("the login's attributes are not a JSON object")
        wait = self.server.login_throttle.admit(self.address, deadline - time.monotonic())
        if wait is None:
            raise DevDbError(
                f"Connection exception - too many failed logins from {self.address}; try again later", AUTH_FAILED
            )
        if wait and self._dropped.wait(wait):
            return None
        user = self._authenticated(credentials)
        if user is None:
            if not self.server.login_throttle.throttled(self.address):
                self.server.refusals.warning(
                    "devdb: login refused for user %s from %s", _shown(credentials.get("username")), self.peer
                )
            self.server.login_throttle.failed(self.address)
            self._send(_error(AuthFailed()))
            return None
        self.server.login_throttle.succeeded(self.address)
        session = self.server.new_session(self, user)
        try:
            session.set_attributes(dict(attributes))
        except (ValueError, TypeError) as exc:
            self.server.forget_session(self)
            session.close()
            raise _bad_request(f"the login's attributes are invalid ({exc})") from None
        except DevDbError as exc:
            self._send(_error(exc))
            self.server.forget_session(self)
            session.close()
            return None
        self._send(
            _ok(
                {
                    "sessionId": session.id,
                    "protocolVersion": version,
                    "releaseVersion": RELEASE_VERSION,
                    "databaseName": self.server.settings.database_name,
                    "productName": "EXASolution (RED-PSS devdb over DuckDB)",
                    "maxDataMessageSize": 64 * 1024 * 1024,
                    "maxIdentifierLength": 128,
                    "maxVarcharLength": 2_000_000,
                    "identifierQuoteString": '"',
                    "timeZone": "UTC",
                    "timeZoneBehavior": "INVALID SHIFT AMBIGUOUS ST",
                }
            )
        )
        self._compressed = bool(credentials.get("useCompression"))
        return session

    def _authenticated(self, credentials: dict[str, Any]) -> str | None:
        """The session's user name, or None for a wrong user or password."""
        user = str(credentials.get("username") or "")
        try:
            password = self.server.login_key.decrypt(base64.b64decode(str(credentials.get("password") or ""))).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return self.server.check_credentials(user, password)

    # ---------------------------------------------------------------- commands
    def _work(self, requests: queue.Queue[tuple[int, dict[str, Any] | DevDbError] | None]) -> None:
        assert self.session is not None
        while (item := requests.get()) is not None:
            number, request = item
            self.session.start_request(number)
            if self._dropped.is_set():
                return  # the connection was cut (KILL SESSION, drop_sessions): nothing queued may start any more
            if isinstance(request, DevDbError):
                try:
                    self._send(_error(request))
                except OSError:
                    self.channel.abort()
                    return
                continue
            reply = self._handle(request)
            if self.server.reply_to_lose(request):
                self.drop()
            if self._dropped.is_set():
                return  # cut while it ran: the client sees the connection vanish, not the cancelled statement's error
            try:
                self._send(reply)
            except OSError:
                self.channel.abort()
                return
            if request.get("command") == "disconnect":
                self.channel.close()
                return

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: PLR0911 - one return per command
        session = self.session
        assert session is not None
        command = request.get("command")
        try:
            if isinstance(request.get("attributes"), dict) and command != "setAttributes":
                session.set_attributes(request["attributes"])
            if command == "execute":
                result = session.execute(str(request.get("sqlText", "")))
                return _ok({"numResults": 1, "results": [result]}, session.attributes())
            if command == "executeBatch":
                results = [session.execute(str(sql)) for sql in request.get("sqlTexts") or []]
                return _ok({"numResults": len(results), "results": results}, session.attributes())
            if command == "fetch":
                return _ok(session.fetch(*wsapi.fetch_arguments(request)))
            if command in wsapi.COMMANDS:
                return _ok(*wsapi.handle(session, request))
            if command == "closeResultSet":
                session.close_results([int(h) for h in request.get("resultSetHandles") or []])
                return _ok(None)
            if command == "getAttributes":
                return _ok(None, session.attributes())
            if command == "setAttributes":
                session.set_attributes(dict(request.get("attributes") or {}))
                return _ok(None, session.attributes())
            if command == "disconnect":
                return _ok(None)
            if command == "getHosts":
                return _ok({"numNodes": 1, "nodes": [self.server.host_ip]})
            raise Unsupported(f"the WebSocket command {command!r}")
        except DevDbError as exc:
            return _error(exc)
        except Exception as exc:
            log.exception("devdb: session %s: %s failed", session.id, command)
            return _error(DevDbError(f"devdb internal error: {type(exc).__name__}: {exc}", INTERNAL))


def _ok(data: dict[str, Any] | None, attributes: dict[str, Any] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"status": "ok"}
    if data is not None:
        reply["responseData"] = data
    if attributes is not None:
        reply["attributes"] = attributes
    return reply


def _bad_request(text: str) -> DevDbError:
    return DevDbError(f"malformed request: {text}", CONNECTION_EXCEPTION)


def _shown(value: object, limit: int = 60) -> str:
    """A peer's value for a message or log line: repr, cut short (it may be up to a message long)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _protocol_version(value: object) -> int:
    """The protocol version to speak: the client's (1 when absent), capped at MAX_PROTOCOL."""
    if value is None:
        return 1
    if isinstance(value, str) and is_decimal(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_request(f"protocolVersion must be a number from 1 to {MAX_PROTOCOL}, not {_shown(value)}")
    return max(1, min(MAX_PROTOCOL, value))


def _error(exc: DevDbError) -> dict[str, Any]:
    return {"status": "error", "exception": {"sqlCode": exc.sql_code, "text": exc.text}}
