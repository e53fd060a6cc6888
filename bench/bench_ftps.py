"""FTPS downloads from CFISRV beside vsftpd with the same TLS settings, same files, same clients, same run.

Ours: the real CFISRV daemon (`python -m redpss.cfi.service`) of a temporary instance, implicit FTPS.
Anchor: vsftpd (Debian package; scripts/setup installs it) configured alike: implicit TLS with the same certificate
and key, TLS required for login and data (PROT P), TLS only (vsftpd 3.0.3 has no finer version switch than
ssl_tlsv1; both negotiate TLS 1.3 with the same cipher, printed below), passive mode, no TLS session reuse demanded
(Python's ftplib does not resume sessions), listening on 127.0.0.1 only.
Clients, the same for both servers, one control connection per case, downloads into a discarding sink:
- ftplib: Python's FTP_TLS over implicit TLS, what devdb's IMPORT uses. It makes a full TLS handshake on every data
  connection and sends TYPE I and PASV before each RETR.
- libcurl (pycurl, libcurl 8): keeps the control connection and resumes the control connection's TLS session on
  every data connection (EPSV, SIZE, RETR per file): what a C FTPS client such as the database's does.
Both clients run in this process: their CPU time is the same whichever server they talk to, and is printed.

Cases: one file of `--big-mib` MiB (default 1 GiB, ftplib): MB/s; `--small` files of 100 KiB (default 1,000) per
client: ms per file. Beside each, the server's CPU time (CFISRV's process; vsftpd's master with the session
processes it forked and reaped), which the machine's load disturbs less than the clock. Each case runs `--rounds`
times, alternating which server goes first, and the best round counts (the machine is shared: the best round is the
one least disturbed). For small files the "quiet estimate" line adds server and client CPU per file: a download is
a chain of request and answer, so on an idle machine it takes about what both sides spend on it, while on a busy
one each of the ~10 wake-ups per file waits for a CPU. The load average is printed. CFISRV's peak RSS is shown too.
Goals (docs/cfi.md): at least 0.9x vsftpd's MB/s on the big file, under 3 ms per small file.

    .venv/bin/python bench/bench_ftps.py [--big-mib 1024] [--small 1000] [--rounds 3] [--clients ftplib,libcurl]
"""

from __future__ import annotations

import argparse
import ftplib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pycurl  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.cfi.tls import CertificateFiles, ensure_certificate  # noqa: E402
from redpss.core.config import render_config  # noqa: E402
from redpss.core.net import free_port, free_ports_beside_range  # noqa: E402
from redpss.core.paths import InstancePaths, create_instance_tree  # noqa: E402
from redpss.devdb.ftpfetch import ImplicitFtps, client_context  # noqa: E402

VSFTPD = Path("/usr/sbin/vsftpd")
USER, PASSWORD = "bench", "bench-pw"
SMALL_SIZE = 100 * 1024
READ_SIZE = 1 << 20
PASSIVE_PORTS = 20
START_TIMEOUT = 30.0


class Server:
    """A running FTPS server: where it listens, the login it wants, the process to measure."""

    def __init__(self, name: str, port: int, user: str, password: str, process: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.port = port
        self.user = user
        self.password = password
        self.process = process

    def client(self) -> ImplicitFtps:
        client = ImplicitFtps(context=client_context(), timeout=120)
        client.connect("127.0.0.1", self.port)
        client.login(self.user, self.password)
        client.prot_p()
        return client


def write_files(folder: Path, big_mib: int, small: int) -> None:
    block = os.urandom(1 << 20)  # TLS neither compresses nor cares: one random MiB repeated
    with (folder / "big.bin").open("wb") as out:
        for _ in range(big_mib):
            out.write(block)
    (folder / "small").mkdir()
    for number in range(small):
        (folder / "small" / f"f{number:05d}.bin").write_bytes(block[number % 1000 : number % 1000 + SMALL_SIZE])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode} before it listened on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} within {START_TIMEOUT:.0f} s")


