"""SENDFILE delivering by sFTP to a real sshd on loopback (the sFTP users' test site: tests/redftp/sftpsite.py).

A view of 1,000,000 rows goes out as CSV and as Parquet; what lands in the partner's folder is compared with what the
database itself writes for the view (pyexasol's export_to_file) and with the view's own figures. A host key missing
from the instance's known_hosts, or a different one there, is refused before the key is offered.
"""

from __future__ import annotations

import contextlib
import decimal
import io
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from redpss.core.wire import WireError
from redpss.sendfile.targets import known_hosts_file
from tests.redftp.sftpsite import Key, Site, ed25519_key, module_site
from tests.sendfile.conftest import Sender, write_private
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.root]

SenderFor = Callable[..., Sender]
ROWS = 1_000_000
UPLOAD = "/app/redftp/env/tst1/alice/upload"


@pytest.fixture(scope="module", autouse=True)
def arrow_started() -> None:
    """pyarrow's CSV reader opens a pipe of its own on first use, kept for the process: not a leak of the test."""
    pacsv.read_csv(io.BytesIO(b"A\n1\n"))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with module_site(tmp_path_factory, "sendfile-sftp") as running:
        yield running


@dataclass
class ClientKey:
    key: Key
    pem: str  # the private key in OpenSSH format, as an operator stores it in etc/ssh/


@pytest.fixture(scope="module")
def alice(site: Site) -> ClientKey:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key = Key(paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), f"{public.decode()} sendfile@tst1\n")
    done = site.useradd("alice", key)
    assert done.returncode == 0, done.stderr
    return ClientKey(key, pem)


def configure(sender: Sender, site: Site, key: ClientKey, host_key: str | None) -> None:
    """Target `partner` = alice's jail; the known_hosts file pins `host_key` (None: the file has no entry)."""
    write_private(sender.paths.etc / "ssh" / "partner_ed25519", key.pem)
    write_private(
        sender.paths.etc / "sendfile.conf",
        f"[target partner]\nhost = 127.0.0.1\nport = {site.port}\nuser = redftp_tst1_alice\n"
        f"key = etc/ssh/partner_ed25519\nfolder = /upload\n",
    )
    lines = [f"[127.0.0.1]:{site.port} ssh-ed25519 {host_key}\n"] if host_key else []
    known_hosts_file(sender.paths).write_text("".join(lines) or "# no hosts\n")


def landed(site: Site) -> list[str]:
    return sorted(p.name for p in site.root.path(UPLOAD).iterdir())


