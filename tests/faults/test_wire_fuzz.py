"""Hostile unauthenticated input against a real JsonLineServer in a process of its own.

Whatever arrives before the hello (random bytes, random JSON, deep nesting, huge lines, floods of idle connections),
the server answers with a refusal or closes, never logs a traceback, keeps its memory and file descriptors bounded,
and still serves an authenticated client afterwards.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.core.wire import BlockingClient, Code, Limits
from tests.support.checked_log import serve_then_check_log
from tests.support.leaks import memory_kib
from tests.support.wait import wait_for
from tests.support.wire_server import SECRET, send_and_read

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CAP = Limits().max_unauthenticated


class ServerProcess:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.wire_server"], cwd=REPO, stdout=subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak) of the server process, in KiB."""
        return memory_kib(self.process.pid, field)

    def open_fds(self) -> int:
        return sum(1 for _ in Path(f"/proc/{self.process.pid}/fd").iterdir())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_serves(self) -> None:
        with BlockingClient(("127.0.0.1", self.port), SECRET, "after-the-storm") as client:
            assert client.request("echo", n=1)["echo"]["n"] == 1

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from serve_then_check_log(ServerProcess(tmp_path / "server.log"), "Traceback", "ERROR")


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def exchange(port: int, payload: bytes) -> bytes:
    """Send the payload on a fresh connection, end our side, and read what the server answers until it closes."""
    with connect(port) as sock:
        return send_and_read(sock, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
hellos = st.fixed_dictionaries(
    {"op": st.just("hello")}, optional={"version": json_values, "secret": json_values, "client": json_values}
)
hostile_input = st.one_of(
    st.binary(max_size=6000),
    st.binary(max_size=300).map(lambda b: b + b"\n"),
    json_values.map(lambda v: json.dumps(v).encode() + b"\n"),
    hellos.map(lambda h: json.dumps(h).encode() + b"\n"),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"\n"),
    st.integers(1, 5_000).map(lambda n: b'{"a":' * n + b"\n"),
    st.integers(4_000, 3_000_000).map(lambda n: b"x" * n),
    st.sampled_from([b"\xff\n", b"\xc3\n", b'"\\ud800"\n', b"NaN\n", b"1e999999\n", b"1" * 4090 + b"\n", b"\n"]),
)


def test_fuzzed_unauthenticated_input_is_refused_without_traceback(server: ServerProcess) -> None:
    baseline = server.memory_kib("VmRSS")
    codes: set[str] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(payload=hostile_input)
    def refused(payload: bytes) -> None:
        data = exchange(server.port, payload)
        for line in data.splitlines():
            reply = json.loads(line)
            assert reply["ok"] is False, reply
            assert reply["code"] in set(Code), reply
            codes.add(reply["code"])
        if payload.strip() and not data:
            raise AssertionError(f"no reply to {payload[:60]!r}")

    refused()
    server.assert_serves()
    grown = server.memory_kib("VmRSS") - baseline
    print(f"\nwire fuzz: refusal codes seen {sorted(codes)}; RSS grew {grown} KiB")
    assert {Code.BAD_FRAME, Code.TOO_LARGE, Code.AUTH_FAILED} <= codes
    assert grown < 32 * 1024


def test_memory_stays_bounded_under_parallel_huge_lines(server: ServerProcess) -> None:
    """60 connections each pushing 4 MiB before any hello (SCHED grew by ~15 MiB per connection before)."""
    peak_before = server.memory_kib("VmHWM")
    errors: list[BaseException] = []

    def flood() -> None:
        try:
            for _ in range(3):
                reply = exchange(server.port, b"y" * (4 * 1024 * 1024))
                assert reply == b"" or json.loads(reply.splitlines()[0])["code"] == Code.TOO_LARGE
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=flood) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    peak_growth = server.memory_kib("VmHWM") - peak_before
    print(f"\nwire flood: 60 x 4 MiB before hello; server peak RSS grew {peak_growth} KiB")
    assert peak_growth < 32 * 1024
    server.assert_serves()


def test_fd_flood_of_idle_connections_leaves_room_for_clients(server: ServerProcess) -> None:
    fds_before = server.open_fds()
    idle = [connect(server.port) for _ in range(3 * CAP)]
    try:
        wait_for(lambda: server.open_fds() <= fds_before + CAP + 2, 15, what="the server to shed the oldest idle ones")
        server.assert_serves()
        # A burst of connects right behind a client's hello does not push the client out.
        with connect(server.port) as client:
            client.sendall(json.dumps({"op": "hello", "version": 1, "secret": SECRET, "client": "x"}).encode() + b"\n")
            burst = [connect(server.port) for _ in range(2 * CAP)]
            idle.extend(burst)
            assert json.loads(client.makefile("rb").readline())["ok"] is True
        # The burst's connections are accepted and shed asynchronously: wait for the shedding, as above.
        wait_for(lambda: server.open_fds() <= fds_before + CAP + 2, 15, what="the server to shed the burst")
        print(f"\nwire fd flood: {len(idle)} idle connections; server holds {server.open_fds() - fds_before} more fds")
        server.assert_serves()
    finally:
        for sock in idle:
            sock.close()
