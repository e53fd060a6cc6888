"""The README's main job: the demo runs as a new user would run it and shows what it promises."""

from __future__ import annotations

import subprocess
import sys


def test_demo_creates_an_instance_shows_its_config_and_stops_its_daemon_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redpss.demo.run", "--seconds", "2.5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "== instance DEMO1 created in REDHOME=" in out
    assert "data/input/  (0750)" in out
    assert "tmp/  (0700)" in out
    assert "== validated configuration:" in out
    assert "exa_password=Secret('********')" in out
    assert "demo-only-password" not in out
    assert "DEMO1 redpss-heartbeat[" in out  # journald-style console lines
    assert "INFO: heartbeat ready" in out
    assert "SIGTERM received: heartbeat draining in-flight work" in out
    assert "== daemon exited with code 0" in out
    assert out.rstrip().endswith("heartbeat stopped cleanly")
