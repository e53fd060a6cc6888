"""SENDFILE: export rows/s to CSV and to Parquet beside pyexasol's own export_to_file into a file, same run.

Ours: SENDFILE's export code (redpss.sendfile.export: the query's CSV streamed through pyexasol's HTTP transport
into a file in 1 MiB writes; Parquet typed from the column metadata, a row group per 16 MiB block, zstd),
exactly as the daemon's worker runs it, on a table of `--rows` rows in a devdb process. Delivery (mail or sFTP) is
not part of the figure: it depends on the partner, not on SENDFILE.
Anchor: pyexasol's export_to_file of the same table into a file (the driver's own export), on the same
connection. Goal: CSV at least 0.9x of the anchor. The rounds alternate anchor, CSV and Parquet; medians shown.

    .venv/bin/python bench/bench_sendfile.py [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.devdb.testing import DevDbProcess  # noqa: E402
from redpss.sendfile.export import export_csv, export_parquet  # noqa: E402
from tests.sendfile.conftest import DIGITS, view_sql  # noqa: E402

QUERY = "SELECT * FROM BENCH.ORDERS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sendfile-"))
    devdb = DevDbProcess(workdir / "devdb").start()
    try:
        connection = devdb.connect()
        for sql in (
            "CREATE SCHEMA BENCH",
            DIGITS.format(schema="BENCH"),
            "INSERT INTO BENCH.DIGITS VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
            view_sql("BENCH", "V_ORDERS", args.rows),
            "CREATE TABLE BENCH.ORDERS AS SELECT * FROM BENCH.V_ORDERS",
        ):
            connection.execute(sql)
        figures: dict[str, list[float]] = {"anchor": [], "csv": [], "parquet": []}
        sizes: dict[str, int] = {}
        for round_ in range(args.rounds):
            for name, rates in figures.items():
                target = workdir / f"{name}-{round_}.out"
                began = time.perf_counter()
                if name == "anchor":
                    connection.export_to_file(str(target), QUERY, export_params={"with_column_names": True})
                elif name == "csv":
                    export_csv(connection, QUERY, target, limit=None, column_names=True)
                else:
                    export_parquet(connection, QUERY, target, limit=None)
                rates.append(args.rows / (time.perf_counter() - began))
                sizes[name] = target.stat().st_size
                target.unlink()
        connection.close()
    finally:
        devdb.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    anchor = statistics.median(figures["anchor"])
    print(
        f"SENDFILE export of {args.rows} rows (7 columns), devdb over pyexasol's HTTP transport, median of "
        f"{args.rounds} rounds"
    )
    print(f"  anchor  pyexasol export_to_file  {anchor:>12,.0f} rows/s  {sizes['anchor'] / 1e6:8.1f} MB")
    for name, label in (("csv", "SENDFILE CSV"), ("parquet", "SENDFILE Parquet (zstd)")):
        ours = statistics.median(figures[name])
        print(f"  ours    {label:<24} {ours:>12,.0f} rows/s  {sizes[name] / 1e6:8.1f} MB  {ours / anchor:5.2f}x")
    print("  goal: CSV at least 0.90x of the anchor")


if __name__ == "__main__":
    main()
