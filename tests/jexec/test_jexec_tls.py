"""JEXEC over real TLS (jexec_tls) with a site CA: SCHED's ACTION client and the database's client verify the chain and
the server's name; a certificate for another name is refused; a missing key stops the start with exit 3."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from redpss.core.config import render_config
from redpss.core.config.kinds import Secret
from redpss.core.db.contract import ServiceConnection
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.wire.tls import TlsFiles
from redpss.jexec.client import ActionFailed, run_action
from redpss.sql.udf.pss_client import PssError, client_for_connection
from tests.support.daemons import DaemonProcess


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def issue(files: TlsFiles, names: list[x509.GeneralName]) -> None:
    """A CA (ca.crt) and a server certificate it signed for `names` (jexec.crt, jexec.key), as a site PKI would."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Test CA"))
        .issuer_name(_name("Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("jexec"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files.key.chmod(0o600)


def start(instance: InstancePaths, workdir: Path) -> tuple[DaemonProcess, int]:
    port = free_port()
    instance.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "pw"}, "redctl": {"jexec_port": str(port), "jexec_tls": "true"}})
    )
    return DaemonProcess("redpss.jexec.service", instance, workdir), port


@pytest.fixture
def echo_script(instance: InstancePaths) -> None:
    path = instance.cmd / "echo.sh"
    path.write_text('#!/bin/sh\necho "args: $*"\n')
    path.chmod(0o750)


@pytest.fixture
def jexec_tls(instance: InstancePaths, tmp_path: Path, echo_script: None) -> Iterator[int]:
    issue(TlsFiles.of(instance, "JEXEC"), [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    daemon, port = start(instance, tmp_path / "jexec")
    try:
        daemon.wait_ready()
        yield port
    finally:
        daemon.stop()
        daemon.close()


def test_sched_runs_an_action_through_jexec_over_tls_verified_by_the_site_ca(
    jexec_tls: int, instance: InstancePaths
) -> None:
    message = run_action(instance, "echo.sh one two", run_id="r-tls", job_id=7, timeout=30)
    assert "args: one two" in message


def test_the_database_client_trusts_the_ca_from_its_connection(jexec_tls: int, instance: InstancePaths) -> None:
    secret = instance_secret(instance)
    connection = ServiceConnection(
        "REDSYS_JEXEC", "127.0.0.1", jexec_tls, "TST1", Secret(secret), TlsFiles.of(instance, "JEXEC")
    )
    assert connection.address.startswith(f"tls://127.0.0.1:{jexec_tls}?ca=")
    with client_for_connection(SimpleNamespace(address=connection.address, password=secret), "PSS_EXEC") as client:
        reply = client.run_action("echo.sh", ["x"], timeout=30)
    assert (reply["status"], reply["tail"].strip()) == ("OK", "args: x")

    by_name = connection.address.replace("tls://127.0.0.1:", "tls://localhost:")  # not a name in the certificate
    with pytest.raises(PssError, match="certificate verify failed"):
        client_for_connection(SimpleNamespace(address=by_name, password=secret), "PSS_EXEC")


def test_a_certificate_for_another_name_fails_sched_s_action(instance: InstancePaths, tmp_path: Path) -> None:
    issue(TlsFiles.of(instance, "JEXEC"), [x509.DNSName("jexec.elsewhere.example")])
    daemon, _ = start(instance, tmp_path / "jexec")
    try:
        daemon.wait_ready()
        with pytest.raises(ActionFailed, match=r"JEXEC did not run cmd/echo\.sh: .*certificate verify failed"):
            run_action(instance, "echo.sh", run_id="r-name", job_id=7, timeout=30)
    finally:
        daemon.stop()
        daemon.close()


def test_a_missing_key_stops_the_start_with_exit_3_naming_the_file(instance: InstancePaths, tmp_path: Path) -> None:
    files = TlsFiles.of(instance, "JEXEC")
    issue(files, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    files.key.unlink()
    daemon, _ = start(instance, tmp_path / "jexec")
    try:
        assert daemon.process.wait(60) == 3
        assert str(files.key) in daemon.stderr + daemon.log
    finally:
        daemon.close()
