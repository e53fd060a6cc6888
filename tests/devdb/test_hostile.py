"""What a local user without the password can do to devdb: flood it with tunnels, idle connections, huge frames,
wrong logins and garbage. Each test is a defect that once stopped devdb serving or put a traceback in its log.

The server runs in-process with short limits (login deadline, tunnel lifetime) so the tests stay quick; the limits'
defaults are the same code with larger numbers.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pyexasol
import pytest

from redpss.devdb.limits import FREE_FAILED_LOGINS, LoginThrottle, RateLimitedLog
from redpss.devdb.server import DevDbServer, ServerSettings
from redpss.devdb.tunnel import MAX_TUNNELS_PER_ADDRESS
from tests.support import hostile
from tests.support.wait import wait_for

LOGIN_TIMEOUT = 1.0
TUNNEL_TIMEOUT = 1.0
MAX_UNAUTHENTICATED = 8
ATTACKER = "127.0.0.2"  # a second loopback address: the attacker is "another client" than pyexasol on 127.0.0.1


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevDbServer]:
    settings = ServerSettings(
        data_dir=tmp_path_factory.mktemp("devdb"),
        port=0,
        login_timeout=LOGIN_TIMEOUT,
        max_unauthenticated=MAX_UNAUTHENTICATED,
        tunnel_unused_timeout=TUNNEL_TIMEOUT,
    )
    devdb = DevDbServer(settings)
    devdb.start()
    yield devdb
    devdb.stop()


@pytest.fixture
def devdb_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="redpss.devdb")
    return caplog


def connect(server: DevDbServer, **options: Any) -> Any:
    """A real pyexasol session (plain ws, as the tests' devdb serves it)."""
    return pyexasol.connect(dsn=f"127.0.0.1:{server.port}", user="sys", password="exasol", encryption=False, **options)


def serves_a_login(server: DevDbServer) -> bool:
    with connect(server) as connection:
        return bool(connection.execute("SELECT 42").fetchval() == 42)


def no_tracebacks(log: pytest.LogCaptureFixture) -> None:
    with_traceback = [record.getMessage() for record in log.records if record.exc_info]
    assert not with_traceback, f"tracebacks in the log: {with_traceback}"


def warnings_about(log: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno >= logging.WARNING and text in r.getMessage()]


def logged_once(log: pytest.LogCaptureFixture, text: str) -> None:
    """Exactly one WARNING line containing text (devdb may write it just after the peer saw the close)."""
    wait_for(lambda: warnings_about(log, text), what=f"a log line about {text!r}")
    assert len(warnings_about(log, text)) == 1, warnings_about(log, text)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset) before the socket's timeout; data is skipped."""
    try:
        while sock.recv(1 << 16):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_abandoned_tunnels_above_fd_1023_do_not_stop_logins(server: DevDbServer) -> None:
    """1,100 opened-and-abandoned tunnels pushed new sockets past fd 1023, where select() failed every login."""
    with hostile.raised_fd_limit(4096) as limit, contextlib.ExitStack() as stack:
        if limit < 2400:
            pytest.skip(f"RLIMIT_NOFILE is capped at {limit}: no descriptor above 1023 can exist, nor the defect")
        for _ in range(1100):
            stack.enter_context(hostile.open_tunnel(server.port))
        assert serves_a_login(server)


def test_unused_tunnels_are_capped_per_address_and_expire(server: DevDbServer, devdb_log: Any) -> None:
    with contextlib.ExitStack() as stack:
        tunnels = [stack.enter_context(hostile.open_tunnel(server.port, ATTACKER)) for _ in range(20)]
        assert server.transfers.tunnels.count() == MAX_TUNNELS_PER_ADDRESS
        assert all(closed_by_server(sock) for sock in tunnels[:4]), "the oldest tunnels go first"
        assert len(warnings_about(devdb_log, "too many unused HTTP transport tunnels")) == 1
        wait_for(lambda: server.transfers.tunnels.count() == 0, timeout=10, what="unused tunnels to expire")
        assert closed_by_server(tunnels[-1])
        assert warnings_about(devdb_log, "no IMPORT/EXPORT used within")
    no_tracebacks(devdb_log)


