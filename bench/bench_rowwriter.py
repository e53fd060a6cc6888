"""The durable row writer beside its anchors, measured in the same run.

- append: `RowWriter.append` (JSON lines, written and fsync'd before it returns) of 1 row per call, as SCHED logs a
  run, and of 100 rows per call, as a log server hands over a buffer; the anchor writes the same bytes to a file
  with os.write + fsync per call, which is the floor for "on disk before acknowledging". Then 1 row per call from
  8 threads at once, where one fsync of the writer covers the appends of every thread waiting (group commit); the
  anchor threads each write + fsync.
- drain: rows/s from the spool into the embedded database (devdb over the real pyexasol driver) by the writer's
  thread; the anchor runs the same multi-row INSERTs (1,000 rows each) from a plain session, no spool.

    .venv/bin/python bench/bench_rowwriter.py [--calls 2000] [--rows 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redpss.core.config import Secret  # noqa: E402
from redpss.core.db import DbSession, DbSettings  # noqa: E402
from redpss.core.db.rowwriter import BATCH_ROWS, RowWriter  # noqa: E402
from redpss.core.db.sqltext import insert_statement  # noqa: E402
from redpss.core.net import free_port  # noqa: E402
from redpss.devdb.testing import InProcessDevDb  # noqa: E402

TABLE = "BENCH.ROWS_WRITTEN"


def row(index: int) -> dict[str, object]:
    return {"ID": index, "LEVEL": "ERROR", "TEXT": f"message {index} " + "x" * 150}


def session(devdb: InProcessDevDb) -> DbSession:
    return DbSession(DbSettings(dsn=devdb.dsn, user="sys", password=Secret("exasol"), encryption=False))


def bench_append(folder: Path, devdb: InProcessDevDb, calls: int, per_call: int) -> tuple[float, float]:
    """(writer rows/s, anchor rows/s) for `calls` appends of `per_call` rows."""
    writer = RowWriter("bench", folder / f"append-{per_call}.spool", session(devdb))  # not started: appends only
    batches = [[row(c * per_call + i) for i in range(per_call)] for c in range(calls)]
    started = time.perf_counter()
    for batch in batches:
        writer.append(TABLE, batch)
    ours = calls * per_call / (time.perf_counter() - started)
    writer.stop()
    anchor_path = folder / f"anchor-{per_call}.jsonl"
    fd = os.open(anchor_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    started = time.perf_counter()
    for batch in batches:
        os.write(fd, "".join(json.dumps({"table": TABLE, "row": r}) + "\n" for r in batch).encode())
        os.fsync(fd)
    anchor = calls * per_call / (time.perf_counter() - started)
    os.close(fd)
    return ours, anchor


def bench_threads(folder: Path, devdb: InProcessDevDb, calls: int, threads: int = 8) -> tuple[float, float]:
    """(writer rows/s, anchor rows/s) for `calls` one-row appends spread over `threads` threads."""
    writer = RowWriter("bench", folder / "threads.spool", session(devdb))
    each = calls // threads

    def ours(first: int) -> None:
        for index in range(first, first + each):
            writer.append(TABLE, [row(index)])

    fd = os.open(folder / "threads-anchor.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def anchor(first: int) -> None:
        for index in range(first, first + each):
            os.write(fd, (json.dumps({"table": TABLE, "row": row(index)}) + "\n").encode())
            os.fsync(fd)

    rates = []
    for target in (ours, anchor):
        pool = [threading.Thread(target=target, args=(n * each,)) for n in range(threads)]
        started = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        rates.append(each * threads / (time.perf_counter() - started))
    os.close(fd)
    writer.stop()
    return rates[0], rates[1]


def bench_drain(folder: Path, devdb: InProcessDevDb, rows: int) -> tuple[float, float]:
    """(writer rows/s, anchor rows/s) moving `rows` rows into the database."""
    spool = folder / "drain.spool"
    loader = RowWriter("bench", spool, session(devdb))
    for start in range(0, rows, 1000):
        loader.append(TABLE, [row(i) for i in range(start, min(rows, start + 1000))])
    loader.stop()
    writer = RowWriter("bench", spool, session(devdb), flush_interval=0.01)
    started = time.perf_counter()
    writer.start()
    while writer.backlog().rows:
        time.sleep(0.01)  # polling the benchmark's own figure, not synchronising a test
    ours = rows / (time.perf_counter() - started)
    writer.stop()
    plain = session(devdb)
    started = time.perf_counter()
    for start in range(0, rows, BATCH_ROWS):
        plain.execute(insert_statement(TABLE, [row(i) for i in range(start, min(rows, start + BATCH_ROWS))]))
    anchor = rows / (time.perf_counter() - started)
    plain.close()
    return ours, anchor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, InProcessDevDb(Path(tmp) / "devdb", port=free_port()) as devdb:
        with devdb.connect() as connection:
            connection.execute("CREATE SCHEMA BENCH")
            connection.execute(
                'CREATE TABLE BENCH.ROWS_WRITTEN (ID DECIMAL(18,0), "LEVEL" VARCHAR(10), "TEXT" VARCHAR(2000))'
            )
        folder = Path(tmp)
        for per_call in (1, 100):
            ours, anchor = bench_append(folder, devdb, args.calls if per_call == 1 else args.calls // 10, per_call)
            print(
                f"append {per_call:>3} row(s)/call: writer {ours:>10,.0f} rows/s   "
                f"anchor (write+fsync) {anchor:>10,.0f} rows/s   {ours / anchor:.2f}x"
            )
        ours, anchor = bench_threads(folder, devdb, args.calls)
        print(
            f"append 1 row/call, 8 threads: writer {ours:>8,.0f} rows/s   "
            f"anchor (write+fsync) {anchor:>10,.0f} rows/s   {ours / anchor:.2f}x"
        )
        ours, anchor = bench_drain(folder, devdb, args.rows)
        print(
            f"drain to devdb:             writer {ours:>10,.0f} rows/s   "
            f"anchor (plain INSERTs) {anchor:>8,.0f} rows/s   {ours / anchor:.2f}x"
        )


if __name__ == "__main__":
    main()
