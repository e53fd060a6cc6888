"""core/wire.py against a real JsonLineServer on 127.0.0.1 and on a unix socket: framing, refusals, limits, clients."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.wire import (
    PAYLOAD_VERSION,
    PROTOCOL_VERSION,
    AsyncClient,
    BlockingClient,
    Code,
    Connection,
    JsonLineServer,
    Limits,
    Message,
    WireError,
    decode,
    encode,
)
from redpss.core.wire.aio import CLOSE_GRACE, CLOSE_WITHIN, COMMITTED_GRACE
from redpss.core.wire.blocking import HELD_EVENTS
from redpss.devdb.tls import self_signed
from tests.support.wait import wait_for
from tests.support.wire_server import SECRET, WireServerThread, read_reply

HELLO = encode({"op": "hello", "version": PROTOCOL_VERSION, "secret": SECRET, "client": "test"})


@pytest.fixture
def server() -> Iterator[WireServerThread]:
    with WireServerThread() as running:
        yield running


@pytest.fixture
def wire_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="redpss.core.wire")  # asyncio's own complaints are captured too
    return caplog


def replies(data: bytes) -> list[Message]:
    return [json.loads(line) for line in data.splitlines()]


def refusal_of(server: WireServerThread, payload: bytes) -> Message:
    """Send raw bytes on a fresh connection; the server's single reply, after which it must have closed."""
    with server.raw() as sock:
        sock.sendall(payload)
        got = replies(read_reply(sock))
    assert len(got) == 1, got
    assert got[0]["ok"] is False
    return got[0]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "redpss.core.wire"]


# -- framing ----------------------------------------------------------------------------------------------------------
def test_round_trip_with_seq_and_version(server: WireServerThread) -> None:
    with server.raw() as sock:
        sock.sendall(HELLO + encode({"op": "echo", "seq": 7, "x": "ä"}) + encode({"op": "echo", "seq": 8}))
        file = sock.makefile("rb")
        hello, first, second = (decode(file.readline()) for _ in range(3))
    assert hello == {"ok": True, "server": "TEST", "version": PROTOCOL_VERSION}
    assert (first["seq"], first["echo"]["x"], first["client"]) == (7, "ä", "test")
    assert second["seq"] == 8


def test_unix_socket_is_private_and_serves(tmp_path: Path) -> None:
    path = tmp_path / "t.sock"
    with WireServerThread(unix_path=path) as server, BlockingClient(path, SECRET, "test") as client:
        assert path.stat().st_mode & 0o777 == 0o600
        assert client.request("echo", n=1)["echo"]["n"] == 1
        assert server.authenticated() == 1


def test_request_errors_keep_the_connection(server: WireServerThread, wire_log: pytest.LogCaptureFixture) -> None:
    assert isinstance(server.address, tuple)
    with BlockingClient(server.address, SECRET, "test") as client:
        for op, code in [("nope", Code.UNKNOWN_OP), ("refuse", Code.BAD_REQUEST), ("fail", Code.INTERNAL)]:
            with pytest.raises(WireError) as caught:
                client.request(op)
            assert caught.value.code == code, op
        assert client._exchange({"seq": 1})["code"] == Code.BAD_REQUEST  # no op at all
        assert client.request("echo")["ok"] is True


# -- refusals before the hello ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"[" * 100000 + b"\n", Code.TOO_LARGE),  # a RecursionError traceback in SCHED and JMON before
        (b"[" * 4000 + b"\n", Code.BAD_FRAME),  # deep nesting within the hello's line limit
        (b"\xff\xfe{}\n", Code.BAD_FRAME),  # not UTF-8
        (b'{"op": "hello", "secret": "\xc3"}\n', Code.BAD_FRAME),  # truncated UTF-8
        (b"{not json\n", Code.BAD_FRAME),
        (b'["hello"]\n', Code.BAD_FRAME),  # not an object
        (b"1" * 4001 + b"\n", Code.BAD_FRAME),  # an integer too long for Python's int()
        (b'{"op": "echo"}\n', Code.BAD_HELLO),
        (encode({"op": "hello", "version": 3, "secret": SECRET}), Code.VERSION_UNSUPPORTED),
        (encode({"op": "hello", "version": "1", "secret": SECRET}), Code.VERSION_UNSUPPORTED),
        (encode({"op": "hello", "secret": "wrong"}), Code.AUTH_FAILED),
        (encode({"op": "hello", "secret": "wröng"}), Code.AUTH_FAILED),  # non-ASCII: compare_digest on str raises
        (b'{"op": "hello", "secret": "\\ud800"}\n', Code.AUTH_FAILED),  # a lone surrogate
        (encode({"op": "hello", "secret": 12}), Code.AUTH_FAILED),
        (b"x" * 5000, Code.TOO_LARGE),  # no newline at all: the hello line limit, not 16 MiB
    ],
)
def test_bad_hello_is_refused_with_a_code_and_one_warning(
    server: WireServerThread, wire_log: pytest.LogCaptureFixture, payload: bytes, code: Code
) -> None:
    reply = refusal_of(server, payload)
    assert reply["code"] == code
    assert reply["error"].startswith("TEST: ")
    wait_for(lambda: warnings_of(wire_log), what="the refusal's warning")
    assert len(warnings_of(wire_log)) == 1
    assert f"[{code}]" in warnings_of(wire_log)[0]
    assert_no_traceback(wire_log)
    assert SECRET not in wire_log.text