def test_a_frame_announcing_2_gib_before_login_is_refused_unread(server: DevDbServer, devdb_log: Any) -> None:
    with hostile.connect(server.port) as sock:
        assert hostile.upgrade(sock) == 101
        sock.sendall(hostile.frame(hostile.TEXT, b"{" * 100, announced=2 << 30))
        answers, code = hostile.replies(sock)
    assert answers == []
    assert code == 1009  # message too big
    logged_once(devdb_log, "before login")
    no_tracebacks(devdb_log)


def test_a_login_must_complete_within_the_deadline(server: DevDbServer, devdb_log: Any) -> None:
    with hostile.connect(server.port, timeout=LOGIN_TIMEOUT + 5) as sock:
        assert hostile.upgrade(sock) == 101
        started = time.monotonic()
        answers, _ = hostile.replies(sock)  # says nothing; devdb must hang up
        waited = time.monotonic() - started
    assert answers == []
    assert waited < LOGIN_TIMEOUT + 4
    logged_once(devdb_log, "login deadline")


def test_silent_connections_are_cut_at_the_deadline(server: DevDbServer) -> None:
    with hostile.connect(server.port, timeout=LOGIN_TIMEOUT + 5) as sock:
        assert closed_by_server(sock)


def test_beyond_the_cap_of_unauthenticated_connections_the_oldest_is_cut(server: DevDbServer, devdb_log: Any) -> None:
    with contextlib.ExitStack() as stack:
        idle = [stack.enter_context(hostile.connect(server.port, ATTACKER)) for _ in range(3 * MAX_UNAUTHENTICATED)]
        wait_for(lambda: server.admission.count() <= MAX_UNAUTHENTICATED, what="the cap to cut the oldest")
        assert all(closed_by_server(sock) for sock in idle[: 2 * MAX_UNAUTHENTICATED])
        assert serves_a_login(server)
    cut_lines = warnings_about(devdb_log, "have not logged in")
    assert 1 <= len(cut_lines) <= 2, cut_lines


def test_failed_logins_are_slowed_down_per_address(server: DevDbServer, devdb_log: Any) -> None:
    checked = refused = 0
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        answer = hostile.login(server.port, "wrong", source=ATTACKER)
        assert answer["status"] == "error"
        assert answer["exception"]["sqlCode"] == "08004"
        if "too many failed logins" in answer["exception"]["text"]:
            refused += 1  # answered at once, the password unchecked: the wait would not fit the login deadline
        else:
            checked += 1
    # free attempts, then 0.25 s, 0.5 s, 1 s apart: a handful checked in two seconds (hundreds without the throttle)
    assert checked <= FREE_FAILED_LOGINS + 4, checked
    assert server.login_throttle.throttled(ATTACKER)
    assert hostile.login(server.port, "exasol")["status"] == "ok"  # another client (127.0.0.1) is not slowed
    assert not server.login_throttle.throttled("127.0.0.1")
    assert len(warnings_about(devdb_log, f"failed logins from {ATTACKER}")) == 1  # once per burst
    assert len(warnings_about(devdb_log, "login refused")) == 1  # the rest within the interval are counted
    no_tracebacks(devdb_log)


def test_a_correct_login_ends_the_burst(server: DevDbServer, devdb_log: Any) -> None:
    for _ in range(FREE_FAILED_LOGINS):
        hostile.login(server.port, "wrong", source=ATTACKER)
    assert server.login_throttle.throttled(ATTACKER)
    assert hostile.login(server.port, "exasol", source=ATTACKER)["status"] == "ok"
    assert not server.login_throttle.throttled(ATTACKER)
    assert warnings_about(devdb_log, f"the burst of failed logins from {ATTACKER} is over")