def test_a_million_rows_arrive_as_csv_and_parquet_equal_to_the_view(
    sender_for: SenderFor, site: Site, alice: ClientKey, tmp_path: Path
) -> None:
    sender = sender_for()
    sender.start("devdb", "sendfile")
    sender.make_view("APP1", "V_BIG", ROWS)
    configure(sender, site, alice, site.host_key)

    reply = sender.send(source="APP1.V_BIG", format="CSV", sftp="partner", file_name="big.csv", wait=True)
    assert reply["rows"] == ROWS, reply
    assert reply["delivered"] == "127.0.0.1:/upload/big.csv"
    delivered = site.root.path(f"{UPLOAD}/big.csv")
    reference = tmp_path / "reference.csv"
    with reference.open("wb") as out:  # what the database writes for the view, through pyexasol alone
        sender.inst.db().connection().export_to_file(out, ("APP1", "V_BIG"), export_params={"with_column_names": True})
    assert delivered.stat().st_size == reference.stat().st_size == reply["bytes"]
    assert _same_bytes(delivered, reference)

    reply = sender.send(source="APP1.V_BIG", format="PARQUET", sftp="partner", file_name="big.parquet", wait=True)
    assert reply["rows"] == ROWS, reply
    assert landed(site) == ["big.csv", "big.parquet"]  # no temporary name left behind
    parquet = pq.ParquetFile(site.root.path(f"{UPLOAD}/big.parquet"))
    assert parquet.metadata.num_rows == ROWS
    assert parquet.metadata.num_row_groups > 1  # written by row group, never the whole table at once
    schema = parquet.schema_arrow
    assert [(f.name, f.type) for f in schema] == [
        ("ID", pa.int64()),
        ("NAME", pa.string()),
        ("AMOUNT", pa.decimal128(12, 2)),
        ("DAY", pa.date32()),
        ("STAMP", pa.timestamp("us")),
        ("RATIO", pa.float64()),
        ("EVEN", pa.bool_()),
    ]
    table = parquet.read().sort_by("ID")
    expected = pacsv.read_csv(
        reference,
        convert_options=pacsv.ConvertOptions(  # NULL is the empty field; "NA", "null" are text
            column_types=schema, true_values=["1"], false_values=["0"], null_values=[""], strings_can_be_null=True
        ),
    ).sort_by("ID")
    assert table.equals(expected)
    figures = sender.rows(
        "SELECT COUNT(*) AS N, SUM(ID) AS IDS, SUM(AMOUNT) AS AMOUNTS, COUNT(NAME) AS NAME_COUNT, "
        'COUNT("DAY") AS DAYS, '
        "SUM(CASE WHEN EVEN THEN 1 ELSE 0 END) AS EVENS FROM APP1.V_BIG"
    )[0]
    assert int(figures["N"]) == table.num_rows
    assert int(figures["IDS"]) == pa.compute.sum(table["ID"]).as_py()
    assert decimal.Decimal(str(figures["AMOUNTS"])) == pa.compute.sum(table["AMOUNT"]).as_py()
    assert int(figures["NAME_COUNT"]) == table.num_rows - table["NAME"].null_count
    assert int(figures["DAYS"]) == table.num_rows - table["DAY"].null_count
    assert int(figures["EVENS"]) == pa.compute.sum(table["EVEN"].cast(pa.int64())).as_py()
    assert not any((sender.paths.data_work / "sendfile").rglob("*.*"))


def _same_bytes(left: Path, right: Path) -> bool:
    with left.open("rb") as a, right.open("rb") as b:
        while True:
            one, two = a.read(1 << 20), b.read(1 << 20)
            if one != two:
                return False
            if not one:
                return True


@pytest.mark.parametrize("known", ["missing", "changed"])
def test_an_unknown_or_changed_host_key_is_refused(
    sender_for: SenderFor, site: Site, alice: ClientKey, known: str
) -> None:
    sender = sender_for()
    sender.start("devdb", "sendfile")
    sender.make_view("APP1", "V_SMALL", 10)
    other = ed25519_key("impostor").public_line.split()[1]
    configure(sender, site, alice, None if known == "missing" else other)
    before = landed(site)
    expected = r"is unknown \(not in" if known == "missing" else "CHANGED"
    with pytest.raises(WireError, match=expected):
        sender.send(source="APP1.V_SMALL", sftp="partner", file_name=f"refused-{known}.csv", wait=True)
    assert landed(site) == before
    assert f"sftp target partner) failed: the host key of 127.0.0.1:{site.port}" in sender.log


class StallingProxy:
    """A TCP proxy to the sFTP site that stops passing the client's bytes on once `after` bytes went through: the
    server then looks alive (its connection stays open, it answers nothing more), as one with a hung disk does."""

    def __init__(self, port: int, after: int) -> None:
        self.target = port
        self.after = after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.target))
                self.sockets += [client, server]
                for pair in ((client, server, True), (server, client, False)):
                    self.threads.append(threading.Thread(target=self._pump, args=pair, daemon=True))
                    self.threads[-1].start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        passed = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
                passed += len(data)
                if upstream and passed > self.after:
                    self.stalled.set()
                    return  # reads nothing more from the client, and passes nothing on

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread waiting in accept or recv
            sock.close()
        for thread in self.threads:
            thread.join(timeout=10)


