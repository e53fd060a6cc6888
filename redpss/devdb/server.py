"""The devdb server: one TCP port for WebSocket clients (ws and wss) and pyexasol's HTTP transport tunnels.

Each accepted connection is routed by its first bytes: pyexasol's 12-byte magic packet opens a tunnel, a TLS
ClientHello (0x16) is a wss:// client, anything else a ws:// client. Connections run in threads (DuckDB calls block);
the server itself is a plain object with start()/stop(), used in-process by tests and wrapped by service.py.
What a peer that has not logged in may cost is bounded (limits.py): a deadline for the whole login, a cap on such
connections (the oldest is cut), a small message size, a per-address slowdown of failed logins, and few, short-lived
unused tunnels.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import random
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpss.core.net import explain_bind_error
from redpss.devdb import tls, users
from redpss.devdb.database import Database, SessionHandle
from redpss.devdb.limits import LOGIN_TIMEOUT, MAX_UNAUTHENTICATED, Admission, LoginThrottle, RateLimitedLog
from redpss.devdb.protocol import ClientConnection
from redpss.devdb.session import Session
from redpss.devdb.transfer import Transfers
from redpss.devdb.tunnel import MAGIC, TUNNEL_UNUSED_TIMEOUT
from redpss.devdb.wsconn import WebSocketChannel

log = logging.getLogger("redpss.devdb.server")

TLS_HANDSHAKE_BYTE = 0x16
HOUSEKEEPING_INTERVAL = 1.0  # seconds between summaries of refusals and ends of failed-login bursts
STOP_JOIN_TIMEOUT = 10.0  # seconds stop() waits for connection threads after cutting their sockets


@dataclass(frozen=True)
class ServerSettings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8563
    user: str = "sys"
    password: str = "exasol"  # noqa: S105 - Exasol's well-known default, for a local test database
    tls_cert: Path | None = None
    tls_key: Path | None = None
    login_timeout: float = LOGIN_TIMEOUT  # seconds from accept to a completed login
    max_unauthenticated: int = MAX_UNAUTHENTICATED  # connections not logged in yet; the oldest is cut beyond it
    tunnel_unused_timeout: float = TUNNEL_UNUSED_TIMEOUT  # seconds an HTTP transport tunnel may wait for its statement
    database_name: str = "DEVDB"  # reported at login; an instance's devdb reports its exa_dbname


class DevDbServer:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.login_key = tls.LoginKey()
        self.cert_file, self.key_file = self._certificate()
        self.fingerprint = tls.fingerprint(self.cert_file)
        self._tls = tls.server_context(self.cert_file, self.key_file)
        self._lock = threading.Lock()
        self._clients: set[ClientConnection] = set()
        self._threads: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._session_ids = itertools.count(random.randrange(10**15, 10**16))  # noqa: S311 - ids, not secrets
        self.database: Database | None = None
        self.transfers = Transfers(settings.data_dir / "tmp")
        self.admission = Admission(settings.max_unauthenticated, log)
        self.login_throttle = LoginThrottle(log)
        self.refusals = RateLimitedLog(log)  # connections closed before login, one line per interval
        self._connection_ids = itertools.count(1)
        self.logins = 0  # accepted logins (tests observe how often a client logged in)
        self._lose_reply_to = ""  # fault injection: the next statement starting so is carried out, its reply lost
        self._lose_reply_containing = ""  # ... and holding this
        self.port = settings.port
        self.host_ip = settings.host

    def _certificate(self) -> tuple[Path, Path]:
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            return self.settings.tls_cert, self.settings.tls_key
        folder = self.settings.data_dir / "tls"
        cert, key = folder / "devdb.crt", folder / "devdb.key"
        if not cert.exists() or not key.exists():
            tls.self_signed(cert, key)
        return cert, key

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Open the database and listen; returns once connections are accepted (port 0 picks a free port)."""
        self._stopping.clear()
        self.database = Database(self.settings.data_dir)
        admin = self.database.cursor()
        try:
            users.set_admin(admin, self.settings.user)
        finally:
            admin.close()
        self.transfers = Transfers(self.database.tmp_dir)
        self.transfers.tunnels.unused_timeout = self.settings.tunnel_unused_timeout
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.settings.host, self.settings.port))
            listener.listen(64)
        except OSError as exc:
            listener.close()
            self.database.close()
            self.database = None
            raise explain_bind_error(exc, self.settings.host, self.settings.port) from exc
        self._listener = listener
        self.port = listener.getsockname()[1]
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        self._acceptor = threading.Thread(target=self._accept_loop, args=(selector,), name="devdb-accept", daemon=True)
        self._acceptor.start()
        log.info(
            "devdb listening on %s:%d (ws and wss, certificate fingerprint %s)",
            self.settings.host,
            self.port,
            self.fingerprint,
        )

    def stop(self) -> None:
        """Stop accepting, drop every session (open transactions roll back) and close the database."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join()
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop_sessions()
        self.admission.cut_all()
        self.transfers.tunnels.close_all()
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + STOP_JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = sum(1 for thread in threads if thread.is_alive())
        if stuck:
            log.warning(
                "devdb: %d connection thread(s) did not end within %.0f s; closing the database anyway",
                stuck,
                STOP_JOIN_TIMEOUT,
            )
        if self.database is not None:
            self.database.close()
            self.database = None
        log.info("devdb stopped")

    def drop_sessions(self) -> None:
        """Cut every client connection at once, as a database crash or network failure would."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.drop()

    def lose_next_reply(self, statement_start: str, containing: str = "") -> None:
        """Fault injection: carry out the next statement that starts with `statement_start` (and holds `containing`)
        (committing it, if the session autocommits) and then cut its connection instead of answering: the client
        cannot tell whether the statement took effect, as when a database or network dies between a COMMIT and its
        reply."""
        with self._lock:
            self._lose_reply_to = statement_start
            self._lose_reply_containing = containing

    def reply_to_lose(self, request: dict[str, Any]) -> bool:
        """True, once, for the request whose reply lose_next_reply() asked to lose."""
        with self._lock:
            start, text = self._lose_reply_to, str(request.get("sqlText", "")).lstrip()
            if not start or not text.startswith(start) or self._lose_reply_containing not in text:
                return False
            self._lose_reply_to = ""
            return True

    def wait_idle(self, timeout: float) -> bool:
        """True once no client is connected (for a graceful drain), False after timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._clients:
                    return True
            time.sleep(0.05)
        return False

    def session_count(self) -> int:
        with self._lock:
            return sum(1 for client in self._clients if client.session is not None)

    # ---------------------------------------------------------------- sessions
    def check_credentials(self, user: str, password: str) -> str | None:
        """The session's user name when user/password may log in (the administrator or a created user), else None."""
        assert self.database is not None
        cursor = self.database.cursor()
        try:
            name = users.login_user(cursor, self.settings.user, self.settings.password, user, password)
        finally:
            cursor.close()
        if name is not None:
            self.logins += 1
        return name

    def new_session(self, client: ClientConnection, user: str) -> Session:
        assert self.database is not None
        session = Session(next(self._session_ids), user, self.database, self.transfers)
        users.bind_session(session.cursor, user)
        self.database.sessions.add(session.id, SessionHandle(user, client.drop, session.cancel))  # for KILL
        return session

    def forget_session(self, client: ClientConnection) -> None:
        with self._lock:
            self._clients.discard(client)

    def logged_in(self, client: ClientConnection) -> None:
        """The client no longer counts against the cap on connections that have not logged in."""
        self.admission.release(client.admission_key)

    def open_result_sets(self) -> int:
        """Result sets held for clients (a big one holds a DuckDB cursor until closed or its session ends)."""
        with self._lock:
            sessions = [client.session for client in self._clients if client.session is not None]
        return sum(session.open_result_sets() for session in sessions)

    def refused(self, peer: str, reason: str) -> None:
        """One log line for a connection closed before login (rate-limited: a flood is summed up)."""
        self.refusals.warning("devdb: closed a connection from %s before login: %s", peer, reason)

    # ---------------------------------------------------------------- connections
    def _accept_loop(self, selector: selectors.BaseSelector) -> None:
        assert self._listener is not None
        with selector:
            next_housekeeping = 0.0
            while not self._stopping.is_set():
                self.transfers.tunnels.expire()
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
                    self._housekeeping()
                if not selector.select(timeout=0.1):
                    continue
                try:
                    sock, peer = self._listener.accept()
                except OSError as exc:
                    self.refusals.warning("devdb: cannot accept a connection: %s", exc)
                    continue
                key = next(self._connection_ids)
                address = f"{peer[0]}:{peer[1]}"
                self.admission.admit(key, functools.partial(_cut, sock), address)
                thread = threading.Thread(
                    target=self._connection, args=(sock, address, key), name="devdb-connection", daemon=True
                )
                with self._lock:
                    self._threads.add(thread)
                thread.start()

    def _housekeeping(self) -> None:
        """Sum up refusal floods and failed-login bursts that have ended, so their counts reach the log."""
        self.refusals.flush()
        self.admission.flush_log()
        self.transfers.tunnels.flush_logs()
        self.login_throttle.expire()

    def _connection(self, sock: socket.socket, peer: str, key: int) -> None:
        keep = False
        try:
            keep = self._route(sock, peer, key)
        except TimeoutError:
            self.refused(peer, f"nothing usable within the login deadline ({self.settings.login_timeout:.0f} s)")
        except (OSError, ssl.SSLError) as exc:
            log.debug("devdb: connection from %s ended: %s", peer, exc)
        except Exception:
            log.exception("devdb: connection from %s failed", peer)
        finally:
            self.admission.release(key)
            if not keep:
                sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _route(self, sock: socket.socket, peer: str, key: int) -> bool:
        """Serve the connection; True when the socket was kept (an HTTP transport tunnel)."""
        sock.settimeout(self.settings.login_timeout)
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            return False
        if first[0] == MAGIC[0]:
            head = sock.recv(len(MAGIC), socket.MSG_PEEK | socket.MSG_WAITALL)
            if head == MAGIC:
                sock.recv(len(MAGIC))
                sock.settimeout(None)
                self.admission.release(key)
                self.transfers.tunnels.accept(sock, peer.rpartition(":")[0])
                return True
            self.refused(peer, "neither a WebSocket client nor pyexasol's HTTP transport")
            return False
        channel_sock: socket.socket = sock
        if first[0] == TLS_HANDSHAKE_BYTE:
            try:
                channel_sock = self._tls.wrap_socket(sock, server_side=True)
            except ssl.SSLError as exc:
                self.refused(peer, f"TLS handshake failed: {exc.reason or exc}")
                return False
        client = ClientConnection(self, WebSocketChannel(channel_sock), peer)
        client.admission_key = key
        with self._lock:
            if self._stopping.is_set():
                return False
            self._clients.add(client)
        try:
            client.serve()
        finally:
            self.forget_session(client)
            if channel_sock is not sock:
                channel_sock.close()
        return False

    def status(self) -> str:
        return f"listening on {self.settings.host}:{self.port}, {self.session_count()} session(s)"


def _cut(sock: socket.socket) -> None:
    """End a connection from another thread: its blocked reads return end-of-stream."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def running(self):  # type: ignore[no-untyped-def]
        """`with server.running():` start and always stop (tests)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