BAD_FIRST_MESSAGES = {
    "invalid UTF-8": hostile.frame(hostile.TEXT, b'{"command": "login\xff\xfe"}'),
    "binary invalid UTF-8": hostile.frame(hostile.BINARY, b"\xc3\x28"),
    "protocol version not a number": hostile.frame(hostile.TEXT, b'{"command": "login", "protocolVersion": "abc"}'),
    "protocol version a list": hostile.frame(hostile.TEXT, b'{"command": "login", "protocolVersion": [3]}'),
    "not JSON": hostile.frame(hostile.TEXT, b"hello devdb"),
    "JSON not an object": hostile.frame(hostile.TEXT, b"[1, 2, 3]"),
    "deeply nested JSON": hostile.frame(hostile.TEXT, b"[" * 5000),
    "unknown command before login": hostile.frame(hostile.TEXT, b'{"command": "fetch", "resultSetHandle": 1}'),
    "command not a string": hostile.frame(hostile.TEXT, b'{"command": {"nested": [1]}}'),
}


@pytest.mark.parametrize("message", BAD_FIRST_MESSAGES.values(), ids=BAD_FIRST_MESSAGES.keys())
def test_malformed_first_message_gets_one_error_and_one_log_line(
    server: DevDbServer, devdb_log: Any, message: bytes
) -> None:
    with hostile.connect(server.port) as sock:
        assert hostile.upgrade(sock) == 101
        sock.sendall(message)
        answers, _ = hostile.replies(sock)
    assert len(answers) == 1, answers
    assert answers[0]["status"] == "error"
    assert answers[0]["exception"]["sqlCode"] and answers[0]["exception"]["text"]
    logged_once(devdb_log, "before login")
    no_tracebacks(devdb_log)


def test_json_nested_beyond_the_pre_login_size_is_closed_cleanly(server: DevDbServer, devdb_log: Any) -> None:
    with hostile.connect(server.port) as sock:
        assert hostile.upgrade(sock) == 101
        sock.sendall(hostile.frame(hostile.TEXT, b"[" * 100_000))
        answers, code = hostile.replies(sock)
    assert (answers, code) == ([], 1009)
    no_tracebacks(devdb_log)


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "sys", "password": "not base64!", "attributes": "not an object"},
        {"username": ["sys"], "password": 12, "useCompression": "yes"},
    ],
    ids=["attributes not an object", "fields of the wrong type"],
)
def test_malformed_credentials_are_refused_without_traceback(
    server: DevDbServer, devdb_log: Any, credentials: dict[str, Any]
) -> None:
    with hostile.connect(server.port) as sock:
        assert hostile.upgrade(sock) == 101
        hostile.send_json(sock, {"command": "login", "protocolVersion": 3})
        assert hostile.reply(sock)["status"] == "ok"
        hostile.send_json(sock, credentials)
        answers, _ = hostile.replies(sock)
    assert len(answers) == 1 and answers[0]["status"] == "error"
    no_tracebacks(devdb_log)


def test_malformed_websocket_upgrade_is_answered_and_logged_once(server: DevDbServer, devdb_log: Any) -> None:
    with hostile.connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: devdb\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 4")
        assert closed_by_server(sock)
    logged_once(devdb_log, "before login")
    no_tracebacks(devdb_log)


def test_garbage_tls_hello_is_logged_once(server: DevDbServer, devdb_log: Any) -> None:
    with hostile.connect(server.port) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 100)
        assert closed_by_server(sock)
    logged_once(devdb_log, "TLS handshake failed")
    no_tracebacks(devdb_log)


def test_a_large_statement_after_login_still_works(server: DevDbServer) -> None:
    """The pre-login size limit must not reach logged-in clients: pyexasol sends each statement as one frame."""
    text = "x" * (4 << 20)
    with connect(server) as connection:
        assert connection.execute(f"SELECT LENGTH('{text}')").fetchval() == len(text)
    with connect(server, compression=True) as connection:
        assert connection.execute(f"SELECT LENGTH('{text}')").fetchval() == len(text)


