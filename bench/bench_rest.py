"""REST API: requests/s and p99 latency of /health and of the job list (1,000 jobs) over TLS, beside a bare
Starlette app under the same gunicorn settings, same run.

Ours: the real API (`python -m redpss.rest.server`) of a temporary instance with devdb, SCHED and JMON running, 1,000
jobs in APP1.ADM_JOBS, and a reader authenticating with HTTP Basic on every request (the credentials are checked
by a database login once, then cached). /health asks JMON and SCHED at most once a second per worker; the job list
is read from the database at most every 2 s per worker.
Anchor: a bare Starlette app with the same two routes answering fixed bodies (the same JSON bytes our job list
sends), served by gunicorn with exactly our settings (redpss.rest.server.gunicorn_options: worker class, workers,
TLS, keep-alive), on the same machine, in the same run. Load generator: wrk (Debian package `wrk`), keep-alive
connections, `--latency` for the percentiles.

    .venv/bin/python bench/bench_rest.py [--seconds 5] [--rounds 3] [--connections 16] [--threads 1] [--workers 2]

Goals: at least 0.9x the bare app's requests/s on /health, at least 0.5x on the job list. The machine's CPUs are
shared by the servers, wrk and whatever else runs: compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

from redpss.core.config import load_config  # noqa: E402
from redpss.core.db.sqltext import insert_statement  # noqa: E402
from redpss.core.net import free_port  # noqa: E402
from redpss.core.paths import InstancePaths  # noqa: E402
from redpss.rest.tls import CertificateFiles  # noqa: E402
from tests.rest.rest_instance import READER, rest_config, rest_instance  # noqa: E402
from tests.support.instance_runner import RunningInstance  # noqa: E402

JOBS = 1000
LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def add_jobs(running: RunningInstance, count: int) -> None:
    rows = [
        {"JOB_ID": i, "JOB_NAME": f"job {i}", "JOB_TYPE": "NOOP", "COMMAND": "-", "INTERVAL_SECONDS": 86400,
         "ACTIVE": False}
        for i in range(1, count + 1)
    ]  # fmt: skip
    db = running.db()
    for start in range(0, count, 250):
        db.execute(insert_statement("APP1.ADM_JOBS", rows[start : start + 250]))
    db.commit()


def serve_bare(home: str, body_file: str) -> None:
    """The anchor: gunicorn with our settings serving a bare Starlette app (run in a process of its own)."""
    from gunicorn.app.base import BaseApplication  # noqa: PLC0415
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.requests import Request  # noqa: PLC0415
    from starlette.responses import Response  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    from redpss.rest.server import gunicorn_options  # noqa: PLC0415

    paths = InstancePaths.for_instance("TST1", Path(home))
    config = load_config(paths.config_file)
    jobs_body = Path(body_file).read_bytes()
    health_body = b'{"status":"ok","instance":"TST1","daemons":{"jmon":true,"sched":true}}'

    async def health(request: Request) -> Response:
        return Response(health_body, media_type="application/json")

    async def jobs(request: Request) -> Response:
        return Response(jobs_body, media_type="application/json")

    app = Starlette(routes=[Route("/health", health), Route("/api/v1/jobs", jobs)])

    class Bare(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_options(paths, config, CertificateFiles.of(paths)).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Bare().run()


def wrk(url: str, seconds: int, connections: int, threads: int, auth: str | None) -> tuple[float, float]:
    """(requests/s, p99 ms) of one wrk run against `url`."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if auth:
        command[1:1] = ["-H", f"Authorization: {auth}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out:  # errors answered fast would flatter the figure: show them
        print(f"wrk saw error answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * LATENCY_UNITS[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side and endpoint (median)")
    parser.add_argument("--bare", nargs=2, metavar=("REDHOME", "BODY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        serve_bare(*args.bare)
        return 0
    if shutil.which("wrk") is None:
        print("bench_rest: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-rest-"))
    home = work / "redsys"
    home.mkdir()
    os.environ["REDHOME"] = str(home)
    try:
        with rest_instance(home, work, gu_workers=str(args.workers)) as (running, api):
            add_jobs(running, JOBS)
            auth = "Basic " + base64.b64encode(f"{READER[0]}:{READER[1]}".encode()).decode()
            listed = api.client.get("/api/v1/jobs", headers={"Authorization": auth})
            assert listed.status_code == 200 and len(listed.json()) == JOBS, listed.text[:200]
            body = work / "jobs.json"
            body.write_bytes(listed.content)
            bare = _start_bare(running.paths, home, body, args.workers)
            try:
                _report(api.base, bare, args, auth)
            finally:
                bare[1].terminate()
                bare[1].wait(timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _start_bare(paths: InstancePaths, home: Path, body: Path, workers: int) -> tuple[str, subprocess.Popen[bytes]]:
    """The anchor on a port of its own: a second instance tree sharing the certificate, the same settings."""
    from redpss.core.paths import create_instance_tree  # noqa: PLC0415
    from redpss.rest.probe import answers, probe_context  # noqa: PLC0415
    from tests.support.wait import wait_for  # noqa: PLC0415

    bare_home = home.parent / "bare"
    bare = InstancePaths.for_instance("TST1", bare_home)
    create_instance_tree(bare)
    for name in ("cert", "key"):
        shutil.copy(getattr(CertificateFiles.of(paths), name), getattr(CertificateFiles.of(bare), name))
    port = free_port()
    bare.config_file.write_text(rest_config(port, gu_workers=str(workers)))
    bare.config_file.chmod(0o600)
    process = subprocess.Popen(
        [sys.executable, __file__, "--bare", str(bare_home), str(body)],
        env={**os.environ, **bare.environment()},
        stderr=(home.parent / "bare.log").open("wb"),
    )
    context = probe_context()

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the bare app exited {process.returncode}")
        return answers(("127.0.0.1", port), context)

    try:
        wait_for(serving, 60, interval=0.2, what="the bare app answering")
    except AssertionError:
        print((home.parent / "bare.log").read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    return f"https://127.0.0.1:{port}", process


def _report(ours: str, bare: tuple[str, subprocess.Popen[bytes]], args: argparse.Namespace, auth: str) -> None:
    """Each endpoint: `rounds` runs of ours and of the bare app, alternating; medians compared."""
    print(
        f"REST API over TLS, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, {args.workers} workers each, "
        f"median of {args.rounds} alternating rounds"
    )
    header = f"{'endpoint':<22} {'ours req/s':>11} {'bare req/s':>11} {'ratio':>6} {'goal':>5}"
    print(f"{header}  {'ours p99':>9} {'bare p99':>9}")
    for path, goal, credentials in (("/health", 0.9, None), ("/api/v1/jobs (1,000)", 0.5, auth)):
        url_path = path.split(" ")[0]
        runs: dict[str, list[tuple[float, float]]] = {"ours": [], "bare": []}
        for _ in range(args.rounds):
            for side, base in (("ours", ours), ("bare", bare[0])):
                runs[side].append(wrk(base + url_path, args.seconds, args.connections, args.threads, credentials))
        our_rps, our_p99 = (statistics.median(r[i] for r in runs["ours"]) for i in (0, 1))
        bare_rps, bare_p99 = (statistics.median(r[i] for r in runs["bare"]) for i in (0, 1))
        ratio = our_rps / bare_rps
        mark = "ok" if ratio >= goal else "MISS"
        print(
            f"{path:<22} {our_rps:>11.0f} {bare_rps:>11.0f} {ratio:>5.2f}x {goal:>4}x  "
            f"{our_p99:>7.1f}ms {bare_p99:>7.1f}ms  {mark}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
