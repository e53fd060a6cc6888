"""DBLS throughput from 4 concurrent clients, beside a bare asyncio server routing the same lines, same run.

Ours: the real DBLS daemon (`python -m redpss.dbls.service`) of a temporary instance; 4 client processes, each with
the stdlib client the UDF scripts embed (redpss/sql/udf/pss_client.py), add ~200-byte lines to its LogBuffer, which
sends buffers of `--batch` lines (as PSS_LOG does) with up to 4 awaiting their durable acknowledgement. Lines go to
4 schemas; one line in `--error-every` is an ERROR (file + spool for LOG_MESSAGES + journald queue); no database is
reachable, so those rows wait in the spool, which is DBLS's path while the database is away or slow.
Anchor: a bare asyncio Protocol server receiving the same lines as tab-separated text (`schema\\tlevel\\t...`) from
4 client processes and appending them to per-schema files, with no validation and no acknowledgement.
The time is from the start signal to the last acknowledgement (ours) or the last line written (anchor). Beside the
rates, the CPU time each side used per line (server process; all clients together) shows where the time goes.

With --pin the server (all its threads) runs on CPU 0 and the clients on CPU 1, as in production, where the clients
are Exasol's nodes and only the server runs on this machine; without it all share the CPUs, so the clients' cost
per line counts against the server they feed.

    .venv/bin/python bench/bench_dbls.py [--lines 1000000] [--batch 1000] [--error-every 10000] [--rounds 5] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.daemons import bench_instance, start_pss_daemon  # noqa: E402
from redpss.core.net import free_port  # noqa: E402
from redpss.sql.udf.pss_client import LogBuffer, PssClient  # noqa: E402

CLIENTS = 4
SCHEMAS = ("APP1", "APP2", "APP3", "APP4")
STAMP = "2026-11-30 01:02:03.456789"
SERVER_CPUS, CLIENT_CPUS = {0}, {1}  # --pin: the server (every thread) on one CPU, the clients on the other


def pin(options: dict[str, int], cpus: set[int]) -> None:
    if options["pin"]:
        os.sched_setaffinity(0, cpus)


def lines_of(client: int, count: int, error_every: int) -> list[list[str]]:
    """`count` lines of about 200 bytes each as written to the file (timestamp, level, source, text)."""
    lines = []
    for number in range(count):
        level = "ERROR" if error_every and number % error_every == error_every - 1 else "INFO"
        text = f"client {client} line {number:08d} " + "x" * 128
        lines.append([SCHEMAS[number % 4], level, STAMP, f"APP.JOB_{client}", text])
    return lines


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process `pid` (from /proc)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_start(gate: tuple[Any, Any]) -> None:
    """Say this client is ready (its lines built, connected), then wait for the common start."""
    ready, start = gate
    ready.release()
    start.wait()


def ours_client(target: tuple[int, str, Any], client: int, count: int, options: dict[str, int], gate: Any) -> None:
    port, secret, cpu = target
    pin(options, CLIENT_CPUS)
    lines = lines_of(client, count, options["error_every"])
    batch = options["batch"]
    with PssClient("127.0.0.1", port, secret, client=f"bench{client}") as connection:
        buffer = LogBuffer(connection, source=f"APP.JOB_{client}", max_lines=batch)
        wait_for_start(gate)
        began = cpu_seconds()
        for schema, level, stamp, _, text in lines:
            buffer.add(schema, level, text, stamp)
        buffer.flush()
        cpu.put((cpu_seconds() - began, time.time()))  # the time of the last acknowledgement, not of the exit


def anchor_client(target: tuple[int, Any], client: int, count: int, options: dict[str, int], gate: Any) -> None:
    port, cpu = target
    pin(options, CLIENT_CPUS)
    lines = lines_of(client, count, options["error_every"])
    batch = options["batch"]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        wait_for_start(gate)
        began = cpu_seconds()
        for first in range(0, count, batch):  # serialised when sent, as ours is (and as a UDF would)
            sock.sendall("".join("\t".join(line) + "\n" for line in lines[first : first + batch]).encode())
        cpu.put((cpu_seconds() - began, time.time()))


class _Router(asyncio.Protocol):
    """The anchor: split the stream into lines, append each line to its schema's file; nothing else."""

    def __init__(self, files: dict[bytes, int], folder: Path, finished: Any) -> None:
        self.files = files
        self.folder = folder
        self.finished = finished
        self.partial = b""

    def data_received(self, data: bytes) -> None:
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        routed: dict[bytes, list[bytes]] = {}
        for line in data[:cut].splitlines(keepends=True):
            schema = line[: line.index(b"\t")]
            routed.setdefault(schema, []).append(line)
        for schema, group in routed.items():
            fd = self.files.get(schema)
            if fd is None:
                path = self.folder / f"{schema.decode()}.log"
                fd = self.files[schema] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            os.write(fd, b"".join(group))

    def connection_lost(self, exc: Exception | None) -> None:
        self.finished()


