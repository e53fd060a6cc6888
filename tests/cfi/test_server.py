"""CfiServer's IO loop in its thread: the heartbeat that healthy() reads, and stopping."""

from __future__ import annotations

import contextlib
import ftplib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pycurl  # type: ignore[import-untyped]
import pytest

from redpss.cfi import handlers
from redpss.cfi.confine import Confinement
from redpss.cfi.handlers import CfiHandler, Counters, ListenerSettings, OneAccountAuthorizer
from redpss.cfi.server import CfiServer, Listener, serve_in_thread
from redpss.cfi.tls import CertificateFiles, server_context
from redpss.core.net import free_port, free_port_range
from redpss.devdb.ftpfetch import ImplicitFtps, client_context
from redpss.devdb.tls import self_signed
from tests.support.wait import wait_for


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[CfiServer, threading.Thread]]:
    with serving(tmp_path, [Listener("127.0.0.1", free_port(), implicit=True, keys="test")]) as running:
        yield running


@contextlib.contextmanager
def serving(tmp_path: Path, listeners: list[Listener]) -> Iterator[tuple[CfiServer, threading.Thread]]:
    files = CertificateFiles(tmp_path / "cfi.crt", tmp_path / "cfi.key")
    self_signed(files.cert, files.key)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("1\n")
    pasv = free_port_range(4)
    settings = ListenerSettings(
        context=server_context(files),
        authorizer=OneAccountAuthorizer("u", "pw", tmp_path / "data"),
        confinement=Confinement(tmp_path / "data", None),
        passive_ports=range(pasv, pasv + 4),
        counters=Counters(),
    )
    cfi = CfiServer(listeners, settings, stalled_after=1.0)
    cfi.start()
    thread = serve_in_thread(cfi)
    try:
        yield cfi, thread
    finally:
        cfi.close()
        thread.join(5)


def _block(release: threading.Event) -> None:
    release.wait(10)


def test_a_stalled_loop_is_unhealthy_and_recovers(server: tuple[CfiServer, threading.Thread]) -> None:
    cfi, _ = server
    wait_for(cfi.healthy, 5, what="a healthy loop")
    release = threading.Event()
    cfi.submit(lambda: _block(release))  # a handler stuck in blocking code
    wait_for(lambda: not cfi.healthy(), 5, what="the stall noticed")
    assert cfi.stalled_for() >= 1.0
    release.set()
    wait_for(cfi.healthy, 5, what="the loop beating again")


def test_stop_accepting_lets_sessions_finish_then_close_ends_the_loop(
    server: tuple[CfiServer, threading.Thread],
) -> None:
    cfi, thread = server
    client = ImplicitFtps(context=client_context(), timeout=10)
    client.connect(*cfi.addresses[0])
    try:
        client.login("u", "pw")
        client.prot_p()
        cfi.stop_accepting()
        wait_for(lambda: not cfi.accepting, 5, what="the listener closed")
        with pytest.raises(OSError):
            ImplicitFtps(context=client_context(), timeout=2).connect(*cfi.addresses[0])
        chunks: list[bytes] = []
        client.retrbinary("RETR a.csv", chunks.append)  # the open session still works
        assert chunks == [b"1\n"]
        assert cfi.sessions() == 1
    finally:
        client.close()
    cfi.close()
    thread.join(5)
    assert not thread.is_alive()


def test_a_taken_port_names_the_keys(tmp_path: Path, server: tuple[CfiServer, threading.Thread]) -> None:
    from redpss.core.errors import StartupError  # noqa: PLC0415

    cfi, _ = server
    host, port = cfi.addresses[0]
    other = CfiServer([Listener(host, port, False, "[redctl] cfi_explicit_port")], cfi.settings)
    with pytest.raises(StartupError, match=rf"cannot listen on 127.0.0.1:{port} \(\[redctl\] cfi_explicit_port\)"):
        other.start()