def test_hello_without_version_is_version_one(server: WireServerThread) -> None:
    with server.raw() as sock:
        sock.sendall(encode({"op": "hello", "secret": SECRET}))
        assert decode(sock.makefile("rb").readline())["ok"] is True


def test_another_machine_opening_a_database_facing_service_with_the_instance_secret_is_told_once(
    wire_log: pytest.LogCaptureFixture,
) -> None:
    """A service taking the instance secret and its own (core.secret.accepted_secrets) warns when a peer other than
    this server itself uses the instance secret: the database's CONNECTION objects still hold it, or it was copied
    from one. Once per address; the service's own secret, and local clients, are not worth a word."""
    own = "derived-" + "d" * 56
    with WireServerThread(secret=(SECRET, own)) as server:

        def opened(secret: str, source: str | None) -> bool:
            with server.raw(source) as sock:
                sock.sendall(encode({"op": "hello", "version": PROTOCOL_VERSION, "secret": secret, "client": "t"}))
                return bool(decode(sock.makefile("rb").readline())["ok"])

        assert opened(own, "127.0.0.2") and opened(SECRET, None) and opened(own, None)
        assert opened(SECRET, "127.0.0.2") and opened(SECRET, "127.0.0.2") and opened(SECRET, "127.0.0.3")
        wait_for(lambda: len(warnings_of(wire_log)) == 2, what="a warning for each other address")
        told = warnings_of(wire_log)
    assert [line.split(" opened ")[0] for line in told] == ["TEST: 127.0.0.2", "TEST: 127.0.0.3"]
    assert "the database's CONNECTION objects still carry it" in told[0] and "renew the instance secret" in told[0]
    assert SECRET not in wire_log.text and own not in wire_log.text


def test_blocking_client_reports_the_refusal_code(server: WireServerThread) -> None:
    assert isinstance(server.address, tuple)
    with pytest.raises(WireError, match="authentication failed") as caught:
        BlockingClient(server.address, "wrong", "test")
    assert caught.value.code == Code.AUTH_FAILED


def test_hello_deadline(wire_log: pytest.LogCaptureFixture) -> None:
    with WireServerThread(limits=Limits(hello_timeout=0.3)) as server, server.raw() as sock:
        sock.sendall(b'{"op": "hel')  # a slow loris: part of a hello, then nothing
        (reply,) = replies(read_reply(sock))
    assert reply["code"] == Code.TIMEOUT
    assert "no hello within 0.3 s" in reply["error"]
    assert_no_traceback(wire_log)


# -- sizes after the hello --------------------------------------------------------------------------------------------
def test_message_size_after_hello_is_the_servers(wire_log: pytest.LogCaptureFixture) -> None:
    with WireServerThread(limits=Limits(max_message=100_000)) as server:
        assert isinstance(server.address, tuple)
        with BlockingClient(server.address, SECRET, "test") as client:
            assert client.request("echo", blob="y" * 50_000)["ok"] is True  # far beyond the hello's 4 KiB
        with server.raw() as sock:
            sock.sendall(HELLO + encode({"op": "echo", "blob": "z" * 150_000}))
            hello, reply = replies(read_reply(sock))
        assert hello["ok"] is True
        assert reply["code"] == Code.TOO_LARGE
        assert "100000 bytes" in reply["error"]
    assert_no_traceback(wire_log)


def test_deep_nesting_after_hello(server: WireServerThread, wire_log: pytest.LogCaptureFixture) -> None:
    with server.raw() as sock:
        sock.sendall(HELLO + b"[" * 100000 + b"\n")
        _, reply = replies(read_reply(sock))
    assert reply["code"] == Code.BAD_FRAME
    assert_no_traceback(wire_log)


# -- connection caps --------------------------------------------------------------------------------------------------
def test_unauthenticated_cap_drops_the_oldest(wire_log: pytest.LogCaptureFixture) -> None:
    with WireServerThread(limits=Limits(max_unauthenticated=4, eviction_grace=0)) as server:
        idle = [server.raw() for _ in range(4)]
        try:
            wait_for(lambda: server.unauthenticated() == 4, what="4 idle connections")
            newest = server.raw()
            idle.append(newest)
            (dropped,) = replies(read_reply(idle[0]))
            assert dropped["code"] == Code.TOO_MANY_CONNECTIONS
            assert server.unauthenticated() <= 4
            assert isinstance(server.address, tuple)
            with BlockingClient(server.address, SECRET, "test") as client:  # a real client still gets in
                assert client.request("echo")["ok"] is True
            newest.sendall(HELLO)
            assert decode(newest.makefile("rb").readline())["ok"] is True
        finally:
            for sock in idle:
                sock.close()
    assert_no_traceback(wire_log)


