"""JSON2CSV and PARQ2CSV beside their anchors, on the same files, in one run: MB/s of input and peak RSS.

Each conversion runs in its own process (ours with the daemons' allocator, use_memory_pool); its peak RSS
is that process's ru_maxrss (os.wait4), so imports count for everyone alike. Rows are ~400 bytes, 14 columns with
quotes, commas, line breaks, non-ASCII text and nulls (the mix of performance-facts.md).

- NDJSON -> CSV at each size of --sizes: ours, polars' streaming engine (scan_ndjson().sink_csv()), DuckDB's COPY.
- array JSON -> CSV at the first size: ours, DuckDB's COPY (format 'array'), polars (read_json: it has no streaming
  reader for arrays, shown for its memory).
- Parquet -> CSV (the rows of the first size written --parquet-copies times, --row-group rows per group: the
  generated rows repeat, so Parquet compresses them ~40x and one copy was too small a file, its time mostly
  start-up): ours, polars (scan_parquet().sink_csv()), pyarrow's streaming writer (iter_batches into CSVWriter).

Each runner's start-up (its imports, in a process of its own) is measured too and shown beside its figures; the
MB/s, RSS and CPU seconds include it (a daemon pays it once, a command line tool on every file).

    .venv/bin/python bench/bench_convert.py [--sizes 0.4,4] [--rounds 1] [--dir /tmp/bench-convert] [--skip-anchors]
                                            [--parquet-copies 5] [--row-group 200000] [--keep]

Goals (issue text): NDJSON >= polars' MB/s with peak RSS < 150 MiB, flat from 0.4 to 4 GB; array JSON >= DuckDB's
MB/s under 300 MiB; Parquet >= 0.9x polars within one row group of memory. The machine is shared: compare the
figures of one run, not across runs; the CPU seconds (user + system of the process) vary less with other load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20

RUNNERS = {
    "ours-json": (
        "from pathlib import Path\nfrom redpss.convert.convert import convert_file, use_memory_pool\n"
        "use_memory_pool('json')\nconvert_file('json', Path(SRC), Path(OUT))"
    ),
    "ours-parquet": (
        "from pathlib import Path\nfrom redpss.convert.convert import convert_file, use_memory_pool\n"
        "use_memory_pool('parquet')\nconvert_file('parquet', Path(SRC), Path(OUT))"
    ),
    "polars-ndjson": "import polars as pl; pl.scan_ndjson(SRC).sink_csv(OUT)",
    "polars-array": "import polars as pl; pl.read_json(SRC).write_csv(OUT)",
    "polars-parquet": "import polars as pl; pl.scan_parquet(SRC).sink_csv(OUT)",
    "duckdb-ndjson": (
        "import duckdb; duckdb.sql(f\"COPY (SELECT * FROM read_json('{SRC}', format='newline_delimited')) "
        "TO '{OUT}' (HEADER, DELIMITER ',')\")"
    ),
    "duckdb-array": (
        "import duckdb; duckdb.sql(f\"COPY (SELECT * FROM read_json('{SRC}', format='array')) "
        "TO '{OUT}' (HEADER, DELIMITER ',')\")"
    ),
    "pyarrow-parquet": (
        "import pyarrow.parquet as pq, pyarrow.csv as pc\n"
        "f = pq.ParquetFile(SRC)\n"
        "with pc.CSVWriter(OUT, f.schema_arrow) as w:\n"
        "    for b in f.iter_batches(batch_size=65536): w.write_batch(b)"
    ),
}

IMPORTS = {  # what each runner imports before it converts: its start-up, measured on its own
    "ours": "from redpss.convert.convert import convert_file, use_memory_pool",
    "polars": "import polars",
    "duckdb": "import duckdb",
    "pyarrow": "import pyarrow.parquet, pyarrow.csv",
}

WORDS = ["alpha", "beta, gamma", 'say "hi"', "line\nbreak", "ünïcødé €", "plain text here", "x" * 40]


def _templates(count: int) -> list[str]:
    """Row texts with an {id} hole: the variety of the data without generating every row in Python."""
    rng = random.Random(1)
    rows = []
    for i in range(count):
        record = {
            "id": 0,
            "name": rng.choice(WORDS),
            "city": rng.choice(WORDS),
            "amount": round(rng.random() * 1e4, 2),
            "qty": rng.randint(0, 1000),
            "flag": rng.random() < 0.5,
            "note": None if rng.random() < 0.3 else rng.choice(WORDS) * 2,
            "ts": f"2024-01-{1 + i % 28:02d} 12:34:56",
            "code": f"C{i:08d}",
            "score": rng.random(),
            "desc": rng.choice(WORDS) + " " + rng.choice(WORDS),
            "cat": rng.choice(["a", "b", "c"]),
            "n2": rng.randint(-(10**6), 10**6),
            "comment": "lorem ipsum dolor sit amet " * 3,
        }
        text = json.dumps(record, ensure_ascii=False)
        rows.append(text.replace('{"id": 0,', '{"id": %d,', 1))
    return rows


def make_json(path: Path, size: int, array: bool) -> int:
    """Write ~`size` bytes of records; the number of rows."""
    templates = _templates(997)
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        if array:
            out.write("[\n")
        written = 0
        while written < size:
            chunk = [templates[(rows + k) % len(templates)] % (rows + k) for k in range(20000)]
            text = (",\n" if array else "\n").join(chunk)
            if array:
                text = ("" if rows == 0 else ",\n") + text
            else:
                text += "\n"
            out.write(text)
            written += len(text.encode())
            rows += len(chunk)
        if array:
            out.write("\n]\n")
    return rows


def run(runner: str, source: Path, output: Path) -> tuple[float, float, float]:
    """(MB/s of input, peak RSS MiB, CPU seconds) of one conversion in its own process."""
    code = f"SRC = {str(source)!r}; OUT = {str(output)!r}\n" + RUNNERS[runner]
    elapsed, rss, cpu = _child(code, runner)
    output.unlink(missing_ok=True)
    return source.stat().st_size / 1e6 / elapsed, rss, cpu


def startup(runner: str) -> float:
    """CPU seconds of the runner's imports alone, in a process of its own."""
    return _child(IMPORTS[runner.split("-", maxsplit=1)[0]], runner)[2]


