"""Instances on one server never share ports: `redsysctl create` allocates a block, `redinfo --check` and every
daemon refuse a config that collides with another instance's, and a daemon whose port is taken names the holder."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from redpss.cli import redinfo
from redpss.cli.redsysctl.main import main as redsysctl
from redpss.core.config import load_config
from redpss.core.exitcodes import ExitCode
from redpss.core.net import PortTaken, listening_ports, port_owner
from redpss.core.paths import InstancePaths
from redpss.core.ports import config_claims, port_collisions
from redpss.core.wire import JsonLineServer, Message
from tests.support.daemons import DaemonProcess
from tests.support.held_port import held_port


def _created(redhome: Path, name: str) -> InstancePaths:
    assert redsysctl(["create", name]) == 0
    paths = InstancePaths.for_instance(name, redhome)
    text = paths.config_file.read_text().replace("exa_password = \n", "exa_password = secret-pw\n", 1)
    paths.config_file.write_text(text)
    return paths


def _ports(paths: InstancePaths) -> set[int]:
    claims = config_claims(load_config(paths.config_file), paths.redenv)
    return {port for claim in claims for port in range(claim.low, claim.high + 1)}


def test_create_gives_each_instance_its_own_block_of_ports(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tst1, dev1, prd1 = (_created(redhome, name) for name in ("TST1", "DEV1", "PRD1"))
    assert "sched_service_port = 7401" in tst1.config_file.read_text()  # the first instance keeps the defaults
    assert "sched_service_port = 7501" in dev1.config_file.read_text()
    assert "cfi_pasv_port_start = 7550" in dev1.config_file.read_text()  # the passive range moves too
    assert not _ports(tst1) & _ports(dev1) and not _ports(dev1) & _ports(prd1) and not _ports(tst1) & _ports(prd1)
    for paths in (tst1, dev1, prd1):
        assert redinfo.main(["-i", paths.redenv, "--check"]) == 0, capsys.readouterr().err


def test_create_skips_a_block_where_something_listens(redhome: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", 7401))
        except OSError:
            pytest.skip("port 7401 is in use on this machine already")  # the point holds, but not checkable here
        holder.listen()
        assert 7401 in listening_ports()
        tst1 = _created(redhome, "TST1")
    assert "sched_service_port = 7501" in tst1.config_file.read_text()


def test_check_refuses_another_instances_ports_naming_both(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tst1, dev1 = _created(redhome, "TST1"), _created(redhome, "DEV1")
    dev1.config_file.write_text(tst1.config_file.read_text())  # a config copied by hand
    assert redinfo.main(["-i", "DEV1", "--check"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "[redctl] sched_service_port = 7401 collides with instance TST1's [redctl] sched_service_port = 7401" in err
    assert str(dev1.config_file) in err and str(tst1.config_file) in err
    problems = port_collisions(load_config(tst1.config_file), tst1)
    assert any("collides with instance DEV1's" in p for p in problems)  # seen from both sides


def test_disabled_services_do_not_collide(redhome: Path) -> None:
    _created(redhome, "TST1")
    dev1 = _created(redhome, "DEV1")
    text = dev1.config_file.read_text().replace("gu_port = 7543", "gu_port = 7443")  # REST off in both
    dev1.config_file.write_text(text)
    assert port_collisions(load_config(dev1.config_file), dev1) == []


def test_a_daemon_refuses_to_start_on_another_instances_ports(redhome: Path, tmp_path: Path) -> None:
    tst1, dev1 = _created(redhome, "TST1"), _created(redhome, "DEV1")
    dev1.config_file.write_text(tst1.config_file.read_text())
    daemon = DaemonProcess("redpss.devdb", dev1, tmp_path / "devdb")
    try:
        assert daemon.process.wait(timeout=60) == ExitCode.CONFIG  # 3: the unit does not restart it
        assert "collides with instance TST1's" in daemon.stderr
    finally:
        daemon.close()


def test_port_owner_names_the_listening_process() -> None:
    with held_port() as port:
        owner = port_owner(port)
    assert owner is not None and owner.startswith(f"pid {_own_pid()} (")
    assert "pytest" in owner or "python" in owner


def _own_pid() -> int:
    return os.getpid()


def test_wire_server_on_a_taken_port_names_the_holder() -> None:
    async def handler(message: Message, connection: object) -> Message:
        return {}

    async def start_on(port: int) -> None:
        server = JsonLineServer(handler, "secret", "TEST")
        try:
            await server.start_tcp("127.0.0.1", port)
        finally:
            await server.close()

    with held_port() as port, pytest.raises(PortTaken) as caught:
        asyncio.run(start_on(port))
    assert f"port {port} on 127.0.0.1 is already in use, held by pid {_own_pid()}" in str(caught.value)


def test_devdb_on_a_taken_port_exits_3_naming_the_holder(instance: InstancePaths, tmp_path: Path) -> None:
    with held_port() as port:
        text = instance.config_file.read_text()
        text = text.replace("#devdb_enabled = false", "devdb_enabled = true").replace(
            "#exa_connection = localhost:8563", f"exa_connection = 127.0.0.1:{port}"
        )
        instance.config_file.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "redpss.devdb", "--instance", "TST1"],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    log = instance.log_file("devdb").read_text() if instance.log_file("devdb").exists() else ""
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert f"held by pid {_own_pid()}" in log + result.stderr