def test_young_connections_are_not_dropped_for_the_cap() -> None:
    """Within the grace the newcomer is refused, so a burst of connects cannot push out a client about to say hello."""
    with WireServerThread(limits=Limits(max_unauthenticated=4, eviction_grace=60)) as server:
        idle = [server.raw() for _ in range(4)]
        try:
            wait_for(lambda: server.unauthenticated() == 4, what="4 idle connections")
            with server.raw() as newest:
                (refused,) = replies(read_reply(newest))
            assert refused["code"] == Code.TOO_MANY_CONNECTIONS
            idle[0].sendall(HELLO)  # the oldest is still there and can still authenticate
            assert decode(idle[0].makefile("rb").readline())["ok"] is True
        finally:
            for sock in idle:
                sock.close()


def test_a_flood_from_one_address_gives_way_to_a_client_from_another(wire_log: pytest.LogCaptureFixture) -> None:
    """A peer that connects faster than the grace keeps every slot young: a client whose hello takes longer than the
    grace (a TLS handshake over a network) was refused, or dropped, for as long as the flood went on. Now the
    address holding most slots gives up its own: a client from another address gets in at once."""
    with WireServerThread(limits=Limits(max_unauthenticated=4, eviction_grace=60)) as server:
        flood = [server.raw() for _ in range(4)]  # all from 127.0.0.1, all younger than the grace
        try:
            wait_for(lambda: server.unauthenticated() == 4, what="4 connections without hello")
            assert isinstance(server.address, tuple)
            with socket.create_connection(server.address, timeout=10, source_address=("127.0.0.2", 0)) as other:
                (dropped,) = replies(read_reply(flood[0]))
                assert dropped["code"] == Code.TOO_MANY_CONNECTIONS
                other.sendall(HELLO)
                assert decode(other.makefile("rb").readline())["ok"] is True
            flood.append(server.raw())  # the flood takes the free slot again
            wait_for(lambda: server.unauthenticated() == 4, what="4 connections without hello again")
            with server.raw() as more:  # and its next connection finds only its own young ones: refused
                (refused,) = replies(read_reply(more))
            assert refused["code"] == Code.TOO_MANY_CONNECTIONS
        finally:
            for sock in flood:
                sock.close()
    assert_no_traceback(wire_log)


@pytest.mark.parametrize("foreign_grace", [60.0, 0.0], ids=["within-its-grace", "past-its-grace"])
def test_a_flood_drops_a_connection_from_elsewhere_only_once_past_its_grace(foreign_grace: float) -> None:
    """A client from elsewhere whose hello is on its way keeps its place against a flood's newcomers; an idle one
    (past `foreign_grace`) makes room, as any idle peer does."""
    limits = Limits(max_unauthenticated=4, eviction_grace=60, foreign_grace=foreign_grace)
    with WireServerThread(limits=limits) as server:
        assert isinstance(server.address, tuple)
        elsewhere = socket.create_connection(server.address, timeout=10, source_address=("127.0.0.2", 0))
        flood: list[socket.socket] = []
        try:
            wait_for(lambda: server.unauthenticated() == 1, what="the connection from elsewhere")
            flood += [server.raw() for _ in range(3)]
            wait_for(lambda: server.unauthenticated() == 4, what="4 connections without hello")
            flood.append(server.raw())
            if foreign_grace:
                (refused,) = replies(read_reply(flood[-1]))
                assert refused["code"] == Code.TOO_MANY_CONNECTIONS
                elsewhere.sendall(HELLO)
                assert decode(elsewhere.makefile("rb").readline())["ok"] is True
            else:
                (dropped,) = replies(read_reply(elsewhere))
                assert dropped["code"] == Code.TOO_MANY_CONNECTIONS
        finally:
            for sock in [elsewhere, *flood]:
                sock.close()


def test_blocking_client_tries_again_while_the_server_sheds(wire_log: pytest.LogCaptureFixture) -> None:
    with WireServerThread(limits=Limits(max_unauthenticated=4, eviction_grace=0.3)) as server:
        idle = [server.raw() for _ in range(4)]
        try:
            wait_for(lambda: server.unauthenticated() == 4, what="4 idle connections")
            assert isinstance(server.address, tuple)
            with BlockingClient(server.address, SECRET, "patient") as client:  # refused at first, then admitted
                assert client.request("echo")["ok"] is True
        finally:
            for sock in idle:
                sock.close()
    assert any("refused a new one" in line for line in warnings_of(wire_log))


def test_authenticated_cap_refuses_the_hello() -> None:
    with WireServerThread(limits=Limits(max_clients=2)) as server:
        assert isinstance(server.address, tuple)
        with BlockingClient(server.address, SECRET, "a"), BlockingClient(server.address, SECRET, "b"):
            with pytest.raises(WireError) as caught:
                BlockingClient(server.address, SECRET, "c", timeout=0.5)
            assert caught.value.code == Code.TOO_MANY_CONNECTIONS
        wait_for(lambda: server.authenticated() == 0, what="both clients gone")
        with BlockingClient(server.address, SECRET, "d") as client:
            assert client.request("echo")["ok"] is True


