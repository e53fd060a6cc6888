"""The client the database's scripts embed runs on the standard library alone: copied out of the package and run by
an interpreter that sees no installed package (-S: no site-packages), it logs to a real DBLS."""

from __future__ import annotations

import ast
import concurrent.futures
import datetime
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redpss.core.secret import instance_secret
from redpss.core.wire import Limits
from redpss.sql.udf import pss_client
from tests.dbls.conftest import Dbls
from tests.support.wait import wait_for
from tests.support.wire_server import SECRET, WireServerThread

SCRIPT = """
import sys
from pss_client import LogBuffer, PssClient, PssError
host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with PssClient(host, port, secret, client="embedded") as client:
    buffer = LogBuffer(client, source="APP1.UDF", max_lines=2)
    for n in range(5):
        buffer.add("APP1", "INFO", f"embedded {n}")
    buffer.flush()
try:
    PssClient(host, port, "wrong" * 10)
except PssError as exc:
    print(exc.code)
"""


def test_the_client_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(pss_client.__file__).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_the_client_copied_alone_logs_to_dbls(dbls: Dbls, tmp_path: Path) -> None:
    folder = tmp_path / "udf"
    folder.mkdir()
    shutil.copy(pss_client.__file__, folder / "pss_client.py")
    (folder / "script.py").write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "script.py", "127.0.0.1", str(dbls.port), instance_secret(dbls.paths)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AUTH_FAILED"
    assert [line.split(": ", 1)[1] for line in dbls.schema_lines("APP1")] == [f"embedded {n}" for n in range(5)]


def test_now_text_is_the_local_time_to_the_microsecond_and_follows_each_second(monkeypatch: pytest.MonkeyPatch) -> None:
    for clock in (1764464523.000042, 1764464523.999999, 1764464524.000001, 1764464524.5, 1764464523.5):
        monkeypatch.setattr(time, "time_ns", lambda clock=clock: round(clock * 1e6) * 1000)
        expected = datetime.datetime.fromtimestamp(clock).strftime("%Y-%m-%d %H:%M:%S.%f")
        assert pss_client.now_text() == expected


def test_messages_as_long_as_pss_log_takes_are_logged_cut_never_refused(dbls: Dbls) -> None:
    """PSS_LOG's message is a VARCHAR(2000000): five of them are more than DBLS takes in one request (8 MiB). Each
    line is cut with a note of what was left out, and buffers go out by size too, so the statement's log works."""
    with pss_client.PssClient("127.0.0.1", dbls.port, instance_secret(dbls.paths), client="long") as client:
        buffer = pss_client.LogBuffer(client, source="APP1.UDF")
        for n in range(5):
            buffer.add("APP1", "INFO", f"{n}" * 2_000_000)
        buffer.add("APP1", "INFO", "short")
        buffer.flush()
    lines = [line.split(": ", 1)[1] for line in dbls.schema_lines("APP1")]
    assert len(lines) == 6 and lines[-1] == "short"
    for n, line in enumerate(lines[:5]):
        kept = pss_client.MAX_LINE_CHARS - 100
        assert line == f"{n}" * kept + f" [... {2_000_000 - kept} more characters not logged]"


def test_a_client_waits_its_turn_at_a_service_with_as_many_clients_as_it_takes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """More UDF instances than the service takes at once (TOO_MANY_CONNECTIONS): the next one connects once a place
    is free, within its wait, instead of failing its statement; past the wait it fails with the service's reason."""

    def refusals() -> int:
        return sum("[TOO_MANY_CONNECTIONS]" in r.getMessage() for r in caplog.records)

    with WireServerThread(limits=Limits(max_clients=1)) as server, caplog.at_level(logging.WARNING):
        host, port = "127.0.0.1", server.port
        first = pss_client.PssClient(host, port, SECRET, client="first")
        with pytest.raises(pss_client.PssError) as refused:
            pss_client.PssClient(host, port, SECRET, client="impatient", busy_wait=0.0)
        assert refused.value.code == "TOO_MANY_CONNECTIONS"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(pss_client.PssClient, host, port, SECRET, client="second", busy_wait=30.0)
            wait_for(lambda: refusals() >= 2, 10, what="the waiting client refused once at least")
            assert not waiting.done()
            first.close()
            second = waiting.result(timeout=30)
        assert second.exchange({"op": "echo"})["ok"] is True
        second.close()
