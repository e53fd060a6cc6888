"""Exasol's WebSocket API (protocol versions 1-3) for one client connection.

Login: `login` -> public key; credentials (password RSA-encrypted) -> session. Then JSON commands, one reply each,
in order, handled by a worker thread; the reading thread answers `abortQuery` at once (it has no reply) so a
running statement can be aborted. With useCompression every frame after the login reply is zlib-compressed.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import zlib
from typing import TYPE_CHECKING, Any

from redpss.devdb.errors import INTERNAL, AuthFailed, DevDbError, Unsupported
from redpss.devdb.wsconn import WebSocketChannel

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
        self._compressed = False

    def serve(self) -> None:
        """Run until the client disconnects or the server drops the connection."""
        if not self.channel.handshake():
            return
        session = self._login()
        if session is None:
            return
        self.session = session
        requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
        worker = threading.Thread(target=self._work, args=(requests,), name=f"devdb-session-{session.id}", daemon=True)
        worker.start()
        try:
            while True:
                request = self._receive()
                if request is None:
                    break
                if request.get("command") == "abortQuery":
                    session.cancel("abort")
                    continue
                requests.put(request)
        finally:
            session.cancel("abort")
            requests.put(None)
            worker.join()
            self.server.forget_session(self)
            session.close()

    def drop(self) -> None:
        """Cut the connection (fault injection and shutdown): the client sees the session vanish."""
        if self.session is not None:
            self.session.cancel("abort")
        self.channel.abort()

    # ---------------------------------------------------------------- framing
    def _receive(self) -> dict[str, Any] | None:
        message = self.channel.recv()
        if message is None:
            return None
        if isinstance(message, bytes):
            message = (zlib.decompress(message) if self._compressed else message).decode()
        try:
            request = json.loads(message)
        except ValueError:
            self._send(_error(DevDbError("the request is not valid JSON")))
            return {}
        return request if isinstance(request, dict) else {}

    def _send(self, reply: dict[str, Any]) -> None:
        data = json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode()
        if self._compressed:
            self.channel.send(zlib.compress(data, 1), binary=True)
        else:
            self.channel.send(data, binary=False)

    # ---------------------------------------------------------------- login
    def _login(self) -> Session | None:
        first = self._receive()
        if first is None:
            return None
        command = first.get("command")
        if command != "login":
            what = "token login (loginToken)" if command == "loginToken" else f"the command {command!r} before login"
            self._send(_error(Unsupported(what, "log in with user and password")))
            return None
        version = max(1, min(MAX_PROTOCOL, int(first.get("protocolVersion") or 1)))
        key = self.server.login_key
        self._send(_ok({"publicKeyPem": key.pem, "publicKeyModulus": key.modulus, "publicKeyExponent": key.exponent}))
        credentials = self._receive()
        if credentials is None:
            return None
        if not self._authenticated(credentials):
            log.warning("devdb: login refused for user %r from %s", credentials.get("username"), self.peer)
            self._send(_error(AuthFailed()))
            return None
        session = self.server.new_session(self, str(credentials.get("username")).upper())
        try:
            session.set_attributes(dict(credentials.get("attributes") or {}))
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

    def _authenticated(self, credentials: dict[str, Any]) -> bool:
        user = str(credentials.get("username") or "")
        try:
            password = self.server.login_key.decrypt(base64.b64decode(str(credentials.get("password") or ""))).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return self.server.check_credentials(user, password)

    # ---------------------------------------------------------------- commands
    def _work(self, requests: queue.Queue[dict[str, Any] | None]) -> None:
        while (request := requests.get()) is not None:
            reply = self._handle(request)
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
                data = session.fetch(
                    int(request["resultSetHandle"]),
                    int(request.get("startPosition", 0)),
                    int(request.get("numBytes", 5 << 20)),
                )
                return _ok(data)
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


def _error(exc: DevDbError) -> dict[str, Any]:
    return {"status": "error", "exception": {"sqlCode": exc.sql_code, "text": exc.text}}
