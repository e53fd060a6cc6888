"""CFISRV as a real process: implicit and explicit FTPS with ftplib and curl, and everything it must refuse."""

from __future__ import annotations

import ftplib
import hashlib
import os
import shutil
import socket
import ssl
from pathlib import Path

import pytest

from redpss.cfi.tls import CertificateFiles
from redpss.core.exitcodes import ExitCode
from redpss.core.net import free_ports_beside_range
from redpss.devdb.ftpfetch import client_context
from tests.cfi.conftest import PASSIVE_PORTS, PASSWORD, USER, Cfi, curl, make_instance, write_config
from tests.support.daemons import DaemonProcess

ORDERS = b"1;first\n2;second\n"

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by scripts/setup")


def retr(client: ftplib.FTP, path: str) -> bytes:
    chunks: list[bytes] = []
    client.retrbinary(f"RETR {path}", chunks.append)
    return b"".join(chunks)


def test_implicit_ftps_with_ftplib_lists_and_downloads(cfi: Cfi) -> None:
    (cfi.paths.data_input / "plain.csv").write_bytes(b"a;b\n")
    client = cfi.implicit()
    try:
        assert sorted(client.nlst()) == ["archive", "error", "input", "work"]
        assert sorted(client.nlst("input")) == ["alice", "mallory", "plain.csv"]
        assert retr(client, "input/plain.csv") == b"a;b\n"
        assert retr(client, "/input/alice/orders.csv") == ORDERS  # through the link into this instance's sFTP tree
        assert isinstance(client.sock, ssl.SSLSocket)
    finally:
        client.quit()


def test_explicit_auth_tls_with_ftplib(cfi: Cfi) -> None:
    client = cfi.explicit()
    try:
        assert retr(client, "input/alice/orders.csv") == ORDERS
    finally:
        client.quit()


@needs_curl
def test_curl_over_implicit_and_explicit_ftps(cfi: Cfi) -> None:
    credentials = ("--user", f"{USER}:{PASSWORD}")
    implicit = curl(f"ftps://127.0.0.1:{cfi.implicit_port}/input/alice/orders.csv", *credentials)
    assert implicit.returncode == 0, implicit.stderr
    assert implicit.stdout == ORDERS
    explicit = curl(f"ftp://127.0.0.1:{cfi.explicit_port}/input/alice/orders.csv", "--ssl-reqd", *credentials)
    assert explicit.returncode == 0, explicit.stderr
    assert explicit.stdout == ORDERS
    # curl resumes the control connection's TLS session on the data connection, as the database's client does
    status = next(
        m["STATUS"]
        for n in range(1, 50)
        if "resumed" in (m := cfi.daemon.notify.wait_for("STATUS", nth=n, timeout=15))["STATUS"]
        and "2 file(s) sent" in m["STATUS"]
    )
    resumed, _ = status.split("; ")[-1].split(" data connection")[0].split(" of ")
    assert int(resumed) >= 2, status


@needs_curl
def test_curl_without_tls_is_refused(cfi: Cfi) -> None:
    plain = curl(f"ftp://127.0.0.1:{cfi.explicit_port}/input/alice/orders.csv", "--user", f"{USER}:{PASSWORD}")
    assert plain.returncode != 0
    assert plain.stdout == b""


def test_plain_text_login_is_refused_on_the_explicit_port(cfi: Cfi) -> None:
    client = ftplib.FTP(timeout=15)  # noqa: S321 - plain FTP is what must be refused
    client.connect("127.0.0.1", cfi.explicit_port)
    try:
        with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required on the control channel"):
            client.login(USER, PASSWORD)
    finally:
        client.close()


def test_plain_ftp_gets_no_greeting_on_the_implicit_port(cfi: Cfi) -> None:
    with socket.create_connection(("127.0.0.1", cfi.implicit_port), timeout=10) as sock:
        sock.sendall(b"USER cfi_loader\r\n")
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert answer == b""  # no FTP reply: the bytes were taken as a broken TLS handshake and the connection dropped


