"""devdb's listener under hostile unauthenticated input and a file-descriptor flood, as its own process.

Whatever arrives before login (random bytes, malformed WebSocket upgrades and frames, malformed JSON commands) devdb
answers with an error or closes, never logs a traceback, keeps its memory bounded, and still serves a real pyexasol
login afterwards. While a flood of connections that never log in is open, an authenticated client is still served,
including pyexasol's HTTP transport.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.devdb.limits import MAX_UNAUTHENTICATED
from redpss.devdb.testing import DevDbProcess
from tests.support import hostile
from tests.support.checked_log import serve_then_check_log
from tests.support.leaks import memory_kib

pytestmark = pytest.mark.slow

ATTACKER = "127.0.0.2"  # the fuzzer's source address: its failed logins must not slow down the real client
MEMORY_CAP_MIB = 150  # growth of devdb's peak RSS over the whole fuzz run
FUZZ = settings(
    max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Listener:
    """A devdb process, its log, its memory, and a real client to prove it still serves."""

    def __init__(self, data: Path) -> None:
        self.process = DevDbProcess(data)
        self.process.start()
        assert self.process.process is not None
        self.pid = self.process.process.pid
        self.port = self.process.port
        self.start_rss = self.memory_mib("VmRSS")

    def memory_mib(self, field: str) -> float:
        return memory_kib(self.pid, field) / 1024

    def log(self) -> str:
        return self.process.log_file.read_text(errors="replace")

    def assert_serves(self) -> None:
        with self.process.connect() as connection:
            assert connection.execute("SELECT 42").fetchval() == 42

    def stop(self) -> None:
        assert self.process.stop() == 0


@pytest.fixture(scope="module")
def listener(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    yield from serve_then_check_log(Listener(tmp_path_factory.mktemp("devdb-fuzz")), "Traceback")


def send_and_close(port: int, *parts: bytes, upgrade: bool = False) -> None:
    """Send parts on a fresh connection (after a WebSocket upgrade if asked), glance at the answer, close."""
    with hostile.connect(port, ATTACKER, timeout=2.0) as sock:
        if upgrade and hostile.upgrade(sock) != 101:
            return
        with contextlib.suppress(OSError):
            for part in parts:
                sock.sendall(part)
            sock.settimeout(0.05)
            sock.recv(65536)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
commands = st.fixed_dictionaries(
    {"command": st.sampled_from(["login", "loginToken", "fetch", "execute", "disconnect"]) | st.text(max_size=10)},
    optional={"protocolVersion": json_values, "attributes": json_values, "sqlText": json_values},
)
credentials = st.fixed_dictionaries(
    {},
    optional={
        "username": json_values,
        "password": json_values | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()),
        "useCompression": json_values,
        "attributes": json_values,
    },
)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_raw_bytes(listener: Listener, data: bytes) -> None:
    send_and_close(listener.port, data)


@FUZZ
@given(
    request_line=st.sampled_from([b"GET / HTTP/1.1", b"GET /", b"POST / HTTP/1.1", b"GET / HTTP/9.9", b""]),
    headers=st.lists(st.binary(max_size=80), max_size=8),
    upgrade_headers=st.booleans(),
)
def test_malformed_websocket_upgrades(
    listener: Listener, request_line: bytes, headers: list[bytes], upgrade_headers: bool
) -> None:
    lines = [request_line, *headers]
    if upgrade_headers:
        lines += [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13"]
    send_and_close(listener.port, b"\r\n".join(lines) + b"\r\n\r\n")


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A client frame of any opcode and flags, possibly announcing a length it does not carry, then stray bytes."""
    frame = hostile.frame(
        draw(st.integers(0, 15)),
        draw(st.binary(max_size=512)),
        announced=draw(st.none() | st.integers(0, 1 << 40)),
        fin=draw(st.booleans()),
    )
    return frame + draw(st.binary(max_size=64))


@FUZZ
@given(frame=frames())
def test_malformed_frames_before_login(listener: Listener, frame: bytes) -> None:
    send_and_close(listener.port, frame, upgrade=True)


@FUZZ
@given(first=commands | json_values, second=credentials | json_values, as_binary=st.booleans())
def test_malformed_login_commands(listener: Listener, first: Any, second: Any, as_binary: bool) -> None:
    opcode = hostile.BINARY if as_binary else hostile.TEXT
    messages = [hostile.frame(opcode, json.dumps(value).encode()) for value in (first, second)]
    send_and_close(listener.port, *messages, upgrade=True)


def test_after_the_fuzz_devdb_serves_and_its_memory_stayed_bounded(listener: Listener) -> None:
    """Runs after the fuzz tests above (file order): the real client, the peak memory, and no traceback."""
    listener.assert_serves()
    peak = listener.memory_mib("VmHWM")
    print(f"devdb fuzz: RSS at start {listener.start_rss:.0f} MiB, peak {peak:.0f} MiB (cap +{MEMORY_CAP_MIB})")
    assert peak - listener.start_rss < MEMORY_CAP_MIB
    assert "Traceback" not in listener.log()


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_fd_flood_does_not_stop_an_authenticated_client(tmp_path: Path) -> None:
    with hostile.raised_fd_limit(4096) as limit:
        listener = Listener(tmp_path / "db")  # inherits the raised limit, as a unit's LimitNOFILE would set it
        try:
            flood = min(1500, (limit - 300) // 2)  # the flood's sockets and devdb's share of them fit the limit
            with contextlib.ExitStack() as stack:
                opened = 0
                for index in range(flood):
                    kind = index % 3
                    if kind == 0:
                        stack.enter_context(hostile.open_tunnel(listener.port, ATTACKER))
                    else:
                        sock = stack.enter_context(hostile.connect(listener.port, ATTACKER))
                        if kind == 2:
                            hostile.upgrade(sock)
                    opened += 1
                devdb_fds = sum(1 for _ in Path(f"/proc/{listener.pid}/fd").iterdir())
                with listener.process.connect() as connection:
                    assert connection.execute("SELECT 42").fetchval() == 42
                    connection.execute("CREATE SCHEMA flood")
                    connection.execute("CREATE TABLE flood.t (id DECIMAL(9,0))")
                    connection.import_from_iterable(([i] for i in range(100)), ("FLOOD", "T"))
                    out = io.BytesIO()
                    connection.export_to_file(out, ("FLOOD", "T"))
                    assert len(out.getvalue().splitlines()) == 100
                gc.collect()  # pyexasol leaves its import pipe's text wrapper to the garbage collector
                print(
                    f"devdb fd flood: {opened} connections opened without login (a third of them tunnels), devdb "
                    f"held {devdb_fds} fds (cap {MAX_UNAUTHENTICATED} waiting logins), an authenticated client "
                    "logged in, imported and exported"
                )
        finally:
            listener.stop()
        assert "Traceback" not in listener.log()
