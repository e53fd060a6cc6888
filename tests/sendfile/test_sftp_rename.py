"""SENDFILE's upload to a partner whose SFTP server lacks posix-rename@openssh.com (paramiko's own server here):
the file still arrives under its final name, also over an older one, and no temporary file stays behind."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from redpss.sendfile.sftp import upload
from redpss.sendfile.targets import SftpTarget
from tests.support.paramiko_sftp import ParamikoSftpServer


@pytest.fixture
def partner(tmp_path: Path) -> Iterator[tuple[ParamikoSftpServer, Path, Path]]:
    """The server, the folder it serves, and our private key's file (OpenSSH format, mode 0600)."""
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    key_file = tmp_path / "partner_ed25519"
    key_file.write_text(pem)
    key_file.chmod(0o600)
    served = tmp_path / "served"
    (served / "upload").mkdir(parents=True)
    server = ParamikoSftpServer(served, "shop", paramiko.Ed25519Key.from_private_key(io.StringIO(pem)))
    try:
        yield server, served, key_file
    finally:
        server.close()


def test_a_server_without_posix_rename_gets_the_file_under_its_name_also_over_an_old_one(
    partner: tuple[ParamikoSftpServer, Path, Path], tmp_path: Path
) -> None:
    """posix-rename answered "unsupported" (no errno) counted as a passing failure: 30 tries over hours, each
    exporting the table again, and the file never arrived."""
    server, served, key_file = partner
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server.known_hosts_line())
    target = SftpTarget("shop", "127.0.0.1", server.port, "shop", key_file, "/upload", timeout=10)
    for day, content in (("first", b"ID\n1\n"), ("second", b"ID\n1\n2\n")):
        local = tmp_path / f"{day}.csv"
        local.write_bytes(content)
        assert upload(target, known_hosts, local, "orders.csv", f"request-{day}") == "/upload/orders.csv"
        assert (served / "upload" / "orders.csv").read_bytes() == content
        assert [p.name for p in (served / "upload").iterdir()] == ["orders.csv"]  # no temporary file left