def test_data_channel_without_tls_is_refused(cfi: Cfi) -> None:
    client = cfi.implicit()
    try:
        client.prot_c()
        with pytest.raises(ftplib.error_perm, match="550 SSL/TLS required on the data channel"):
            retr(client, "input/alice/orders.csv")
    finally:
        client.quit()


@pytest.mark.parametrize(
    ("user", "password"),
    [("anonymous", "guest@example.com"), ("anonymous", ""), (USER, "wrong"), ("root", PASSWORD)],
)
def test_anonymous_wrong_password_and_unknown_users_are_refused(cfi: Cfi, user: str, password: str) -> None:
    with pytest.raises(ftplib.error_perm, match="530"):
        cfi.implicit(user, password)


def test_paths_outside_the_data_tree_are_refused(cfi: Cfi) -> None:
    data = cfi.paths.data
    (data / "work" / "to-secret").symlink_to(cfi.paths.etc / "instance.secret")
    (cfi.paths.etc / "instance.secret").write_text("never served\n")
    (data / "work" / "to-etc").symlink_to(cfi.paths.etc)
    upload = cfi.redftp_root / "env" / "tst1" / "alice" / "upload"
    (upload / "escape").symlink_to(cfi.paths.etc / "instance.secret")  # a link made inside an upload folder
    carol = cfi.redftp_root / "env" / "tst1" / "carol" / "upload"  # another user of this instance
    carol.mkdir(parents=True)
    (carol / "private.csv").write_text("carol's\n")
    (cfi.paths.data_input / "carol").symlink_to(carol)
    (upload / "to-carol").symlink_to(carol.parent)  # from alice's folder into carol's
    client = cfi.implicit()
    try:
        for path in (
            "../etc/instance.secret",
            "/../../etc/instance.secret",
            "work/to-secret",
            "work/to-etc/instance.secret",
            "input/alice/escape",
            "input/mallory/secret.csv",  # a link to another instance's sFTP tree
            "input/alice/to-carol/upload/private.csv",
        ):
            with pytest.raises(ftplib.error_perm, match="550"):
                retr(client, path)
        with pytest.raises(ftplib.error_perm, match="550"):
            client.cwd("input/mallory")
        with pytest.raises(ftplib.error_perm, match="550"):
            client.nlst("work/to-etc")
        assert retr(client, "input/alice/orders.csv") == ORDERS  # the session still works
        assert retr(client, "input/carol/private.csv") == b"carol's\n"  # through carol's own link
    finally:
        client.quit()


def test_the_mail_spools_and_sendfiles_exports_are_never_served(cfi: Cfi) -> None:
    """Any database user with ACCESS on the CFI connection may IMPORT through CFISRV: the mails spooled for other
    senders (and MAIL2CMD's replies) and the tables SENDFILE exported for one partner were readable."""
    data = cfi.paths.data
    (data / "mail" / "spool").mkdir(parents=True, exist_ok=True)
    (data / "mail" / "spool" / "1.mail").write_text("Subject: payroll\n")
    export = cfi.paths.sendfile_work / "r1"
    export.mkdir(parents=True, exist_ok=True)
    (export / "salaries.csv").write_text("4\n")
    (cfi.paths.data_input / "to-mail").symlink_to(data / "mail")
    client = cfi.implicit()
    try:
        for path in ("mail/spool/1.mail", "input/to-mail/spool/1.mail", "work/sendfile/r1/salaries.csv"):
            with pytest.raises(ftplib.error_perm, match="550"):
                retr(client, path)
        for folder in ("mail", "work/sendfile"):
            with pytest.raises(ftplib.error_perm, match="550"):
                client.cwd(folder)
        assert retr(client, "input/alice/orders.csv") == ORDERS
    finally:
        client.quit()