def test_refusal_warnings_are_rate_limited(server: WireServerThread, wire_log: pytest.LogCaptureFixture) -> None:
    for _ in range(30):
        refusal_of(server, b"garbage\n")
    server.run(lambda: asyncio.sleep(0))  # refusals are logged before the reply's connection closes
    lines = warnings_of(wire_log)
    assert len(lines) == 10
    server.__exit__()  # closing the server reports what was counted and not logged
    assert "20 more refusals" in warnings_of(wire_log)[-1]
    assert "BAD_FRAME 20" in warnings_of(wire_log)[-1]


# -- events and durable acknowledgements -----------------------------------------------------------------------------
def test_events_reach_subscribers_between_replies(server: WireServerThread) -> None:
    assert isinstance(server.address, tuple)
    with BlockingClient(server.address, SECRET, "sub") as sub, BlockingClient(server.address, SECRET, "pub") as pub:
        sub.request("subscribe")
        pub.request("push", n=1)
        pub.request("push", n=2)
        assert sub.next_event(5)["n"] == 1
        assert sub.request("echo")["ok"] is True  # the second event arrives before this reply and is kept
        assert sub.next_event(5)["n"] == 2
        with pytest.raises(WireError, match="no event"):
            pub.next_event(0.2)


def test_a_client_awaiting_a_reply_keeps_only_the_latest_events(server: WireServerThread) -> None:
    """A SCHED worker waits days for an ACTION run's reply while JEXEC pushes "running" events it never reads: all
    of them were kept, hundreds of MB in a week."""
    assert isinstance(server.address, tuple)
    with BlockingClient(server.address, SECRET, "sub") as sub, BlockingClient(server.address, SECRET, "pub") as pub:
        sub.request("subscribe")
        for n in range(HELD_EVENTS + 500):
            pub.request("push", n=n)
        assert sub.request("echo")["ok"] is True  # every event arrives before this reply
        assert len(sub.events) == HELD_EVENTS
        assert sub.next_event(5)["n"] == 500


def test_a_subscriber_that_does_not_read_never_stalls_the_server(wire_log: pytest.LogCaptureFixture) -> None:
    """Before, broadcast waited for every subscriber's socket: one stopped subscriber stalled the daemon."""
    with WireServerThread(limits=Limits(event_backlog=1024 * 1024)) as server:
        assert isinstance(server.address, tuple)
        with (
            BlockingClient(server.address, SECRET, "stuck") as stuck,
            BlockingClient(server.address, SECRET, "reader") as reader,
            BlockingClient(server.address, SECRET, "pub") as pub,
        ):
            stuck.request("subscribe")
            reader.request("subscribe")
            stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            blob = "e" * 100_000
            for n in range(60):  # 6 MB of events; "stuck" never reads them
                pub.request("push", n=n, blob=blob)
                assert reader.next_event(5)["n"] == n
            wait_for(lambda: server.authenticated() == 2, what="the stuck subscriber to be disconnected")
    assert any("does not read its events" in line and "stuck" in line for line in warnings_of(wire_log))


def test_a_client_that_reads_no_replies_is_closed_after_the_send_timeout(wire_log: pytest.LogCaptureFixture) -> None:
    """Before, a reply waited for such a client for good: its task held (in JEXEC, the run and a graceful stop)."""
    with WireServerThread(limits=Limits(send_timeout=0.5)) as server:
        assert isinstance(server.address, tuple)
        with server.raw() as stuck, BlockingClient(server.address, SECRET, "reader") as reader:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stuck.settimeout(0.2)
            hello = encode({"op": "hello", "version": PROTOCOL_VERSION, "secret": SECRET, "client": "stuck"})
            request = encode({"op": "echo", "blob": "e" * 100_000})
            stuck.sendall(hello)
            wait_for(lambda: server.authenticated() == 2, what="both clients to be served")
            with contextlib.suppress(OSError):  # the server stops reading, then closes: a timeout or a reset here
                for _ in range(100):  # 10 MB of replies, which "stuck" never reads
                    stuck.sendall(request)
            wait_for(lambda: server.authenticated() == 1, what="the client that reads nothing to be closed")
            assert reader.request("echo", n=1)["echo"]["n"] == 1
    assert any("stuck" in line and "has read nothing for 0.5 s" in line for line in warnings_of(wire_log))


def test_durable_ops_need_a_durable_ack(server: WireServerThread, wire_log: pytest.LogCaptureFixture) -> None:
    assert isinstance(server.address, tuple)
    with BlockingClient(server.address, SECRET, "test") as client:
        assert client.request_durable("store", line="a")["stored"] == 1
        with pytest.raises(WireError) as caught:
            client.request("sloppy_store")
        assert caught.value.code == Code.INTERNAL
        with pytest.raises(WireError, match="durable"):
            client.request_durable("echo")
    assert any("without saying the data is durable" in r.getMessage() for r in wire_log.records)