def test_an_upload_to_a_server_that_stalls_gives_up_after_the_target_s_timeout_and_tries_again(
    sender_for: SenderFor, site: Site, alice: ClientKey
) -> None:
    """Before, the channel had no timeout of its own: the upload waited for good, and every later request of
    SENDFILE (one at a time) with it. The stalled try cannot remove its partial file (its connection is dead); the
    request's next try, here by a restarted SENDFILE, writes the same temporary name, so nothing is left behind."""
    sender = sender_for()
    sender.start("devdb", "sendfile")
    sender.make_view("APP1", "V_STALL", 50_000)
    proxy = StallingProxy(site.port, after=256 * 1024)  # the handshake and login are a few KiB; the upload is more
    try:
        write_private(sender.paths.etc / "ssh" / "partner_ed25519", alice.pem)
        write_private(
            sender.paths.etc / "sendfile.conf",
            f"[target partner]\nhost = 127.0.0.1\nport = {proxy.port}\nuser = redftp_tst1_alice\n"
            "key = etc/ssh/partner_ed25519\nfolder = /upload\ntimeout = 2\n",
        )
        known_hosts_file(sender.paths).write_text(f"[127.0.0.1]:{proxy.port} ssh-ed25519 {site.host_key}\n")
        sender.send(source="APP1.V_STALL", sftp="partner", file_name="stalled.csv")
        wait_for(proxy.stalled.is_set, 60, what="the upload to reach the stall")
        wait_for(
            lambda: re.search(r"not sent \(try 1\), tried again later: .*made no progress for 2 s", sender.log),
            60,
            what="the upload given up, to be tried again",
        )
        assert "stalled.csv" not in landed(site)
        assert [name for name in landed(site) if name.endswith(".part")]  # the stalled try's, left there
        stopped = sender.procs["sendfile"]
        stopped.stop()
        stopped.close()
        write_private(  # the partner is healthy again, reached directly
            sender.paths.etc / "sendfile.conf",
            f"[target partner]\nhost = 127.0.0.1\nport = {site.port}\nuser = redftp_tst1_alice\n"
            "key = etc/ssh/partner_ed25519\nfolder = /upload\n",
        )
        known_hosts_file(sender.paths).write_text(f"[127.0.0.1]:{site.port} ssh-ed25519 {site.host_key}\n")
        sender.start("sendfile")  # the request is still spooled: it runs again at the start
        wait_for(lambda: "stalled.csv" in landed(site), 60, what="the request delivered by its next try")
        assert not [name for name in landed(site) if name.endswith(".part")]  # the stalled try's was replaced
    finally:
        proxy.close()


def test_a_partner_whose_sshd_answers_no_banner_is_tried_again_not_given_up(sender_for: SenderFor) -> None:
    """An sshd throttling new connections (MaxStartups) closes them before its banner: the request failed for good
    at once, although the documents promise a retry while a partner is out of reach."""
    sender = sender_for()
    sender.start("devdb", "sendfile")
    sender.make_view("APP1", "V_THROTTLED", 10)
    with socket.create_server(("127.0.0.1", 0)) as throttling:
        port = throttling.getsockname()[1]

        def refuse_all() -> None:
            with contextlib.suppress(OSError):
                while True:
                    peer, _ = throttling.accept()
                    with peer:
                        peer.sendall(b"not now\r\n")  # no SSH banner, then closed

        refusing = threading.Thread(target=refuse_all, daemon=True)
        refusing.start()
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        write_private(sender.paths.etc / "ssh" / "partner_ed25519", pem.decode())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        known_hosts_file(sender.paths).write_text(f"[127.0.0.1]:{port} {public.decode()}\n")  # never reached
        write_private(
            sender.paths.etc / "sendfile.conf",
            f"[target partner]\nhost = 127.0.0.1\nport = {port}\nuser = u\nkey = etc/ssh/partner_ed25519\n"
            "folder = /upload\n",
        )
        sender.send(source="APP1.V_THROTTLED", sftp="partner", file_name="later.csv")
        wait_for(
            lambda: re.search(r"not sent \(try 1\), tried again later: SSH to .* failed", sender.log),
            60,
            what="the failed handshake to be tried again",
        )
        assert "failed: SSH to" not in sender.log  # not given up
        throttling.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept
    refusing.join(10)