@contextmanager
def cfisrv(work: Path) -> Iterator[tuple[Server, Path]]:
    redhome = work / "redsys"
    redhome.mkdir()
    paths = InstancePaths.for_instance("BENCH", redhome)
    create_instance_tree(paths)
    ensure_certificate(paths)
    (port,), pasv = free_ports_beside_range(1, PASSIVE_PORTS)
    redctl = {
        "cfi_port": str(port),
        "cfi_explicit_port": "0",
        "cfi_pasv_port_start": str(pasv),
        "cfi_pasv_port_end": str(pasv + PASSIVE_PORTS - 1),
        "cfi_user": USER,
        "cfi_password": PASSWORD,
        "log_level": "WARN",
    }
    for key in ("sched_service_port", "dbls_port", "jexec_port", "sendmail_port", "sendfile_port"):
        redctl[key] = str(free_port())
    paths.config_file.write_text(render_config({"DEFAULT": {"exa_password": "unused"}, "redctl": redctl}))
    paths.config_file.chmod(0o600)
    env = {**os.environ, **paths.environment(), "EXASOL_TELEMETRY_DISABLE": "1"}
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "redpss.cfi.service", "--instance", "BENCH"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, process, "CFISRV")
        yield Server("CFISRV", port, USER, PASSWORD, process), paths.data_input
    finally:
        process.terminate()
        process.wait(timeout=90)


VSFTPD_CONF = """\
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
anon_root={root}
no_anon_password=YES
allow_anon_ssl=YES
local_enable=NO
write_enable=NO
ssl_enable=YES
implicit_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=YES
require_ssl_reuse=NO
ssl_ciphers=HIGH
rsa_cert_file={cert}
rsa_private_key_file={key}
pasv_enable=YES
pasv_min_port={pasv_min}
pasv_max_port={pasv_max}
pasv_address=127.0.0.1
port_enable=NO
secure_chroot_dir=/var/run/vsftpd/empty
xferlog_enable=NO
seccomp_sandbox=NO
max_clients=50
"""


