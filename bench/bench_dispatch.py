"""Dispatch lateness and throughput of JMON + SCHED with 10,000 defined jobs, beside a bare asyncio timer.

Ours: a real instance (`redctl start_trace`: devdb, SCHED, JMON) with 10,000 NOOP jobs on a 10-second interval
(spread over the interval by the schedule, ~1,000 due per second). Lateness is JMON's dispatch lateness (submit time
minus due time) over the measured window, from `redctl show`; runs/s is SCHED's finished runs over the window.
Anchor: 10,000 callbacks on a bare asyncio loop with call_at, spread the same way, lateness = fired minus due.

    .venv/bin/python bench/bench_dispatch.py [--jobs 10000] [--interval 10] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.core.db.sqltext import insert_statement  # noqa: E402
from redpss.core.paths import InstancePaths, create_instance_tree  # noqa: E402
from redpss.core.secret import instance_secret  # noqa: E402
from redpss.core.wire import BlockingClient  # noqa: E402
from redpss.jmon.stats import percentile  # noqa: E402
from tests.support.instance_runner import RunningInstance, instance_config  # noqa: E402


async def bare_timer(jobs: int, interval: float, seconds: float) -> list[float]:
    """Lateness (ms) of `jobs` callbacks each firing every `interval` s on a bare asyncio loop."""
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    end = loop.time() + seconds
    start = loop.time() + 0.5

    def fire(due: float) -> None:
        now = loop.time()
        lateness.append((now - due) * 1000)
        if due + interval < end:
            loop.call_at(due + interval, fire, due + interval)

    for index in range(jobs):
        due = start + interval * index / jobs
        loop.call_at(due, fire, due)
    await asyncio.sleep(seconds + 1)
    return lateness


def jmon_stats(inst: RunningInstance, reset: bool = False) -> dict[str, Any]:
    """JMON's dispatch lateness and SCHED's run counter, straight from JMON's control socket."""
    with BlockingClient(inst.paths.tmp / "jmon.sock", instance_secret(inst.paths), "bench") as client:
        return client.request("stats", reset=reset)


def ours(jobs: int, interval: float, seconds: float, workdir: Path) -> dict[str, float]:
    paths = InstancePaths.for_instance("BENCH1", workdir / "redsys")
    create_instance_tree(paths)
    paths.config_file.write_text(
        instance_config(
            {
                "redctl": {
                    "jmon_poll_interval": "5",
                    "jmon_stats_interval": "60",
                    "sched_default_pool_size": "4",
                    "sched_loader_pool_size": "1",
                    "sched_action_pool_size": "1",
                    "log_level": "WARN",
                }
            }
        )
    )
    paths.config_file.chmod(0o600)
    os.environ["REDHOME"] = str(paths.redhome)
    inst = RunningInstance(paths, workdir)
    try:
        inst.start()
        inst.redctl("db_register", "BENCH")
        rows = [
            {
                "JOB_ID": i,
                "JOB_NAME": f"NOOP_{i}",
                "JOB_TYPE": "NOOP",
                "COMMAND": "-",
                "INTERVAL_SECONDS": interval,
                "ACTIVE": True,
            }
            for i in range(1, jobs + 1)
        ]
        for start in range(0, jobs, 1000):
            inst.db().execute(insert_statement("BENCH.ADM_JOBS", rows[start : start + 1000]))
        inst.redctl("reload")
        time.sleep(interval)  # warm-up: every job has been due once
        before = jmon_stats(inst, reset=True)
        time.sleep(seconds)  # the measured window
        after = jmon_stats(inst)
        finished = after["runs_finished"] - before["runs_finished"]
        lateness = after["lateness"]
        stopping = time.monotonic()
        code = inst.stop()  # under the full load, as an operator's stop would come
        return {
            "p50": lateness["p50_ms"],
            "p99": lateness["p99_ms"],
            "max": lateness["max_ms"],
            "runs_per_s": finished / seconds,
            "count": lateness["count"],
            "stop_s": time.monotonic() - stopping,
            "stop_code": code,
        }
    finally:
        inst.close()  # whatever a failed or slow stop left running ends here, not in the next benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    anchor = asyncio.run(bare_timer(args.jobs, args.interval, args.seconds))
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        result = ours(args.jobs, args.interval, args.seconds, Path(tmp))
    print(f"{args.jobs} jobs every {args.interval:g} s, measured {args.seconds:g} s (2 cores)")
    print(f"{'':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'runs/s':>8}")
    print(
        f"{'bare asyncio timer (anchor)':28} {statistics.median(anchor):8.2f} {percentile(sorted(anchor), 0.99):8.2f} "
        f"{max(anchor):8.2f} {len(anchor) / args.seconds:8.0f}"
    )
    print(
        f"{'JMON dispatch + SCHED pools':28} {result['p50']:8.2f} {result['p99']:8.2f} {result['max']:8.2f} "
        f"{result['runs_per_s']:8.0f}"
    )
    print(f"stopping the instance under this load took {result['stop_s']:.1f} s (exit code {result['stop_code']:.0f})")
    print("goal: p99 lateness < 20 ms, >= 500 no-op runs/s")


if __name__ == "__main__":
    main()