def _child(code: str, runner: str) -> tuple[float, float, float]:
    """(seconds, peak RSS MiB, CPU seconds) of `code` run by a Python process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXASOL_TELEMETRY_DISABLE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{runner} failed with exit code {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


Figures = dict[str, tuple[float, float, float, list[float]]]


def measure(runners: list[str], source: Path, folder: Path, rounds: int) -> Figures:
    """Median MB/s, the highest peak RSS, the median CPU seconds and the MB/s of each round of each runner over
    `rounds`, the runners taking turns."""
    results: dict[str, list[tuple[float, float, float]]] = {r: [] for r in runners}
    for _ in range(rounds):
        for runner in runners:
            results[runner].append(run(runner, source, folder / f"{runner}.csv"))
    middle = rounds // 2
    return {
        r: (
            sorted(v[0] for v in values)[middle],
            max(v[1] for v in values),
            sorted(v[2] for v in values)[middle],
            [v[0] for v in values],
        )
        for r, values in results.items()
    }


def show(title: str, figures: Figures, ours: str) -> None:
    """Each runner's figures; beside each anchor, ours against it from the medians and, because the machine's speed
    drifts from one minute to the next, also round by round (each round runs ours and the anchor back to back)."""
    print(f"\n{title}")
    base_speed, _, base_cpu, base_rounds = figures[ours]
    for runner, (speed, rss, cpu, rounds) in figures.items():
        ratio = ""
        if runner != ours:
            paired = sorted(a / b for a, b in zip(base_rounds, rounds, strict=True))
            ratio = f"  (ours: {base_speed / speed:.2f}x its MB/s, {base_cpu / cpu:.2f}x its CPU"
            if len(paired) > 1:
                ratio += f"; round by round {paired[len(paired) // 2]:.2f}x, {paired[0]:.2f}-{paired[-1]:.2f}"
            ratio += ")"
        print(
            f"  {runner:<16} {speed:8.1f} MB/s  peak RSS {rss:7.1f} MiB  CPU {cpu:6.1f} s "
            f"(start-up {startup(runner):.2f}){ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0.4,4", help="NDJSON sizes in GB, comma-separated (first: all forms)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--row-group", type=int, default=200_000, help="rows per Parquet row group")
    parser.add_argument("--parquet-copies", type=int, default=5, help="times the first size's rows are in it")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "bench-convert")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated files for the next run")
    args = parser.parse_args()
    folder: Path = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [float(s) for s in args.sizes.split(",")]
    print(f"bench_convert: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    anchors = not args.skip_anchors
    try:
        for number, size in enumerate(sizes):
            source = folder / f"rows-{size:g}GB.ndjson"
            if not source.exists():
                rows = make_json(source, int(size * 1e9), array=False)
                print(f"generated {source.name}: {rows} rows, {source.stat().st_size / 1e9:.2f} GB")
            runners = ["ours-json"] + (["polars-ndjson", "duckdb-ndjson"] if anchors else [])
            show(f"NDJSON -> CSV, {size:g} GB", measure(runners, source, folder, args.rounds), "ours-json")
            if number:
                continue
            array = folder / f"rows-{size:g}GB.array.json"
            if not array.exists():
                make_json(array, int(size * 1e9), array=True)
            runners = ["ours-json"] + (["duckdb-array", "polars-array"] if anchors else [])
            show(f"array JSON -> CSV, {size:g} GB", measure(runners, array, folder, args.rounds), "ours-json")
            parquet = folder / f"rows-{size:g}GBx{args.parquet_copies}.parquet"
            if not parquet.exists():
                _write_parquet(source, parquet, args.row_group, args.parquet_copies)
            runners = ["ours-parquet"] + (["polars-parquet", "pyarrow-parquet"] if anchors else [])
            show(
                f"Parquet -> CSV, {parquet.stat().st_size / 1e6:.0f} MB file ({size * args.parquet_copies:g} GB as "
                f"NDJSON), largest row "
                f"group {_row_group_mib(parquet):.0f} MiB in Arrow",
                measure(runners, parquet, folder, args.rounds),
                "ours-parquet",
            )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def _write_parquet(source: Path, target: Path, row_group: int, copies: int) -> None:
    """In a child process: a parent grown by reading the whole file would hand its RSS to every later child's
    ru_maxrss (fork copies it before exec)."""
    code = (
        "import pyarrow.json as j, pyarrow.parquet as q\n"
        f"t = j.read_json({str(source)!r})\n"
        f"with q.ParquetWriter({str(target)!r}, t.schema) as w:\n"
        f"    for _ in range({copies}): w.write_table(t, row_group_size={row_group})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _row_group_mib(path: Path) -> float:
    """The Arrow size of the largest row group (what reading one holds), measured in a child like the others."""
    code = (
        "import pyarrow.parquet as q\n"
        f"f = q.ParquetFile({str(path)!r})\n"
        "print(max(f.read_row_group(i).nbytes for i in range(f.num_row_groups)))"
    )
    found = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(found) / MIB


if __name__ == "__main__":
    main()