def test_malformed_message_after_login_gets_one_error_and_the_session_goes_on(server: DevDbServer) -> None:
    connection = connect(server)
    try:
        connection._ws.send("[" * 5000)  # a broken request on a real session
        answer = connection._ws.recv()
        assert '"status":"error"' in answer
        assert connection.execute("SELECT 7").fetchval() == 7
    finally:
        connection.close()
        gc.collect()


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_import_waiting_for_the_write_lock_keeps_its_tunnel(server: DevDbServer) -> None:
    """A tunnel named by a running IMPORT is not an abandoned one, however long the IMPORT waits for the lock."""
    outcome: dict[str, object] = {}
    with connect(server) as holder, connect(server) as importer:
        holder.execute("CREATE SCHEMA w")
        holder.execute("CREATE TABLE w.t (id DECIMAL(9,0))")
        holder.set_autocommit(False)
        holder.execute("INSERT INTO w.t VALUES (0)")  # holds the write lock until COMMIT

        def run_import() -> None:
            try:
                importer.import_from_iterable(([i] for i in range(1, 11)), ("W", "T"))
                outcome["rows"] = importer.last_statement().rowcount()
            except Exception as exc:  # reported by the assertion below
                outcome["error"] = exc

        thread = threading.Thread(target=run_import, name="importer")
        thread.start()
        try:
            wait_for(lambda: server.transfers.tunnels.count(claimed=True) == 1, what="the IMPORT to claim its tunnel")
            server.transfers.tunnels.unused_timeout = 0.0  # every unclaimed tunnel is now overdue
            server.transfers.tunnels.expire()
            assert server.transfers.tunnels.count() == 1
        finally:
            holder.commit()
            thread.join(30)
        assert outcome == {"rows": 10}
        gc.collect()  # pyexasol leaves its import pipe's text wrapper to the garbage collector


def test_a_refusal_flood_that_stopped_is_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("redpss.devdb.test-flood")
    refusals = RateLimitedLog(logger, interval=0.2)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        for number in range(50):
            refusals.warning("refused connection %d", number)
        assert [r.getMessage() for r in caplog.records] == ["refused connection 0"]

        def summed_up() -> bool:
            refusals.flush()  # the server's housekeeping calls this every second
            return len(caplog.records) == 2

        wait_for(summed_up, what="the summary of the flood")
    assert caplog.records[1].getMessage() == "refused connection 49 (48 more like this in the last 0 s not logged)"


def test_a_failed_login_burst_is_summed_up_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    throttle = LoginThrottle(logging.getLogger("redpss.devdb.test-throttle"), window=0.2)
    with caplog.at_level(logging.WARNING, logger="redpss.devdb.test-throttle"):
        for _ in range(FREE_FAILED_LOGINS + 2):
            throttle.failed(ATTACKER)
        assert throttle.throttled(ATTACKER)

        def ended() -> bool:
            throttle.expire()  # the server's housekeeping calls this every second
            return not throttle.throttled(ATTACKER) and len(caplog.records) == 2

        wait_for(ended, what="the burst to end")
    assert "is over: 7 failed" in caplog.records[1].getMessage()


def test_the_first_message_after_login_may_be_big(server: DevDbServer) -> None:
    """The pre-login size limit ends with the login reply, also for a frame that follows it at once."""
    text = "x" * (1 << 20)
    with hostile.connect(server.port) as sock:
        assert hostile.login_on(sock, "exasol")["status"] == "ok"
        hostile.send_json(sock, {"command": "execute", "sqlText": f"SELECT LENGTH('{text}')"})
        answer = hostile.reply(sock)
        assert answer["status"] == "ok", answer
        assert answer["responseData"]["results"][0]["resultSet"]["data"] == [[len(text)]]