# -- folded acknowledgements ------------------------------------------------------------------------------------------
FOLDING_HELLO = encode({"op": "hello", "version": PROTOCOL_VERSION, "secret": SECRET, "client": "t", "fold_acks": True})


def store(line: str) -> bytes:
    return encode({"op": "store", "line": line})


def read_replies(sock: socket.socket, count: int) -> list[Message]:
    """The next `count` reply lines (waiting for them)."""
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return replies(data)


def test_requests_that_came_in_a_row_are_acknowledged_by_one_reply_for_a_client_that_asks(
    server: WireServerThread,
) -> None:
    with server.raw() as sock:
        sock.sendall(FOLDING_HELLO)
        assert read_replies(sock, 1)[0]["fold_acks"] == ["store"]
        sock.sendall(store("a") + store("b") + store("c"))  # one write: all three are there when the first is done
        assert read_replies(sock, 1) == [{"ok": True, "durable": True, "stored": 3, "acks": 3}]
        sock.sendall(store("d"))  # alone: answered at once
        assert read_replies(sock, 1) == [{"ok": True, "durable": True, "stored": 4, "acks": 1}]
    with server.raw() as sock:  # a client that does not ask gets a reply per request, as before
        sock.sendall(HELLO)
        assert "fold_acks" not in read_replies(sock, 1)[0]
        sock.sendall(store("e") + store("f"))
        assert read_replies(sock, 2) == [{"ok": True, "durable": True, "stored": n} for n in (5, 6)]


def test_a_held_acknowledgement_goes_out_before_any_other_reply(server: WireServerThread) -> None:
    with server.raw() as sock:
        sock.sendall(FOLDING_HELLO)
        read_replies(sock, 1)
        sock.sendall(store("a") + encode({"op": "refuse"}) + store("b") + encode({"op": "echo"}))
        got = read_replies(sock, 4)
        assert [reply.get("acks") for reply in got] == [1, None, 1, None]
        assert [reply.get("code") for reply in got] == [None, "BAD_REQUEST", None, None]
        sock.sendall(store("c") + b"not JSON\n")  # a refusal that closes the connection
        got = replies(read_reply(sock))
        assert got[0] == {"ok": True, "durable": True, "stored": 3, "acks": 1}
        assert got[1]["code"] == "BAD_FRAME"


def test_a_stop_sends_a_held_acknowledgement_whatever_the_next_request_waits_for() -> None:
    """The next request's first bytes made the server hold the reply; it never completes. The stored line must be
    acknowledged all the same, or the client would send it again to the next server. (The hold's own deadline is
    set far off here: the stop is what sends it.)"""
    with WireServerThread(limits=Limits(fold_wait=60)) as running, running.raw() as sock:
        sock.sendall(FOLDING_HELLO)
        read_replies(sock, 1)
        sock.sendall(store("a") + b'{"op": "st')
        wait_for(lambda: len(running.stored) == 1, 10, what="the request handled")
        assert running.server is not None
        running.loop.call_soon_threadsafe(asyncio.ensure_future, running.server.close())
        sock.settimeout(CLOSE_GRACE / 2)  # at once, not when the stop gives up on the request cut short
        assert read_replies(sock, 1) == [{"ok": True, "durable": True, "stored": 1, "acks": 1}]


def test_a_held_acknowledgement_goes_out_on_its_own_when_the_next_request_is_slow(server: WireServerThread) -> None:
    """Bytes that made the server hold a reply may be a request still far from complete, or no request at all."""
    with server.raw() as sock:
        sock.sendall(FOLDING_HELLO)
        read_replies(sock, 1)
        sock.sendall(store("a") + b'{"op": "st')
        assert read_replies(sock, 1) == [{"ok": True, "durable": True, "stored": 1, "acks": 1}]


def stored_one(running: WireServerThread) -> bool:
    return len(running.stored) == 1


def test_a_held_acknowledgement_reaches_a_client_that_ends_its_side_within_its_next_request() -> None:
    """A line cut short is a refusal (BAD_FRAME), a payload cut short a lost connection: the held reply goes first."""
    hello = {"op": "hello", "version": PAYLOAD_VERSION, "secret": SECRET, "client": "t", "fold_acks": True}
    for cut_short in (b'{"op": "st', encode({"op": "store", "payload": 100}) + b"x" * 10):
        with WireServerThread(limits=Limits(fold_wait=60), payload_ops={"store"}) as running, running.raw() as sock:
            sock.sendall(encode(hello))
            read_replies(sock, 1)
            sock.sendall(store("a") + cut_short)
            wait_for(functools.partial(stored_one, running), 10, what="the request handled")
            sock.shutdown(socket.SHUT_WR)
            got = replies(read_reply(sock))
            assert got[0] == {"ok": True, "durable": True, "stored": 1, "acks": 1}
            assert [reply.get("code") for reply in got[1:]] in ([], ["BAD_FRAME"])