def anchor_server(port: int, folder: str, connections: int, done: Any, options: dict[str, int]) -> None:
    pin(options, SERVER_CPUS)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        closed = asyncio.Event()
        count = [0]

        def finished() -> None:
            count[0] += 1
            if count[0] == connections:
                closed.set()

        files: dict[bytes, int] = {}
        server = await loop.create_server(lambda: _Router(files, Path(folder), finished), "127.0.0.1", port)
        done.put("listening")
        began = cpu_seconds()
        await closed.wait()
        done.put((time.time(), cpu_seconds() - began))
        server.close()
        for fd in files.values():
            os.close(fd)

    asyncio.run(serve())


def run_clients(target: Any, args: tuple[Any, ...], count: int, options: dict[str, int]) -> float:
    """Start the client processes, release them together once all are ready; the start time (epoch seconds)."""
    ready, start = mp.Semaphore(0), mp.Event()
    per_client = count // CLIENTS
    processes = [
        mp.Process(target=target, args=(*args, i, per_client, options, (ready, start))) for i in range(CLIENTS)
    ]
    for process in processes:
        process.start()
    # the clock starts once every client has built its lines and connected: building them takes seconds at a few
    # million lines, and a clock started earlier counted that time on both sides, pulling the ratio towards 1.0
    for _ in processes:
        if not ready.acquire(timeout=300):
            raise SystemExit("a client was not ready within 300 s")
    began = time.time()
    start.set()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a client failed (exit {process.exitcode})")
    return began


class Run(NamedTuple):
    seconds: float
    server_cpu: float  # seconds of CPU used by the server process during the run
    clients_cpu: float  # seconds of CPU used by all clients together


def client_reports(queue: Any) -> tuple[float, float]:
    """The CPU seconds all clients used together, and when the last of them was done (epoch seconds)."""
    reports = [queue.get(timeout=30) for _ in range(CLIENTS)]
    return sum(float(cpu) for cpu, _ in reports), max(float(done) for _, done in reports)


def ours(count: int, options: dict[str, int], workdir: Path) -> Run:
    port = free_port()
    paths, secret = bench_instance(workdir / "redsys", {"dbls_port": str(port)})
    daemon = start_pss_daemon("redpss.dbls.service", paths, port, secret, SERVER_CPUS if options["pin"] else None)
    try:
        warm_up(port, secret)
        cpu: Any = mp.Queue()
        server_began = cpu_seconds(daemon.pid)
        began = run_clients(ours_client, ((port, secret, cpu),), count, options)
        clients_cpu, acknowledged = client_reports(cpu)
        # to the last acknowledgement: the client processes' exit (freeing their lines) is no work of DBLS, and the
        # anchor's clock stops at its last line written, not at its clients' exit either
        elapsed = acknowledged - began
        server_cpu = cpu_seconds(daemon.pid) - server_began  # includes the clients' connecting, a few ms
        written = sum(len(p.read_bytes().splitlines()) for p in paths.log_db.glob("APP*/*-*.log"))
        if written != count // CLIENTS * CLIENTS:
            raise SystemExit(f"DBLS wrote {written} lines, expected {count}")
        return Run(elapsed, server_cpu, clients_cpu)
    finally:
        daemon.terminate()
        daemon.wait(30)
        shutil.rmtree(paths.home.parent.parent, ignore_errors=True)


def warm_up(port: int, secret: str) -> None:
    """One ERROR line before the clock starts, and wait until DBLS's row writer has tried the database once.

    The first ERROR row makes the row writer import pyexasol and try to connect (~0.3 s of CPU, once in a daemon's
    life); inside the measured run that one-off cost would be charged to the lines as if every run paid it.
    """
    with PssClient("127.0.0.1", port, secret, client="warm-up") as client:
        client.send_log([["WARMUP", "ERROR", STAMP, "bench", "warm-up"]])
        deadline = time.monotonic() + 30
        while not client.request("status")["rows"]["last_error"]:
            if time.monotonic() > deadline:
                raise SystemExit("DBLS's row writer did not try the database within 30 s")
            time.sleep(0.05)  # pacing: waiting for the row writer's first attempt


