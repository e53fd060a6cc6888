"""Fixtures shared by the whole suite, and the guard that fails a test leaking threads, fds or processes."""

from __future__ import annotations

import os

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")  # before anything imports pyexasol

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.config import render_config
from redpss.core.paths import InstancePaths, create_instance_tree
from tests.support.leaks import Snapshot

LEAK_GRACE_SECONDS = 5.0


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves threads, file descriptors or child processes behind (after a short grace)."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    before = Snapshot.take()
    yield
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    while True:
        leaks = Snapshot.take().leaks_since(before)
        if not leaks or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if leaks:
        pytest.fail("the test leaked:\n  " + "\n  ".join(leaks), pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_leaks: the leak guard does not check this test")


@pytest.fixture
def redhome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary REDHOME, exported so every process started by the test uses it."""
    home = tmp_path / "redsys"
    home.mkdir()
    monkeypatch.setenv("REDHOME", str(home))
    monkeypatch.delenv("REDENV", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    return home


@pytest.fixture
def instance(redhome: Path) -> InstancePaths:
    """Instance TST1 with its tree and a valid config (mode 0600)."""
    paths = InstancePaths.for_instance("TST1", redhome)
    create_instance_tree(paths)
    paths.config_file.write_text(render_config({"DEFAULT": {"exa_password": "secret-pw"}}))
    paths.config_file.chmod(0o600)
    return paths
