"""Start-up cost of the command-line tools beside a bare argparse program, measured in the same run.

Each command runs N times as a fresh process, as an operator's shell runs it; the figure is the median wall time
(with the median CPU time beside it) and the peak resident memory (ru_maxrss from getrusage of the command's own
process, reported by GNU time). The anchor is a bare argparse program with as many subcommands as redctl, run by
the same interpreter (so both pay Python's own start-up and the venv's site). Goal: `redctl -h` and `redctl status`
at most 1.5x the anchor, and `redctl show` under 150 ms against a running instance.

Python byte-compiles our modules once, as an installed package has them compiled (pip does at install): the
commands run with a private bytecode cache (PYTHONPYCACHEPREFIX in the run's temporary folder, even when
PYTHONDONTWRITEBYTECODE is set around the bench) after one warm-up round that is not measured; --no-bytecode
measures a start that compiles every module each time instead (a source tree that cannot be written).

The instance lives in a temporary REDHOME; `redctl status` asks its daemons directly when systemd is absent (as
under `redctl start_trace`). With --running the instance runs (`redctl start_trace`, embedded database) for
`redctl show` and a status that finds every daemon answering.

    .venv/bin/python bench/bench_cli.py [--runs 15] [--running] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.core.paths import InstancePaths, create_instance_tree  # noqa: E402
from tests.support.instance_runner import RunningInstance, instance_config  # noqa: E402

BIN = Path(sys.executable).parent
TIME = "/usr/bin/time"  # GNU time (Debian package `time`): reports the peak RSS of the command it runs
BARE = """
import argparse
parser = argparse.ArgumentParser(prog="bare", description="the anchor: argparse and nothing else")
parser.add_argument("-i", "--instance")
commands = parser.add_subparsers(dest="command")
for name in range(24):
    commands.add_parser(f"command{name}", help="a subcommand").add_argument("--json", action="store_true")
parser.parse_args()
"""
GOAL_FACTOR = 1.5
SHOW_GOAL_MS = 150.0


def run_once(argv: list[str], env: dict[str, str], report: Path) -> tuple[float, float, float]:
    """(wall ms, peak RSS MiB, CPU ms) of one run of `argv`. The memory comes from GNU time (getrusage of its child):
    a child started from this process directly would carry this process's own peak in its ru_maxrss. The CPU time
    (user + system, from wait4 on GNU time, which includes the command it waited for) varies less than the wall time
    on a machine shared with other work."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [TIME, "-f", "%M", "-o", str(report), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = (time.perf_counter() - start) * 1000
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    return wall, int(report.read_text().split()[-1]) / 1024, cpu


Figures = dict[str, tuple[float, float, float]]


def measure_all(commands: list[tuple[str, list[str]]], env: dict[str, str], runs: int) -> Figures:
    """Median wall ms, peak MiB and median CPU ms per command. The commands take turns, run after run, so the
    anchor and ours see the same load on a shared machine."""
    report = Path(tempfile.mkdtemp(prefix="bench-cli-time-")) / "rss"
    walls: dict[str, list[float]] = {label: [] for label, _ in commands}
    cpus: dict[str, list[float]] = {label: [] for label, _ in commands}
    peaks: dict[str, float] = dict.fromkeys(walls, 0.0)
    for _label, argv in commands:  # warm-up: the bytecode cache, the page cache
        run_once(argv, env, report)
    for _ in range(runs):
        for label, argv in commands:
            wall, mib, cpu = run_once(argv, env, report)
            walls[label].append(wall)
            cpus[label].append(cpu)
            peaks[label] = max(peaks[label], mib)
    report.unlink(missing_ok=True)
    report.parent.rmdir()
    return {label: (statistics.median(walls[label]), peaks[label], statistics.median(cpus[label])) for label in walls}


def rows(running: bool) -> list[tuple[str, list[str], float | None]]:
    """(label, argv, goal factor against the anchor or None) for each command measured."""
    python = sys.executable
    measured: list[tuple[str, list[str], float | None]] = [
        ("bare argparse (anchor)", [python, "-c", BARE, "-h"], None),
        ("bare argparse command", [python, "-c", BARE, "command1"], None),
        ("redctl -h", [str(BIN / "redctl"), "-h"], GOAL_FACTOR),
        ("redctl status", [str(BIN / "redctl"), "status"], GOAL_FACTOR),
        ("redsysctl status-all", [str(BIN / "redsysctl"), "status-all"], None),
        ("redsysctl list", [str(BIN / "redsysctl"), "list"], None),
    ]
    if running:
        measured.append(("redctl show", [str(BIN / "redctl"), "show"], None))
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--running", action="store_true", help="start the instance to measure redctl show too")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="compile every module at each start (no bytecode cache)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        redhome = Path(tmp) / "redsys"
        paths = InstancePaths.for_instance("TST1", redhome)
        create_instance_tree(paths)
        paths.config_file.write_text(instance_config())
        paths.config_file.chmod(0o600)
        env = {**os.environ, **paths.environment()}
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        instance = RunningInstance(paths, Path(tmp)) if args.running else None
        try:
            if instance is not None:
                instance.start()
            measured = rows(args.running)
            figures = measure_all([(label, argv) for label, argv, _ in measured], env, args.runs)
            results = {label: (figures[label], goal) for label, _, goal in measured}
        finally:
            if instance is not None:
                instance.close()
    anchor_ms, _, anchor_cpu = results["bare argparse (anchor)"][0]
    print(f"{'command':<28} {'median ms':>10} {'x anchor':>9} {'cpu ms':>7} {'x anchor':>9} {'peak MiB':>9}  goal")
    for label, ((ms, mib, cpu), goal) in results.items():
        verdict = ""
        if goal is not None:
            verdict = f"<= {goal}x: {'met' if ms <= goal * anchor_ms else 'NOT met'}"
        if label == "redctl show":
            verdict = f"< {SHOW_GOAL_MS:.0f} ms: {'met' if ms < SHOW_GOAL_MS else 'NOT met'}"
        times = f"{ms:>10.1f} {ms / anchor_ms:>9.2f} {cpu:>7.1f} {cpu / anchor_cpu:>9.2f}"
        print(f"{label:<28} {times} {mib:>9.1f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