def test_requests_matched_by_seq_are_not_folded(server: WireServerThread) -> None:
    with server.raw() as sock:
        sock.sendall(FOLDING_HELLO)
        read_replies(sock, 1)
        sock.sendall(encode({"op": "store", "seq": 1}) + encode({"op": "store", "seq": 2}))
        assert [(reply["seq"], "acks" in reply) for reply in read_replies(sock, 2)] == [(1, False), (2, False)]


# -- TLS --------------------------------------------------------------------------------------------------------------
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed(cert, key)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_tls(tmp_path: Path, wire_log: pytest.LogCaptureFixture) -> None:
    server_context, client_context = tls_contexts(tmp_path)
    with WireServerThread(ssl_context=server_context) as server:
        assert isinstance(server.address, tuple)
        with BlockingClient(server.address, SECRET, "tls", ssl_context=client_context) as client:
            assert client.request("echo", x=1)["echo"]["x"] == 1
            assert isinstance(client.sock, ssl.SSLSocket)

        async def over_tls() -> Message:
            client = await AsyncClient.connect_tcp("127.0.0.1", server.port, SECRET, "tls", ssl_context=client_context)
            try:
                return await client.request("echo", x=2)
            finally:
                await client.close()

        assert asyncio.run(over_tls())["echo"]["x"] == 2
        with pytest.raises(WireError):  # a client that does not trust the certificate
            BlockingClient(server.address, SECRET, "tls", ssl_context=ssl.create_default_context())
        with pytest.raises(WireError):  # plain text to a TLS port
            BlockingClient(server.address, SECRET, "plain", timeout=3)
        with BlockingClient(server.address, SECRET, "tls", ssl_context=client_context) as client:
            assert client.request("echo")["ok"] is True  # still serving
    assert_no_traceback(wire_log)


