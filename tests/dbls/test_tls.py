"""DBLS over real TLS (dbls_tls): the database's client reads what to trust from the CONNECTION db_install writes,
local clients from the services registry; plain or wrongly trusting clients are turned away; a missing certificate
stops the start with exit 3 naming the file."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from redpss.core.config import load_config, render_config
from redpss.core.config.kinds import Secret
from redpss.core.db.contract import ServiceConnection
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import BlockingClient
from redpss.core.wire.tls import TlsFiles, server_context
from redpss.devdb.tls import self_signed
from redpss.sql.udf.pss_client import LogBuffer, PssClient, PssError, client_for_connection, tls_context
from tests.support.daemons import DaemonProcess
from tests.support.wait import wait_for

STAMP = "2026-11-30 01:02:03.456789"


def tls_config(instance: InstancePaths, port: int) -> None:
    instance.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "pw"}, "redctl": {"dbls_port": str(port), "dbls_tls": "true"}})
    )


@pytest.fixture
def dbls_tls(instance: InstancePaths, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    tls_config(instance, port)
    files = TlsFiles.of(instance, "DBLS")
    self_signed(files.cert, files.key, common_name="dbls.example")
    daemon = DaemonProcess("redpss.dbls.service", instance, tmp_path / "dbls")
    try:
        daemon.wait_ready()
        yield port
    finally:
        daemon.stop()
        daemon.close()


def test_the_database_client_logs_over_tls_trusting_the_certificate_in_its_connection(
    dbls_tls: int, instance: InstancePaths, tmp_path: Path
) -> None:
    secret = instance_secret(instance)
    files = TlsFiles.of(instance, "DBLS")
    connection = ServiceConnection("REDSYS_DBLS", "127.0.0.1", dbls_tls, "TST1", Secret(secret), files)
    assert connection.address.startswith(f"tls://127.0.0.1:{dbls_tls}?pin=")
    assert connection.where == f"tls://127.0.0.1:{dbls_tls}"
    udf_view = SimpleNamespace(address=connection.address, password=secret)  # what exa.get_connection() gives

    with client_for_connection(udf_view, client="PSS_LOG") as client:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
        buffer = LogBuffer(client, source="APP1.TLS")
        buffer.add("APP1", "ERROR", "over TLS", STAMP)
        buffer.flush()
    assert (instance.log_db / "APP1" / "APP1.log").read_text() == f"{STAMP} ERROR APP1.TLS: over TLS\n"

    with pytest.raises(PssError) as plain:
        PssClient("127.0.0.1", dbls_tls, secret, timeout=10)  # plain TCP to a TLS port
    assert plain.value.code is None, "a plain client gets no reply, only a closed connection"

    other = tmp_path / "other"
    self_signed(other / "other.crt", other / "other.key")
    with pytest.raises(PssError, match="certificate verify failed"):
        PssClient(
            "127.0.0.1", dbls_tls, secret, ssl_context=tls_context((other / "other.crt").read_text(), pinned=True)
        )


def test_local_clients_reach_dbls_over_tls_through_the_registry(dbls_tls: int, instance: InstancePaths) -> None:
    config = load_config(instance.config_file)
    spec = service_spec("dbls")
    context = spec.client_tls(config, instance)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    address = spec.address(config, instance)
    assert isinstance(address, tuple)
    with BlockingClient(address, instance_secret(instance), "probe", ssl_context=context) as client:
        assert client.request("ping")["server"] == "dbls"


def test_the_server_context_allows_tls_1_2_and_newer_only(instance: InstancePaths) -> None:
    files = TlsFiles.of(instance, "DBLS")
    self_signed(files.cert, files.key)
    assert server_context(files).minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("missing", ["dbls.crt", "dbls.key"])
def test_a_missing_certificate_or_key_stops_the_start_with_exit_3_naming_the_file(
    instance: InstancePaths, tmp_path: Path, missing: str
) -> None:
    tls_config(instance, free_port())
    files = TlsFiles.of(instance, "DBLS")
    self_signed(files.cert, files.key)
    (files.cert.parent / missing).unlink()
    daemon = DaemonProcess("redpss.dbls.service", instance, tmp_path / "dbls")
    try:
        assert daemon.process.wait(60) == 3
        assert str(files.cert.parent / missing) in daemon.stderr + daemon.log
    finally:
        daemon.close()


def test_connections_that_never_start_their_tls_handshake_meet_the_cap_without_hello(
    instance: InstancePaths, tmp_path: Path
) -> None:
    """Counted only after the handshake, 200 silent peers would each hold a descriptor and TLS buffers for the
    handshake timeout, unlogged; counted at accept, those beyond 64 are refused with a WARNING, and a client that
    does its handshake and hello is served meanwhile."""
    port = free_port()
    tls_config(instance, port)
    files = TlsFiles.of(instance, "DBLS")
    self_signed(files.cert, files.key, common_name="dbls.example")
    daemon = DaemonProcess("redpss.dbls.service", instance, tmp_path / "dbls")
    silent: list[socket.socket] = []
    try:
        daemon.wait_ready()
        for _ in range(200):
            silent.append(socket.create_connection(("127.0.0.1", port)))
        daemon.wait_log("64 connections without hello")
        wait_for(
            lambda: len(list(Path(f"/proc/{daemon.pid}/fd").iterdir())) < 150, 10, what="dropped peers' fds closed"
        )
        pem = files.cert.read_text()
        context = tls_context(pem, pinned=True)

        def served() -> bool:  # refused while every silent peer is younger than the eviction grace (0.1 s)
            try:
                with PssClient("127.0.0.1", port, instance_secret(instance), ssl_context=context) as client:
                    return bool(client.send_log([["APP1", "INFO", "2026-11-30 01:02:03", "s", "served"]])["lines"] == 1)
            except PssError:
                return False

        wait_for(served, 10, what="a client with handshake and hello served beside the silent peers")
    finally:
        for peer in silent:
            peer.close()
        daemon.stop()
        daemon.close()
