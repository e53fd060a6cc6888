"""The client the database's scripts embed runs on the standard library alone: copied out of the package and run by
an interpreter that sees no installed package (-S: no site-packages), it logs to a real DBLS."""

from __future__ import annotations

import ast
import datetime
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redpss.core.secret import instance_secret
from redpss.sql.udf import pss_client
from tests.dbls.conftest import Dbls

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