def open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def silent_tls_peer(port: int, hello: bytes = b"") -> ssl.SSLSocket:
    """A TLS client that finishes its handshake, sends `hello`, and then neither reads nor closes."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    peer = context.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    if hello:
        peer.sendall(hello)
    return peer


def test_tls_peers_that_never_answer_the_close_do_not_keep_their_descriptors(tmp_path: Path) -> None:
    """A connection closed without hello (a wrong secret, evicted for the cap) left the count of unauthenticated
    connections at once, but over TLS its close waited 30 s for the peer's close_notify (an evicted one first its
    hello deadline): a stranger sending ~130 handshakes a second held every descriptor of the unit."""
    server_context, _ = tls_contexts(tmp_path)
    limits = Limits(max_unauthenticated=4, eviction_grace=0.0, foreign_grace=0.0, hello_timeout=30.0)
    with WireServerThread(ssl_context=server_context, limits=limits) as server, contextlib.ExitStack() as peers:
        base = open_descriptors()
        wrong = encode({"op": "hello", "version": PROTOCOL_VERSION, "secret": "wrong", "client": "x"})
        for _ in range(10):  # refused for their secret
            peers.enter_context(silent_tls_peer(server.port, wrong))
        for _ in range(10):  # no hello: all but the last four evicted
            peers.enter_context(silent_tls_peer(server.port))
        # ours stay open (20); of the server's, only the four it still waits for a hello from
        wait_for(lambda: open_descriptors() <= base + 20 + 4, timeout=10, what="the server to let go of the peers")


def test_a_payload_that_does_not_arrive_in_time_is_refused_and_its_buffer_freed(
    wire_log: pytest.LogCaptureFixture,
) -> None:
    """A client that declares a large payload and sends a trickle would hold the buffer made for it for as long as it
    likes (DBLS: up to 8 MiB a connection); past payload_timeout the request is refused with TIMEOUT and closed."""
    hello = encode({"op": "hello", "version": 2, "secret": SECRET, "client": "trickle"})
    with WireServerThread(limits=Limits(payload_timeout=0.5), payload_ops={"echo"}) as server, server.raw() as sock:
        sock.sendall(hello + encode({"op": "echo", "payload": 1_000_000}) + b"ten bytes.")
        got = replies(read_reply(sock))
    assert got[0]["ok"] is True  # the hello
    assert (got[1]["code"], got[1]["error"]) == (
        "TIMEOUT",
        "TEST: a payload of 1000000 bytes did not arrive within 0.5 s",
    )
    assert any("[TIMEOUT]" in r.getMessage() for r in wire_log.records)


def test_payloads_wait_for_room_within_the_servers_payload_budget() -> None:
    """Payload buffers of all connections together stay within payload_budget: a request whose payload does not fit
    beside those being handled waits (its connection unread) until one is answered, then goes on."""
    hello = encode({"op": "hello", "version": 2, "secret": SECRET, "client": "budget"})
    with WireServerThread(limits=Limits(payload_budget=1000), payload_ops={"held", "echo"}) as server:

        def budget() -> tuple[int, int]:
            async def look() -> tuple[int, int]:
                assert server.server is not None
                return server.server.payloads.used, server.server.payloads.waiting

            return server.run(look)

        with server.raw() as first, server.raw() as second:
            first_replies, second_replies = first.makefile("rb"), second.makefile("rb")
            first.sendall(hello + encode({"op": "held", "payload": 800}) + b"x" * 800)
            assert json.loads(first_replies.readline())["ok"] is True  # the hello
            wait_for(lambda: budget() == (800, 0), 10, what="the first payload held by its handler")
            second.sendall(hello + encode({"op": "echo", "payload": 500, "seq": 2}) + b"y" * 500)
            assert json.loads(second_replies.readline())["ok"] is True
            wait_for(lambda: budget() == (800, 1), 10, what="the second payload waiting for room")
            server.release()
            assert json.loads(first_replies.readline()) == {"ok": True, "late": True}
            assert json.loads(second_replies.readline())["seq"] == 2
            wait_for(lambda: budget() == (0, 0), 10, what="the budget given back")


# -- the asyncio client ---------------------------------------------------------------------------------------------
async def start_server(tmp: JsonLineServer | None = None) -> tuple[JsonLineServer, int, asyncio.Event]:
    release = asyncio.Event()

    async def handle(request: Message, connection: object) -> Message:
        if request["op"] == "held":
            await release.wait()
            return {"ok": True, "late": True}
        return {"ok": True, "op": request["op"]}

    server = JsonLineServer(handle, SECRET, "TEST")
    await server.start_tcp("127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], release


def test_late_reply_does_not_kill_the_client(wire_log: pytest.LogCaptureFixture) -> None:
    """A reply that comes after its request timed out is dropped; the link keeps working (it died for good before)."""

    async def scenario() -> None:
        server, port, release = await start_server()
        client = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "jmon")
        try:
            with pytest.raises(TimeoutError):
                await client.request("held", timeout=0.1)
            release.set()
            assert (await client.request("ping", timeout=5))["op"] == "ping"
            assert not client.closed.is_set()
            assert not client._pending
        finally:
            await client.close()
            await server.close()

    asyncio.run(scenario())
    assert any("arrived after its request gave up" in r.getMessage() for r in wire_log.records)


def test_close_lets_a_reply_under_way_go_out_and_ends_idle_connections_at_once() -> None:
    """A handler that made data durable while the daemon stops must still say so: a lost acknowledgement makes the
    client send the data again to the next server (twice in DBLS's files, two mails from SENDMAIL)."""

    async def scenario() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def handle(request: Message, connection: object) -> Message:
            started.set()
            await release.wait()  # e.g. DBLS waiting for its fsync
            return {"ok": True, "late": True}

        server = JsonLineServer(handle, SECRET, "TEST")
        await server.start_tcp("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        busy = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "busy")
        idle = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "idle")
        try:
            answered = asyncio.create_task(busy.request("held", timeout=10))
            async with asyncio.timeout(5):
                await started.wait()
            closing = asyncio.create_task(server.close())
            async with asyncio.timeout(5):
                await idle.closed.wait()  # not kept waiting for the busy one
            assert not closing.done() and not busy.closed.is_set()
            release.set()
            assert (await answered) == {"ok": True, "late": True, "seq": 1}
            async with asyncio.timeout(5):
                await closing
                await busy.closed.wait()  # closed once its reply was out
        finally:
            await busy.close()
            await idle.close()

    asyncio.run(scenario())


def test_close_is_not_held_by_a_peer_that_reads_nothing() -> None:
    """close() waited for every connection's close to end: a subscriber that stopped reading (or a request's client
    that never read its reply) held it until the kernel gave up on the peer, 60 s, beyond every daemon's drain time,
    so a plain `systemctl stop` ended as a forced stop."""

    async def scenario() -> None:
        async def handle(request: Message, connection: Connection) -> Message:
            if request["op"] == "subscribe":
                connection.subscribed = True
            return {"ok": True}

        server = JsonLineServer(handle, SECRET, "TEST", limits=Limits(event_backlog=64 * 1024 * 1024))
        await server.start_tcp("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            stuck.sendall(HELLO + encode({"op": "subscribe", "seq": 1}))
            async with asyncio.timeout(5):
                while not any(c.subscribed for c in server.connections):
                    await asyncio.sleep(0.01)
            for n in range(40):  # 4 MB of events the peer never reads, waiting in the server's buffer
                await server.broadcast({"event": "tick", "n": n, "blob": "e" * 100_000})
            async with asyncio.timeout(CLOSE_GRACE + CLOSE_WITHIN + 3):
                await server.close()
        finally:
            stuck.close()

    asyncio.run(scenario())


def test_close_waits_longer_for_the_reply_of_a_request_whose_effect_is_made() -> None:
    """DBLS writes a buffer's lines, then spools its ERROR rows (an fsync that may take seconds while the log files
    are written back): cut off after CLOSE_GRACE, its client sent the buffer again, and the lines were in the
    files twice. A handler marks the request committed; close() then waits up to COMMITTED_GRACE for its reply,
    and still cancels a request that is not."""

    async def scenario() -> None:
        release, never = asyncio.Event(), asyncio.Event()

        async def handle(request: Message, connection: Connection) -> Message:
            if request["op"] == "committed":
                connection.committed = True
                await release.wait()  # the slow fsync
            else:
                await never.wait()
            return {"ok": True}

        server = JsonLineServer(handle, SECRET, "TEST")
        await server.start_tcp("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        made = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "made")
        plain = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "plain")
        try:
            answered = asyncio.create_task(made.request("committed", timeout=20))
            unanswered = asyncio.create_task(plain.request("plain", timeout=20))
            async with asyncio.timeout(5):
                while sum(c.busy for c in server.connections) < 2:
                    await asyncio.sleep(0.01)
            asyncio.get_running_loop().call_later(CLOSE_GRACE + 1.0, release.set)  # past the usual grace
            async with asyncio.timeout(COMMITTED_GRACE + 5):
                await server.close()
            assert (await answered) == {"ok": True, "seq": 1}
            with pytest.raises((ConnectionError, WireError)):
                await unanswered
        finally:
            await made.close()
            await plain.close()

    asyncio.run(scenario())


def test_cancelled_request_forgets_its_seq() -> None:
    async def scenario() -> None:
        server, port, release = await start_server()
        client = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "jmon")
        try:
            task = asyncio.create_task(client.request("held"))
            await asyncio.sleep(0)  # let the request be written
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not client._pending
            release.set()
            assert (await client.request("ping", timeout=5))["ok"] is True
        finally:
            await client.close()
            await server.close()

    asyncio.run(scenario())


async def raw_server(script: list[bytes]) -> tuple[asyncio.Server, int]:
    """A peer that answers the hello, reads three requests, then sends `script` (for replies a real server never
    sends)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(encode({"ok": True, "server": "RAW", "version": 1}))
        requests = [decode(await reader.readline()) for _ in range(3)]
        for line in script:
            writer.write(line.replace(b"SEQ1", str(requests[0]["seq"]).encode()))
        for request in reversed(requests):
            writer.write(encode({"ok": True, "seq": request["seq"], "op": request["op"]}))
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_replies_are_matched_by_seq_and_strays_ignored() -> None:
    async def scenario() -> None:
        server, port = await raw_server([encode({"ok": True, "seq": 999}), encode({"event": "x"})])
        client = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "t")
        try:
            replies = await asyncio.gather(*(client.request(op, timeout=5) for op in ("a", "b", "c")))
            assert [r["op"] for r in replies] == ["a", "b", "c"]  # answered c, b, a
            assert (await client.events.get())["event"] == "x"
            assert not client.closed.is_set()
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "bad", [b"not json\n", encode({"ok": True}), encode({"ok": True, "seq": "SEQ1"}), b"[1]\n"], ids=repr
)
def test_a_bad_message_closes_the_link_with_a_log_line(bad: bytes, wire_log: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        server, port = await raw_server([bad])
        client = await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "t")
        try:
            results = await asyncio.gather(
                *(client.request(op, timeout=5) for op in ("a", "b", "c")), return_exceptions=True
            )
            assert all(isinstance(r, WireError) for r in results), results
            await asyncio.wait_for(client.closed.wait(), 5)
            with pytest.raises(WireError, match="closed"):
                await client.request("d")
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())
    assert any(r.levelno >= logging.WARNING and "connection to 127.0.0.1" in r.getMessage() for r in wire_log.records)


def test_async_client_over_unix_socket_reports_refusal(tmp_path: Path) -> None:
    path = tmp_path / "u.sock"
    with WireServerThread(unix_path=path):

        async def scenario() -> None:
            with pytest.raises(WireError) as caught:
                await AsyncClient.connect_unix(path, "wrong", "t")
            assert caught.value.code == Code.AUTH_FAILED
            client = await AsyncClient.connect_unix(path, SECRET, "t")
            try:
                assert (await client.request_durable("store"))["durable"] is True
            finally:
                await client.close()

        asyncio.run(scenario())


def test_connect_refused_is_a_wire_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening
        with pytest.raises(WireError, match="cannot connect"):
            BlockingClient(("127.0.0.1", port), SECRET, "t")

        async def scenario() -> None:
            with pytest.raises(WireError, match="cannot connect"):
                await AsyncClient.connect_tcp("127.0.0.1", port, SECRET, "t")

        asyncio.run(scenario())


# -- a peer that stops answering ---------------------------------------------------------------------------------------
def test_a_peer_that_stops_answering_is_dropped_even_on_an_idle_connection() -> None:
    """The peer's machine loses power: nothing closes the connection, the loopback of a namespace of our own just
    stops carrying packets. The server must drop the connection within its dead_peer_timeout (plus the probes'
    rounding), though nothing was being sent; without keepalive it waits for ever."""
    timeout = 3.0
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-m", "tests.support.dead_peer", "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    state, seconds = done.stdout.rsplit(" after ", 1)
    assert state == "gone", done.stdout
    assert float(seconds) < timeout + 5
