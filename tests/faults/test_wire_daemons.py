"""Hostile unauthenticated input against the listeners of the real daemons: SCHED's port and JMON's control socket.

Before, `'[' * 100000` as a hello gave a RecursionError traceback in both, and any peer could make SCHED buffer a
16 MiB line before saying hello. Now each is refused with a code and a WARNING line; the daemons keep serving their
clients (JMON stays linked to SCHED, redctl gets answers) and no traceback reaches their logs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.wire import BlockingClient, Code
from tests.support.daemon_set import MODULES
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, instance_config
from tests.support.wire_server import send_and_read

pytestmark = pytest.mark.slow

HOSTILE = [
    b"[" * 100_000 + b"\n",
    b"[" * 4_000 + b"\n",
    b"\xff\xfe\xfd\n",
    b"[1, 2]\n",
    b'{"op": "start_db_job", "id": "abc"}\n',
    json.dumps({"op": "hello", "secret": "wr\u00f6ng", "version": 1}).encode() + b"\n",
    json.dumps({"op": "hello", "secret": "x", "version": 99}).encode() + b"\n",
    b"z" * (5 * 1024 * 1024),
]


class Instance:
    def __init__(self, paths: InstancePaths, workdir: Path) -> None:
        self.paths = paths
        self.runner = RunningInstance(paths, workdir)
        self.procs: list[DaemonProcess] = []
        for name in ("devdb", "sched", "jmon"):
            daemon = DaemonProcess(MODULES[name], paths, workdir / name, log_name=name)
            self.procs.append(daemon)
            daemon.wait_ready()
            if name == "devdb":
                self.runner.redctl("db_register", "APP1")

    def close(self) -> None:
        self.runner.close()
        for daemon in reversed(self.procs):
            daemon.stop()
            daemon.close()


@pytest.fixture
def instance_up(instance: InstancePaths, tmp_path: Path) -> Iterator[Instance]:
    instance.config_file.write_text(instance_config())
    running = Instance(instance, tmp_path)
    try:
        yield running
    finally:
        running.close()


def refusal(address: tuple[str, int] | Path, payload: bytes) -> dict[str, object]:
    family = socket.AF_UNIX if isinstance(address, Path) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(address) if isinstance(address, Path) else address)
        data = send_and_read(sock, payload)
    reply: dict[str, object] = json.loads(data.splitlines()[0])
    return reply


def test_hostile_hellos_to_sched_and_jmon(instance_up: Instance) -> None:
    paths = instance_up.paths
    sched = ("127.0.0.1", instance_up.runner.config.redctl.sched_service_port)
    jmon = paths.tmp / "jmon.sock"
    for address in (sched, jmon):
        codes = [refusal(address, payload)["code"] for payload in HOSTILE]
        assert codes == [
            Code.TOO_LARGE,
            Code.BAD_FRAME,
            Code.BAD_FRAME,
            Code.BAD_FRAME,
            Code.BAD_HELLO,
            Code.AUTH_FAILED,
            Code.VERSION_UNSUPPORTED,
            Code.TOO_LARGE,
        ], address
        idle = [socket.create_connection(sched) for _ in range(100)] if address == sched else []
        try:
            with BlockingClient(address, instance_secret(paths, create=False), "test") as client:
                assert client.request("ping")["ok"] is True
        finally:
            for sock in idle:
                sock.close()
    shown = json.loads(instance_up.runner.redctl("show", "--json").stdout)
    assert shown["sched"], "JMON lost its link to SCHED"
    for daemon in instance_up.procs[1:]:
        output = daemon.stderr + daemon.log
        assert "Traceback" not in output, output[-3000:]
        assert "refused" in output and "[BAD_FRAME]" in output