@contextmanager
def vsftpd(work: Path, files: CertificateFiles, root: Path) -> Iterator[Server]:
    (port,), pasv = free_ports_beside_range(1, PASSIVE_PORTS)
    conf = work / "vsftpd.conf"
    conf.write_text(
        VSFTPD_CONF.format(
            port=port, root=root, cert=files.cert, key=files.key, pasv_min=pasv, pasv_max=pasv + PASSIVE_PORTS - 1
        )
    )
    conf.chmod(0o600)  # vsftpd refuses a config others may write
    process = subprocess.Popen([str(VSFTPD), str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, "vsftpd")
        yield Server("vsftpd", port, "anonymous", "", process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def negotiated(server: Server) -> str:
    """The TLS version and cipher of the data connection the client gets from `server`."""
    client = server.client()
    try:
        with client.transfercmd("NLST") as conn:
            cipher = conn.cipher()  # type: ignore[attr-defined]
            found = f"{conn.version()} {cipher[0] if cipher else '?'}"  # type: ignore[attr-defined]
            while conn.recv(65536):
                pass
            conn.unwrap()  # type: ignore[attr-defined]
        client.voidresp()
        return found
    finally:
        client.quit()


def download(client: ftplib.FTP, path: str) -> int:
    received = 0

    def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    client.retrbinary(f"RETR {path}", sink, blocksize=READ_SIZE)
    return received


def server_cpu(pid: int) -> float:
    """CPU seconds of the server process and of its children it has reaped (vsftpd forks one per session): once
    the session's processes are gone, so that they are counted."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + 5
    while children.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.01)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


class Measured(NamedTuple):
    value: float  # MB/s or ms per file
    cpu: float  # server CPU: seconds per GiB or ms per file
    client_cpu: float = 0.0  # ms per file (small files)


def own_cpu() -> float:
    """CPU seconds of this process: the client's share."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def big_case(server: Server, size: int) -> Measured:
    """MB/s of one RETR of big.bin (the login is not timed), and the server's CPU seconds per GiB."""
    cpu = server_cpu(server.process.pid)
    client = server.client()
    try:
        started = time.perf_counter()
        received = download(client, "input/big.bin")
        elapsed = time.perf_counter() - started
    finally:
        client.quit()
    assert received == size, f"{server.name}: {received} bytes of {size}"
    return Measured(size / elapsed / 1e6, (server_cpu(server.process.pid) - cpu) / (size / (1 << 30)))


def small_case(server: Server, count: int) -> Measured:
    """ftplib: milliseconds per file for `count` RETRs of 100 KiB on one control connection, server and client CPU
    ms per file. The server's CPU is read with no session open (vsftpd's session processes count once reaped), so
    it includes the login: one of 1,000 files' worth at most."""
    cpu = server_cpu(server.process.pid)
    client = server.client()
    try:
        mine = own_cpu()
        started = time.perf_counter()
        for number in range(count):
            assert download(client, f"input/small/f{number:05d}.bin") == SMALL_SIZE
        elapsed = time.perf_counter() - started
        client_cpu = own_cpu() - mine
    finally:
        client.quit()
    server_ms = (server_cpu(server.process.pid) - cpu) / count * 1000
    return Measured(elapsed / count * 1000, server_ms, client_cpu / count * 1000)


def curl_client(server: Server, sink: Callable[[bytes], object]) -> pycurl.Curl:
    """A libcurl handle for implicit FTPS with PROT P, certificate not verified (as ftps:// in the database)."""
    handle = pycurl.Curl()
    handle.setopt(pycurl.USERPWD, f"{server.user}:{server.password}")
    handle.setopt(pycurl.USE_SSL, pycurl.USESSL_ALL)
    handle.setopt(pycurl.SSL_VERIFYPEER, 0)
    handle.setopt(pycurl.SSL_VERIFYHOST, 0)
    handle.setopt(pycurl.WRITEFUNCTION, sink)
    return handle


def small_case_curl(server: Server, count: int) -> Measured:
    """libcurl: as small_case, one handle, so one control connection and resumed TLS sessions on data connections."""
    received = 0

    def sink(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    cpu = server_cpu(server.process.pid)
    handle = curl_client(server, sink)
    base = f"ftps://127.0.0.1:{server.port}/input/small"
    try:
        handle.setopt(pycurl.URL, f"{base}/f00000.bin")
        handle.perform()  # the login (and one file) are not timed, but in the server's CPU
        received = 0
        mine = own_cpu()
        started = time.perf_counter()
        for number in range(count):
            handle.setopt(pycurl.URL, f"{base}/f{number:05d}.bin")
            handle.perform()
        elapsed = time.perf_counter() - started
        client_cpu = own_cpu() - mine
    finally:
        handle.close()  # ends the control connection, so vsftpd's session process is reaped before the reading
    assert received == count * SMALL_SIZE, f"{server.name}: {received} bytes of {count * SMALL_SIZE}"
    server_ms = (server_cpu(server.process.pid) - cpu) / (count + 1) * 1000
    return Measured(elapsed / count * 1000, server_ms, client_cpu / count * 1000)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def best(
    servers: list[Server],
    case: Callable[[Server], Measured],
    rounds: int,
    higher_is_better: bool,
) -> dict[str, Measured]:
    results: dict[str, list[Measured]] = {s.name: [] for s in servers}
    for number in range(rounds):
        order = servers if number % 2 == 0 else list(reversed(servers))
        for server in order:
            results[server.name].append(case(server))
    pick = max if higher_is_better else min
    return {name: pick(values, key=lambda m: m.value) for name, values in results.items()}


CLIENTS: dict[str, Callable[[Server, int], Measured]] = {"ftplib": small_case, "libcurl": small_case_curl}


def small_files(client: str, count: int, server: Server) -> Measured:
    return CLIENTS[client](server, count)


def print_small(client: str, count: int, ours: Measured, theirs: Measured) -> None:
    per_file = ours.value
    print(
        f"{f'{count} x 100 KiB, {client} (ms/file)':<36}{per_file:>10.2f}{theirs.value:>10.2f}"
        f"{theirs.value / per_file:>8.2f}x  < 3 ms {'met' if per_file < 3 else 'NOT met'}"
    )
    print(f"{'  server CPU ms per file':<36}{ours.cpu:>10.2f}{theirs.cpu:>10.2f}")
    print(f"{'  client CPU ms per file':<36}{ours.client_cpu:>10.2f}{theirs.client_cpu:>10.2f}")
    quiet = ours.cpu + ours.client_cpu
    print(
        f"{'  quiet estimate: CPU sum (ms)':<36}{quiet:>10.2f}{theirs.cpu + theirs.client_cpu:>10.2f}"
        f"{'':>9}  < 3 ms {'met' if quiet < 3 else 'NOT met'}"
    )


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file in MiB (default 1024; 0 skips)")
    parser.add_argument("--small", type=int, default=1000, help="number of 100 KiB files (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case, the best counts (default 3)")
    parser.add_argument("--clients", default="ftplib,libcurl", help="small-file clients (default ftplib,libcurl)")
    args = parser.parse_args(argv)
    clients = [name.strip() for name in args.clients.split(",") if name.strip()]
    if unknown := [name for name in clients if name not in CLIENTS]:
        parser.error(f"unknown client(s) {', '.join(unknown)}: choose from {', '.join(CLIENTS)}")
    if not VSFTPD.exists():
        print(f"{VSFTPD} is missing: run scripts/setup with REDPSS_SETUP_SYSTEM_TOOLS=1 (Debian package vsftpd)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-ftps-"))
    work.chmod(0o755)  # vsftpd's anonymous user reads the files
    load_before = load_average()
    try:
        with cfisrv(work) as (ours, data):
            data.chmod(0o755)
            for parent in data.parents:
                if parent == work.parent:  # every folder from the work folder down: vsftpd's anonymous user reads
                    break
                parent.chmod(parent.stat().st_mode | 0o755)
            write_files(data, args.big_mib, args.small)
            files = CertificateFiles.of(InstancePaths.for_instance("BENCH", work / "redsys"))
            with vsftpd(work, files, data.parent) as anchor:  # the same tree CFISRV serves: data/
                servers = [ours, anchor]
                tls = {server.name: negotiated(server) for server in servers}
                size = args.big_mib << 20
                big = best(servers, lambda s: big_case(s, size), args.rounds, higher_is_better=True) if size else {}
                small = {
                    client: best(servers, partial(small_files, client, args.small), args.rounds, False)
                    for client in clients
                }
                rss = peak_rss_mib(ours.process.pid)
        print(
            f"FTPS RETR on loopback, implicit TLS, best of {args.rounds} rounds; 2 CPUs shared, load average "
            f"{load_before} before, {load_average()} after"
        )
        print(f"{'case':<36}{'CFISRV':>10}{'vsftpd':>10}{'ratio':>9}  goal")
        if big:
            ours_big, their_big = big["CFISRV"], big["vsftpd"]
            ratio = ours_big.value / their_big.value
            print(
                f"{f'1 x {args.big_mib} MiB, ftplib (MB/s)':<36}{ours_big.value:>10.0f}{their_big.value:>10.0f}"
                f"{ratio:>8.2f}x  >= 0.90x {'met' if ratio >= 0.9 else 'NOT met'}"
            )
            print(f"{'  server CPU s per GiB':<36}{ours_big.cpu:>10.2f}{their_big.cpu:>10.2f}")
        for client, measured in small.items():
            print_small(client, args.small, measured["CFISRV"], measured["vsftpd"])
        print(f"CFISRV peak RSS: {rss:.0f} MiB; data connection TLS: " + ", ".join(f"{k} {v}" for k, v in tls.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