def test_libcurl_resumes_the_tls_session_on_every_data_connection(server: tuple[CfiServer, threading.Thread]) -> None:
    """libcurl keeps the control connection and resumes its TLS session on each data connection (what a C client
    such as the database's does): every data connection after the login is a resumed one, and nothing is refused."""
    cfi, _ = server
    host, port = cfi.addresses[0]
    received: list[bytes] = []
    handle = pycurl.Curl()
    handle.setopt(pycurl.USERPWD, "u:pw")
    handle.setopt(pycurl.USE_SSL, pycurl.USESSL_ALL)
    handle.setopt(pycurl.SSL_VERIFYPEER, 0)
    handle.setopt(pycurl.SSL_VERIFYHOST, 0)
    handle.setopt(pycurl.WRITEFUNCTION, received.append)
    try:
        for _ in range(3):
            handle.setopt(pycurl.URL, f"ftps://{host}:{port}/a.csv")
            handle.perform()
    finally:
        handle.close()
    assert b"".join(received) == b"1\n" * 3
    counters = cfi.counters
    wait_for(lambda: counters.files_sent == 3, 5, what="three files sent")
    assert counters.logins == 1  # one control connection for all three
    assert counters.data_channels == 3
    assert counters.data_channels_resumed == 3


def test_a_connection_that_does_not_log_in_in_time_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle timeout starts again at every command, so a peer that never logged in (silent in the handshake, or
    sending NOOP) held one of the server's connection slots for good; a session that logged in stays."""
    monkeypatch.setattr(CfiHandler, "login_timeout", 1.0)
    implicit, explicit = (Listener("127.0.0.1", free_port(), implicit=flag, keys="test") for flag in (True, False))
    with serving(tmp_path, [implicit, explicit]) as (cfi, _), contextlib.ExitStack() as stack:
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", implicit.port), timeout=10))
        chatty = stack.enter_context(ftplib.FTP_TLS(context=client_context(), timeout=10))  # noqa: S321 - TLS
        chatty.connect("127.0.0.1", explicit.port)
        logged_in = stack.enter_context(ImplicitFtps(context=client_context(), timeout=10))
        logged_in.connect("127.0.0.1", implicit.port)
        logged_in.login("u", "pw")
        started = time.monotonic()
        with pytest.raises(ftplib.error_temp, match="421 No login within 1 seconds"):
            while time.monotonic() - started < 10:
                chatty.voidcmd("NOOP")  # a command keeps the idle timeout away, not the login deadline
        with contextlib.suppress(ConnectionResetError):
            assert silent.recv(4096) == b""  # closed in the handshake: no reply can be sent
        assert time.monotonic() - started < 5
        assert logged_in.voidcmd("NOOP").startswith("200")  # past the deadline, logged in: still served
        assert cfi.counters.refused == {"no login in time": 2}


@pytest.mark.parametrize(
    ("login_timeout", "queued_replies", "refusal"),
    [(30.0, handlers.MAX_QUEUED_REPLIES, "replies not read"), (1.0, 10**9, "no login in time")],
    ids=["unread-replies", "login-deadline"],
)
def test_a_peer_that_sends_commands_without_reading_the_replies_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, login_timeout: float, queued_replies: int, refusal: str
) -> None:
    """pyftpdlib answers every command into an unbounded queue and keeps reading: a peer sending NOOP without reading
    grew CFISRV's memory without end, before any login, and the login deadline's 421 waited for the queue to drain,
    so the connection (one of the server's slots) stayed open for good. Each way out on its own: the unread replies
    reaching their limit (the deadline far off), and the deadline's 421 that the peer does not read (no limit on the
    replies), closed CLOSE_GRACE seconds later."""
    monkeypatch.setattr(CfiHandler, "login_timeout", login_timeout)
    monkeypatch.setattr(handlers, "MAX_QUEUED_REPLIES", queued_replies)
    explicit = Listener("127.0.0.1", free_port(), implicit=False, keys="test")
    with serving(tmp_path, [explicit]) as (cfi, _), socket.socket() as peer:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing: the replies pile up
        peer.settimeout(60)
        peer.connect(("127.0.0.1", explicit.port))
        started = time.monotonic()
        burst = b"NOOP\r\n" * 1000
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # closed by the server (not a send timeout)
            while time.monotonic() - started < 60:
                peer.sendall(burst)
        assert time.monotonic() - started < 30
        wait_for(lambda: cfi.counters.refused.get(refusal) == 1, 5, what=f"the refusal counted as {refusal!r}")
