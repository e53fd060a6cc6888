"""IMPORT ... FROM CSV AT 'ftps://...' from a real pyftpdlib FTPS server (implicit TLS, passive mode)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.devdb import tls

with warnings.catch_warnings():
    # pyftpdlib 2 still imports asyncore/asynchat, deprecated in Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import TLS_FTPHandler
    from pyftpdlib.servers import FTPServer


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert_file, key_file = folder / "ftps.crt", folder / "ftps.key"
    tls.self_signed(cert_file, key_file, common_name="ftps-test")
    return cert_file, key_file


class ImplicitTlsHandler(TLS_FTPHandler):  # type: ignore[misc]
    """FTPS the way Exasol's ftps:// expects it: TLS from the first byte of the control connection."""

    def handle(self) -> None:
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self) -> None:
        TLS_FTPHandler.handle(self)


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    root = tmp_path / "ftproot"
    (root / "in").mkdir(parents=True)
    cert_file, key_file = _self_signed(tmp_path)
    authorizer = DummyAuthorizer()
    authorizer.add_user("loader", "pw", str(root), perm="elr")

    class Handler(ImplicitTlsHandler):
        pass

    Handler.authorizer = authorizer
    Handler.certfile = str(cert_file)
    Handler.keyfile = str(key_file)
    Handler.tls_data_required = True
    server = FTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1, "blocking": True}, daemon=True)
    thread.start()
    try:
        yield server.address[1], root
    finally:
        server.close_all()
        thread.join()


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
