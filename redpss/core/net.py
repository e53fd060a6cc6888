"""Network facts RED-PSS asks in several places: a free loopback port, whether a TCP port answers, which ports
listen on this machine, who holds a port a daemon could not bind, and the first address of an Exasol DSN.

The owner lookup reads /proc (the listening socket's inode in /proc/net/tcp{,6}, then the /proc/<pid>/fd link
that points at it), so it names processes of the same user (every RED-PSS daemon runs as redsys) and says
"unknown" for others rather than guessing.
"""

from __future__ import annotations

import errno
import re
import socket
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
# The first node of an Exasol DSN: host (of a range exa1..3, the first), optional /FINGERPRINT, optional :port.
_FIRST_NODE = re.compile(r"(?P<host>[^/:,\s]+?)(?:\.\.\d+)?(?:/[A-Za-z0-9]+)?(?::(?P<port>\d{1,5}))?")


def first_address(dsn: str, default_port: int | None = None) -> tuple[str, int] | None:
    """(host, port) of the first node of a DSN such as 'exa1..3/FINGERPRINT:8563,exa9:8563'; without a port in
    the DSN, `default_port` (None: the address is not known). Here rather than beside the database settings, so the
    services registry and the command-line tools find an address without loading the database layer."""
    match = _FIRST_NODE.fullmatch(dsn.split(",", maxsplit=1)[0].strip())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] else default_port
    return None if port is None else (match["host"], port)


def notice_dead_peer(sock: socket.socket, within: float) -> None:
    """Make a TCP connection fail within about `within` seconds once its peer stops answering (power lost, cable
    pulled, a firewall dropping it), even while nothing is sent: keepalive probes after `within`/3 idle, then every
    `within`/9, and TCP_USER_TIMEOUT ends it once data or probes go unanswered for `within`. Without it, a server
    waiting on an idle peer notices only when TCP gives up on its own: never for an idle one, ~15 min otherwise.
    Unix sockets and other families are left as they are."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, round(within / 3)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, round(within / 9)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1000, round(within * 1000)))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for the demo, tests and free-standing devdb)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` different ports nobody listens on right now: all are held open while they are chosen, so the
    kernel cannot hand out the same one twice (calling free_port() repeatedly can, and a config then has a clash)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            held.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def free_port_range(count: int, host: str = "127.0.0.1", attempts: int = 50) -> int:
    """The first of `count` consecutive ports nobody listens on right now (CFISRV's passive range in tests and
    benchmarks); OSError when `attempts` tries found none."""
    for _ in range(attempts):
        start = free_port(host)
        if start + count > 65536:
            continue
        taken: list[socket.socket] = []
        try:
            for port in range(start, start + count):
                sock = socket.socket()
                taken.append(sock)
                sock.bind((host, port))
            return start
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise OSError(f"no {count} consecutive free ports on {host}")


def free_ports_beside_range(
    count: int, range_count: int, host: str = "127.0.0.1", attempts: int = 50
) -> tuple[list[int], int]:
    """`count` free ports and the first of `range_count` consecutive free ports, none of the ports inside that range:
    CFISRV's ports and its passive range, which the config refuses to see overlap (tests, benchmarks, the demo)."""
    for _ in range(attempts):
        start = free_port_range(range_count, host)
        ports = free_ports(count, host)
        if not any(start <= port < start + range_count for port in ports):
            return ports, start
    raise OSError(f"no {count} free ports outside a range of {range_count} free ports on {host}")


def _ip_family(host: str) -> int | None:
    """AF_INET or AF_INET6 when `host` is an IP address, else None. An address is connected to directly: a name
    goes through getaddrinfo, which IDNA-encodes it and so loads the idna and stringprep codecs, a few ms of every
    `redctl status` (whose daemons listen on 127.0.0.1)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family
    return None


def tcp_reachable(host: str, port: int, timeout: float) -> tuple[bool, str]:
    """(True, "") when a TCP connect to host:port succeeds within `timeout`, else (False, why)."""
    family = _ip_family(host)
    try:
        if family is None:
            with socket.create_connection((host, port), timeout=timeout):
                return True, ""
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            return True, ""
    except OSError as exc:
        return False, exc.strerror or str(exc) or type(exc).__name__


def _listening_sockets(proc: Path = PROC) -> dict[int, set[str]]:
    """port -> inodes of the TCP sockets listening on it (IPv4 and IPv6), from /proc/net/tcp{,6}."""
    found: dict[int, set[str]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                port = int(fields[1].rpartition(":")[2], 16)
                found.setdefault(port, set()).add(fields[9])
    return found


def listening_ports(proc: Path = PROC) -> set[int]:
    """Every TCP port something listens on here (any address)."""
    return set(_listening_sockets(proc))


def port_owner(port: int, proc: Path = PROC) -> str | None:
    """'pid 123 (redpss-sched --instance DEV1)' for the process listening on TCP `port`, None when it cannot be
    seen (nothing listens, or the socket belongs to another user's process)."""
    inodes = _listening_sockets(proc).get(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        if _fd_links(entry) & targets:
            return f"pid {entry.name} ({_command_line(entry)})"
    return None


def _fd_links(process: Path) -> set[str]:
    """What the open descriptors of a process point at; empty when the process is gone or not ours."""
    links: set[str] = set()
    try:
        descriptors = list((process / "fd").iterdir())
    except OSError:
        return links
    for fd in descriptors:
        try:
            links.add(str(fd.readlink()))
        except OSError:
            continue  # closed meanwhile
    return links


def _command_line(process: Path) -> str:
    try:
        argv = (process / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    words = [
        Path(a.decode(errors="replace")).name if i == 0 else a.decode(errors="replace") for i, a in enumerate(argv)
    ]
    if len(words) > 1 and words[0].startswith("python") and words[1] == "-m":
        words = words[2:]  # python -m redpss.sched.service --instance X: the module says more than the interpreter
    text = " ".join(words)
    return text if len(text) <= 120 else text[:117] + "..."


class PortTaken(OSError):
    """A daemon's port is held by another process; the message names it when it can be seen."""

    def __init__(self, host: str, port: int, owner: str | None) -> None:
        holder = f"held by {owner}" if owner else "held by a process this user cannot see (see: ss -ltnp)"
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use, {holder}")
        self.host, self.port, self.owner = host, port, owner


def explain_bind_error(exc: OSError, host: str, port: int) -> OSError:
    """A PortTaken naming the holder when `exc` says the address is in use, else `exc` itself. Callers re-raise
    it; it stays an OSError, so their handling is unchanged and only the words get better."""
    if exc.errno != errno.EADDRINUSE or isinstance(exc, PortTaken):
        return exc
    return PortTaken(host, port, port_owner(port))
