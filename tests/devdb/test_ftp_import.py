"""IMPORT ... FROM CSV AT 'ftps://...' from CFISRV's FTPS server (implicit TLS, passive mode)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.cfi.confine import Confinement
from redpss.cfi.handlers import Counters, ListenerSettings, OneAccountAuthorizer
from redpss.cfi.server import CfiServer, Listener, serve_in_thread
from redpss.cfi.tls import CertificateFiles, server_context
from redpss.core.net import free_port, free_port_range
from redpss.devdb import tls


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """CFISRV's server (implicit FTPS, passive mode, TLS on the data channel) over a scratch folder."""
    root = tmp_path / "ftproot"
    (root / "in").mkdir(parents=True)
    files = CertificateFiles(tmp_path / "ftps.crt", tmp_path / "ftps.key")
    tls.self_signed(files.cert, files.key, common_name="ftps-test")
    pasv = free_port_range(4)
    settings = ListenerSettings(
        context=server_context(files),
        authorizer=OneAccountAuthorizer("loader", "pw", root),
        confinement=Confinement(root, None),
        passive_ports=range(pasv, pasv + 4),
        counters=Counters(),
    )
    server = CfiServer([Listener("127.0.0.1", free_port(), implicit=True, keys="test")], settings)
    server.start()
    thread = serve_in_thread(server)
    try:
        yield server.addresses[0][1], root
    finally:
        server.close()
        thread.join(5)


def test_import_from_ftps_url(conn: Any, ftps_server: tuple[int, Path]) -> None:
    port, root = ftps_server
    (root / "in" / "orders.csv").write_text("id;name\n1;first\n2;\n3;third, with comma\n")
    conn.execute("CREATE TABLE orders (id DECIMAL(9,0), name VARCHAR(40))")
    statement = conn.execute(
        f"IMPORT INTO orders FROM CSV AT 'ftps://127.0.0.1:{port}/in' USER 'loader' IDENTIFIED BY 'pw' "
        "FILE 'orders.csv' COLUMN SEPARATOR = ';' SKIP = 1"
    )
    assert statement.rowcount() == 3
    assert conn.execute("SELECT id, name FROM orders ORDER BY id").fetchall() == [
        (1, "first"),
        (2, None),
        (3, "third, with comma"),
    ]


def test_import_through_a_connection_object(conn: Any, ftps_server: tuple[int, Path]) -> None:
    port, root = ftps_server
    (root / "in" / "a.csv").write_text("1,2024-05-01\n")
    (root / "in" / "b.csv").write_text("2,2024-05-02\n")
    conn.execute(f"CREATE OR REPLACE CONNECTION cfi TO 'ftps://127.0.0.1:{port}/in' USER 'loader' IDENTIFIED BY 'pw'")
    conn.execute("CREATE TABLE days (id DECIMAL(9,0), d DATE)")
    statement = conn.execute("IMPORT INTO days FROM CSV AT cfi FILE 'a.csv' FILE 'b.csv'")
    assert statement.rowcount() == 2
    assert conn.execute("SELECT d FROM days ORDER BY id").fetchall() == [("2024-05-01",), ("2024-05-02",)]
    conn.execute("DROP CONNECTION cfi")


def test_import_of_a_missing_file_fails_clearly(conn: Any, ftps_server: tuple[int, Path]) -> None:
    port, _ = ftps_server
    conn.execute("CREATE TABLE nothing (id DECIMAL(9,0))")
    with pytest.raises(Exception, match="IMPORT from ftps://"):
        conn.execute(
            f"IMPORT INTO nothing FROM CSV AT 'ftps://127.0.0.1:{port}/in' "
            "USER 'loader' IDENTIFIED BY 'pw' FILE 'x.csv'"
        )
