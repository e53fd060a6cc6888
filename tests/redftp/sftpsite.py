"""The sFTP test site: a scratch root prepared as the RPM would (group redftp, redsys, instance trees), with sshd.

Shared by the test modules of tests/redftp: each builds its own site with `running_site` in a module fixture.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from redpss.core.net import free_port
from tests.redftp.scratchroot import PROJECT, ScratchRoot, missing_tools
from tests.support.wait import wait_for

SSHD = Path("/usr/sbin/sshd")
SNIPPET = PROJECT / "etc" / "sshd_config.d" / "redpss-redftp.conf"
BIN = PROJECT / ".venv" / "bin"
USERADD, USERDEL = str(BIN / "redftp_useradd"), str(BIN / "redftp_userdel")
PYTHON = str(BIN / "python")
HOST_KEY = "/etc/ssh/redpss_test_host_ed25519_key"
MAIN_CONFIG = "/etc/ssh/sshd_config_redpss_test"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (useradd, mount namespaces, chroot)"
    if not SSHD.exists():
        return f"{SSHD} is missing: apt-get install openssh-server (dnf install openssh-server on RHEL)"
    missing = missing_tools()
    if missing:
        return f"missing tools: {', '.join(missing)}"
    if not Path(USERADD).exists():
        return f"{USERADD} is not installed: pip install -e ."
    return None


@dataclass
class Key:
    private: paramiko.PKey
    public_line: str


def ed25519_key(comment: str) -> Key:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return Key(paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), f"{public.decode()} {comment}\n")


def rsa_key(comment: str) -> Key:
    private = rsa.generate_private_key(65537, 2048)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return Key(paramiko.RSAKey(key=private), f"{public.decode()} {comment}\n")


@dataclass
class Site:
    """The scratch root with sshd running in it."""

    root: ScratchRoot
    port: int
    host_key: str  # base64 of the sshd host key, pinned by every client
    log: Path

    def useradd(self, user: str, key: Key, instance: str = "TST1") -> subprocess.CompletedProcess[str]:
        return self.root.run([USERADD, instance, user, "--key", "-"], stdin=key.public_line)

    def userdel(self, user: str, *extra: str, instance: str = "TST1") -> subprocess.CompletedProcess[str]:
        return self.root.run([USERDEL, instance, user, *extra])

    def sshd_log(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def transport(self) -> paramiko.Transport:
        transport = paramiko.Transport(("127.0.0.1", self.port))
        transport.start_client(timeout=10)
        assert transport.get_remote_server_key().get_base64() == self.host_key
        return transport

    def uid(self, system: str) -> int:
        for line in self.root.path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == system:
                return int(fields[2])
        raise KeyError(system)


class Session:
    """One authenticated SSH connection with an SFTP channel; closed on exit so no client thread outlives a test."""

    def __init__(self, site: Site, system: str, key: Key) -> None:
        self.transport = site.transport()
        try:
            self.transport.auth_publickey(system, key.private)
            sftp = paramiko.SFTPClient.from_transport(self.transport)
            assert sftp is not None, "the server opened no SFTP channel"
            self.sftp: paramiko.SFTPClient = sftp
        except BaseException:
            self.transport.close()
            raise

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sftp.close()
        self.transport.close()


def put(session: Session, remote: str, data: bytes) -> None:
    with session.sftp.open(remote, "wb") as handle:
        handle.write(data)


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def prepare(root: ScratchRoot) -> None:
    """What the installation provides: group redftp, redsys in it, instance trees, sshd host key and config."""
    for argv in (
        ["groupadd", "--system", "redftp"],
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/app/redsys",
            "--shell",
            "/bin/sh",
            "--groups",
            "redftp",
            "redsys",
        ],
        ["install", "-d", "-o", "redsys", "-g", "redsys", "-m", "0750", "/app/redsys"],
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", HOST_KEY],
        ["install", "-d", "-m", "0755", "/run/sshd"],
    ):
        root.run(argv, check=True)
    create = (
        "from redpss.core.paths import InstancePaths, create_instance_tree\n"
        "for i in ('TST1', 'DEV1'): create_instance_tree(InstancePaths.for_instance(i))"
    )
    root.run([PYTHON, "-c", create], user="redsys", check=True)
    snippet_dir = root.path("/etc/ssh/sshd_config.d")
    snippet_dir.mkdir(exist_ok=True)
    shutil.copyfile(SNIPPET, snippet_dir / SNIPPET.name)
    root.path(MAIN_CONFIG).write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {HOST_KEY}",
                "PidFile none",
                "UsePAM no",
                "LogLevel VERBOSE",
                "Subsystem sftp internal-sftp",
                # Permissive defaults on purpose: the snippet must win over them for sFTP users.
                "PasswordAuthentication yes",
                "AllowTcpForwarding yes",
                "PermitTTY yes",
                f"Include /etc/ssh/sshd_config.d/{SNIPPET.name}",
                "",
            ]
        )
    )


@contextlib.contextmanager
def running_site(folder: Path) -> Iterator[Site]:
    """A scratch root in `folder` prepared like an installation, with sshd listening on a free loopback port."""
    root = ScratchRoot(folder)
    root.start()
    sshd: subprocess.Popen[str] | None = None
    log_path = root.root.parent / "sshd.log"
    log = log_path.open("w")
    try:
        prepare(root)
        port = free_port()
        check = root.run([str(SSHD), "-t", "-f", MAIN_CONFIG])
        assert check.returncode == 0, f"sshd -t refused the configuration: {check.stderr}"
        sshd = root.popen([str(SSHD), "-D", "-e", "-p", str(port), "-f", MAIN_CONFIG], log)
        wait_for(lambda: accepts(port) or sshd.poll() is not None, timeout=15, what="sshd to listen")
        assert sshd.poll() is None, f"sshd exited: {log_path.read_text()}"
        host_key = root.path(HOST_KEY + ".pub").read_text().split()[1]
        yield Site(root=root, port=port, host_key=host_key, log=log_path)
    finally:
        if sshd is not None:
            sshd.terminate()
            try:
                sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sshd.kill()
                sshd.wait()
        log.close()
        root.stop()


@contextlib.contextmanager
def module_site(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Site]:
    """running_site() for a test module's fixture in a fresh folder named after `name`; the module is skipped where
    the site cannot run here (skip_reason())."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with running_site(tmp_path_factory.mktemp(name) / "root") as running:
        yield running
