"""A real CFISRV process over a scratch instance, with a scratch sFTP tree holding two instances' uploads."""

from __future__ import annotations

import contextlib
import ftplib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redpss.cfi.tls import ensure_certificate
from redpss.core.net import free_ports_beside_range
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.devdb.ftpfetch import ImplicitFtps, client_context
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import instance_config

USER = "cfi_loader"
PASSWORD = "cfi-test-pw"
PASSIVE_PORTS = 8


@dataclass
class Cfi:
    paths: InstancePaths
    redftp_root: Path
    implicit_port: int
    explicit_port: int
    daemon: DaemonProcess

    def implicit(self, user: str = USER, password: str = PASSWORD) -> ImplicitFtps:
        """A logged-in ftplib client over implicit FTPS with PROT P."""
        client = ImplicitFtps(context=client_context(), timeout=15)
        try:
            client.connect("127.0.0.1", self.implicit_port)
            client.login(user, password)
            client.prot_p()
        except BaseException:
            client.close()
            raise
        return client

    def explicit(self, user: str = USER, password: str = PASSWORD) -> ftplib.FTP_TLS:
        """ftplib's FTP_TLS over explicit AUTH TLS, logged in, with PROT P."""
        client = ftplib.FTP_TLS(context=client_context(), timeout=15)  # noqa: S321 - TLS, what is under test
        try:
            client.connect("127.0.0.1", self.explicit_port)
            client.login(user, password)  # FTP_TLS sends AUTH TLS before USER
            client.prot_p()
        except BaseException:
            client.close()
            raise
        return client


def make_instance(root: Path, name: str = "TST1") -> InstancePaths:
    redhome = root / "redsys"
    redhome.mkdir(parents=True, exist_ok=True)
    paths = InstancePaths.for_instance(name, redhome)
    create_instance_tree(paths)
    return paths


def write_config(
    paths: InstancePaths,
    implicit: int,
    explicit: int,
    pasv: int,
    *,
    password: str = PASSWORD,
    more: dict[str, dict[str, str]] | None = None,
) -> None:
    redctl = {
        "cfi_port": str(implicit),
        "cfi_explicit_port": str(explicit),
        "cfi_pasv_port_start": str(pasv),
        "cfi_pasv_port_end": str(pasv + PASSIVE_PORTS - 1),
        "cfi_user": USER,
        "cfi_password": password,
    }
    overrides = {section: dict(keys) for section, keys in (more or {}).items()}
    overrides.setdefault("redctl", {}).update({**redctl, **overrides.get("redctl", {})})
    paths.config_file.write_text(instance_config(overrides))
    paths.config_file.chmod(0o600)


def sftp_layout(paths: InstancePaths, redftp_root: Path) -> None:
    """alice uploads to this instance (linked as data/input/alice); bob's folder belongs to instance TST2 and is
    linked as data/input/mallory, which CFISRV must refuse."""
    own = redftp_root / "env" / "tst1" / "alice" / "upload"
    other = redftp_root / "env" / "tst2" / "bob" / "upload"
    own.mkdir(parents=True)
    other.mkdir(parents=True)
    (own / "orders.csv").write_text("1;first\n2;second\n")
    (other / "secret.csv").write_text("not yours\n")
    (paths.data_input / "alice").symlink_to(own)
    (paths.data_input / "mallory").symlink_to(other)


@contextlib.contextmanager
def running_cfi(tmp_path: Path, more: dict[str, dict[str, str]] | None = None) -> Iterator[Cfi]:
    """CFISRV of instance TST1 (config overrides `more`) over the sFTP layout above."""
    paths = make_instance(tmp_path)
    (implicit, explicit), pasv = free_ports_beside_range(2, PASSIVE_PORTS)
    write_config(paths, implicit, explicit, pasv, more=more)
    ensure_certificate(paths)
    redftp_root = tmp_path / "redftp"
    sftp_layout(paths, redftp_root)
    daemon = DaemonProcess(
        "redpss.cfi.service", paths, tmp_path / "cfi", "--redftp-root", str(redftp_root), env=paths.environment()
    )
    try:
        daemon.wait_ready(timeout=30)
        yield Cfi(paths, redftp_root, implicit, explicit, daemon)
    finally:
        daemon.stop()
        daemon.close()


@pytest.fixture
def cfi(tmp_path: Path) -> Iterator[Cfi]:
    with running_cfi(tmp_path) as running:
        yield running


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The curl command-line client, certificate not checked (the test's certificate is self-signed)."""
    command = ["curl", "--silent", "--show-error", "--insecure", *args]
    return subprocess.run(command, capture_output=True, timeout=60, check=False)
