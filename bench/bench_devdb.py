"""devdb throughput: a 1,000,000-row fetch and an export_to_file through pyexasol, beside DuckDB reading the rows.

The anchor is DuckDB itself reading the same table from the same file in this run (fetchall to Python tuples, and
COPY to CSV), so the table shows what the protocol layer costs. devdb runs as its own process, as in the demo.
A third line isolates the value conversion devdb asks DuckDB for (Exasol's wire forms: DECIMAL without trailing
zeros, formatted TIMESTAMP, ...) beside the same rows read to Arrow unconverted.
Usage: .venv/bin/python bench/bench_devdb.py [--rows N]
"""

from __future__ import annotations

# The statements are fixed benchmark SQL with a row count from the command line.
# ruff: noqa: S608
import os

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from redpss.devdb.testing import DevDbProcess
from redpss.devdb.types import ExaType

TABLE = "BENCH.T"
TYPES = [ExaType("DECIMAL", 18, 0), ExaType("VARCHAR", size=40), ExaType("DECIMAL", 12, 2), ExaType("TIMESTAMP")]


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory(prefix="bench-devdb-") as folder:
        data = Path(folder) / "db"
        server = DevDbProcess(data)
        server.start()
        results: list[tuple[str, float, float]] = []
        try:
            with server.connect(compression=False) as connection:
                connection.execute("CREATE SCHEMA bench")
                connection.execute(
                    "CREATE TABLE bench.t (id DECIMAL(18,0), name VARCHAR(40), amount DECIMAL(12,2), ts TIMESTAMP)"
                )
                connection.execute(
                    f"INSERT INTO bench.t SELECT i, 'name ' || i, i / 100, TIMESTAMP '2024-01-01 00:00:00' "
                    f"+ i * INTERVAL 1 SECOND FROM range({rows}) AS r(i)"
                )
                fetched: list[object] = []
                fetch = timed(lambda: fetched.extend(connection.execute(f"SELECT * FROM {TABLE}").fetchall()))
                assert len(fetched) == rows
                out = Path(folder) / "export.csv"
                with out.open("wb") as sink:
                    export = timed(lambda: connection.export_to_file(sink, ("BENCH", "T")))
                export_bytes = out.stat().st_size
        finally:
            server.stop()
        # the anchor: DuckDB on the same file, in this process, after devdb has closed it
        con = duckdb.connect(str(data / "devdb.duckdb"), read_only=True)
        try:
            anchor_fetch = timed(lambda: con.execute(f"SELECT * FROM {TABLE}").fetchall())
            anchor_csv = Path(folder) / "anchor.csv"
            anchor_export = timed(
                lambda: con.execute(
                    f"COPY {TABLE} TO '{anchor_csv}' (HEADER false, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S.%f')"
                )
            )
            columns = ", ".join(f'"c{i}"' for i in range(len(TYPES)))
            wire = ", ".join(t.wire_expression(f'"q"."c{i}"') for i, t in enumerate(TYPES))
            converted = timed(
                lambda: con.sql(f'SELECT {wire} FROM (SELECT * FROM {TABLE}) AS "q"({columns})').to_arrow_table()
            )
            unconverted = timed(lambda: con.sql(f"SELECT * FROM {TABLE}").to_arrow_table())
        finally:
            con.close()
        results.append(("fetch all rows (pyexasol fetchall)", fetch, anchor_fetch))
        results.append(("wire values in DuckDB (vs unconverted)", converted, unconverted))
        results.append((f"export_to_file ({export_bytes / 1e6:.0f} MB CSV)", export, anchor_export))
    print(f"rows: {rows:,}")
    print(f"{'operation':<38} {'devdb rows/s':>14} {'DuckDB direct rows/s':>22} {'ratio':>7}")
    for name, devdb_seconds, anchor_seconds in results:
        print(
            f"{name:<38} {rows / devdb_seconds:>14,.0f} {rows / anchor_seconds:>22,.0f} "
            f"{anchor_seconds / devdb_seconds:>7.2f}"
        )


if __name__ == "__main__":
    main()