def anchor(count: int, options: dict[str, int], workdir: Path) -> Run:
    folder = workdir / "anchor"
    folder.mkdir()
    port = free_port()
    done: Any = mp.Queue()
    cpu: Any = mp.Queue()
    server = mp.Process(target=anchor_server, args=(port, str(folder), CLIENTS, done, options))
    server.start()
    assert done.get(timeout=30) == "listening"
    began = run_clients(anchor_client, ((port, cpu),), count, options)
    ended, server_cpu = done.get(timeout=300)
    server.join(30)
    written = sum(len(p.read_bytes().splitlines()) for p in folder.glob("*.log"))
    if written != count // CLIENTS * CLIENTS:
        raise SystemExit(f"the anchor wrote {written} lines, expected {count}")
    shutil.rmtree(folder)
    return Run(ended - began, server_cpu, client_reports(cpu)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--error-every", type=int, default=10_000, help="one ERROR line in N (0: none)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both servers, in turn; medians are shown")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on CPU 0, clients on CPU 1 (as in production, where the clients run on Exasol's nodes)",
    )
    args = parser.parse_args()
    if args.pin and (os.cpu_count() or 1) < 2:
        raise SystemExit("--pin needs 2 CPUs")
    options = {"batch": args.batch, "error_every": args.error_every, "pin": int(args.pin)}
    line_bytes = len(f"{STAMP} INFO APP.JOB_0: client 0 line 00000000 {'x' * 128}\n")
    megabytes = args.lines * line_bytes / 1e6
    placement = "server on CPU 0, clients on CPU 1" if args.pin else "server and clients share the CPUs"
    print(f"{args.lines:,} lines of ~{line_bytes} bytes, {CLIENTS} clients, buffers of {args.batch} lines; {placement}")
    bare_runs: list[Run] = []
    our_runs: list[Run] = []
    for number in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-dbls-") as temporary:
            # who goes first alternates, so a load that rises or falls during a round favours neither side
            if number % 2:
                our_runs.append(ours(args.lines, options, Path(temporary)))
                bare_runs.append(anchor(args.lines, options, Path(temporary)))
            else:
                bare_runs.append(anchor(args.lines, options, Path(temporary)))
                our_runs.append(ours(args.lines, options, Path(temporary)))
        bare, mine = bare_runs[-1], our_runs[-1]
        print(
            f"  round {number + 1}: DBLS {args.lines / mine.seconds:>10,.0f} lines/s, bare "
            f"{args.lines / bare.seconds:>10,.0f} lines/s: {bare.seconds / mine.seconds:.2f}x; server CPU per line "
            f"{mine.server_cpu * 1e6 / args.lines:.2f} us vs {bare.server_cpu * 1e6 / args.lines:.2f} us"
        )
    mine = Run(*(statistics.median(values) for values in zip(*our_runs, strict=True)))
    bare = Run(*(statistics.median(values) for values in zip(*bare_runs, strict=True)))
    per_line = 1e6 / args.lines
    for name, run in (("DBLS (acknowledged, validated)", mine), ("bare asyncio router (no acks)", bare)):
        print(
            f"  {name:31s} {args.lines / run.seconds:>10,.0f} lines/s  {megabytes / run.seconds:7.1f} MB/s   CPU per "
            f"line: server {run.server_cpu * per_line:.2f} us, clients {run.clients_cpu * per_line:.2f} us"
        )
    pairs = list(zip(bare_runs, our_runs, strict=True))
    summary = (
        ("throughput", [b.seconds / m.seconds for b, m in pairs]),
        # CPU seconds per line barely depend on how busy the machine is: the steadier comparison of the two servers
        ("server CPU per line (bare/DBLS)", [b.server_cpu / m.server_cpu for b, m in pairs if m.server_cpu]),
        (
            "CPU per line, server + clients",
            [(b.server_cpu + b.clients_cpu) / (m.server_cpu + m.clients_cpu) for b, m in pairs],
        ),
    )
    for what, ratios in summary:
        ratios.sort()
        print(
            f"  DBLS at {statistics.median(ratios):.2f}x the bare server by {what} (median of {len(ratios)} rounds, "
            f"range {ratios[0]:.2f}-{ratios[-1]:.2f}; goal: 1.0x)"
        )


if __name__ == "__main__":
    main()