def test_another_instance_data_tree_is_refused(cfi: Cfi) -> None:
    other = make_instance(cfi.paths.redhome.parent, "TST2")
    (other.data_input / "theirs.csv").write_text("theirs\n")
    (cfi.paths.data_input / "tst2").symlink_to(other.data_input)
    client = cfi.implicit()
    try:
        with pytest.raises(ftplib.error_perm, match="550"):
            retr(client, "input/tst2/theirs.csv")
    finally:
        client.quit()


def test_uploads_and_changes_are_refused(cfi: Cfi) -> None:
    client = cfi.implicit()
    try:
        with pytest.raises(ftplib.error_perm, match="550"):
            client.storbinary("STOR input/new.csv", _Bytes(b"x\n"))
        with pytest.raises(ftplib.error_perm, match="550"):
            client.delete("input/alice/orders.csv")
    finally:
        client.quit()
    assert not (cfi.paths.data_input / "new.csv").exists()
    assert (cfi.redftp_root / "env" / "tst1" / "alice" / "upload" / "orders.csv").exists()


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        data, self.data = self.data, b""
        return data


@pytest.mark.parametrize("missing", ["cert", "key"])
def test_a_missing_certificate_or_key_exits_3_naming_the_file(tmp_path: Path, missing: str) -> None:
    paths = make_instance(tmp_path)
    (implicit, explicit), pasv = free_ports_beside_range(2, PASSIVE_PORTS)
    write_config(paths, implicit, explicit, pasv)
    files = CertificateFiles.of(paths)
    other = files.key if missing == "cert" else files.cert
    other.write_text("present\n")
    daemon = DaemonProcess("redpss.cfi.service", paths, tmp_path / "cfi", env=paths.environment())
    try:
        assert daemon.process.wait(timeout=30) == ExitCode.CONFIG
        named = files.cert if missing == "cert" else files.key
        assert f"{named} is missing" in daemon.log
    finally:
        daemon.close()


def test_an_empty_password_exits_3_naming_the_key(tmp_path: Path) -> None:
    paths = make_instance(tmp_path)
    (implicit, explicit), pasv = free_ports_beside_range(2, PASSIVE_PORTS)
    write_config(paths, implicit, explicit, pasv, password="")
    daemon = DaemonProcess("redpss.cfi.service", paths, tmp_path / "cfi", env=paths.environment())
    try:
        assert daemon.process.wait(timeout=30) == ExitCode.CONFIG
        assert "[redctl] cfi_password is empty" in daemon.log
    finally:
        daemon.close()


def test_explicit_port_0_switches_the_explicit_listener_off(tmp_path: Path) -> None:
    from redpss.cfi.tls import ensure_certificate  # noqa: PLC0415

    paths = make_instance(tmp_path)
    (implicit,), pasv = free_ports_beside_range(1, PASSIVE_PORTS)
    write_config(paths, implicit, 0, pasv)
    ensure_certificate(paths)
    daemon = DaemonProcess("redpss.cfi.service", paths, tmp_path / "cfi", env=paths.environment())
    try:
        daemon.wait_ready(timeout=30)
        assert f"over FTPS: 127.0.0.1:{implicit}; passive" in daemon.log
    finally:
        daemon.stop()
        daemon.close()


def test_sigterm_stops_cleanly(cfi: Cfi) -> None:
    client = cfi.implicit()
    client.close()
    assert cfi.daemon.stop() == ExitCode.OK
    assert "cfi stopped cleanly" in cfi.daemon.log


def test_client_context_does_not_verify(cfi: Cfi) -> None:
    assert client_context().verify_mode == ssl.CERT_NONE


def test_a_large_file_arrives_intact_through_a_slow_reader(cfi: Cfi) -> None:
    """Chunks larger than the socket buffer: writes that would block are retried where OpenSSL stopped."""
    data = os.urandom(1 << 20) * 24 + os.urandom(12345)
    (cfi.paths.data_input / "large.bin").write_bytes(data)
    client = cfi.implicit()
    digest = hashlib.sha256()
    try:
        client.retrbinary("RETR input/large.bin", digest.update, blocksize=4096)  # small reads: the server waits
    finally:
        client.quit()
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
