"""PSS_LOG through devdb: lines/s of `SELECT SUM(REDSYS.PSS_LOG(...)) FROM t`, beside the same lines sent straight.

Ours: devdb (its own process) runs the very PSS_LOG script db_install creates (pss_client.py plus pss_log.py) once
per row of a table of `--rows` ~200-byte texts, its buffers going to the real DBLS daemon; the time is the
statement's, so it includes DBLS's durable acknowledgement of the last buffer (cleanup() waits for it).
Anchor, same run, same DBLS: the same lines added in this process to the same client's LogBuffer (what the script
does per row, without a database), and the query alone (`SUM(LENGTH(TXT))`) to show what reading the rows costs.
The difference is what devdb's script layer adds per row (a DuckDB Python function, the ctx, the lock).

    .venv/bin/python bench/bench_udf.py [--rows 200000]
"""

from __future__ import annotations

import os

os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.daemons import bench_instance, start_pss_daemon  # noqa: E402
from redpss.core.config import Secret  # noqa: E402
from redpss.core.db import DbSession, DbSettings  # noqa: E402
from redpss.core.db.contract import ServiceConnection, install  # noqa: E402
from redpss.core.net import free_port  # noqa: E402
from redpss.devdb.testing import DevDbProcess  # noqa: E402
from redpss.sql.udf.pss_client import LogBuffer, PssClient  # noqa: E402

TEXT = "order {:08d} " + "x" * 170


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-udf-") as tmp:
        port = free_port()
        paths, secret = bench_instance(Path(tmp) / "redsys", {"dbls_port": str(port)})
        devdb = DevDbProcess(Path(tmp) / "devdb")
        devdb.start()
        dbls = start_pss_daemon("redpss.dbls.service", paths, port, secret)
        session = DbSession(
            DbSettings(dsn=devdb.dsn, user=devdb.user, password=Secret(devdb.password), encryption=False)
        )
        try:
            connection = ServiceConnection("REDSYS_DBLS", "127.0.0.1", port, paths.redenv, Secret(secret))
            install(session, ["APP1"], [connection])
            session.execute("CREATE TABLE APP1.T (TXT VARCHAR(200))")
            rows = [(TEXT.format(i),) for i in range(args.rows)]
            session.connection().import_from_iterable(rows, ("APP1", "T"))
            session.commit()

            began = time.perf_counter()
            session.fetchall("SELECT SUM(LENGTH(TXT)) FROM APP1.T")
            query = time.perf_counter() - began

            began = time.perf_counter()
            logged = int(session.fetchall("SELECT SUM(REDSYS.PSS_LOG('APP1', 'INFO', TXT)) FROM APP1.T")[0][0])
            ours = time.perf_counter() - began
            if logged != args.rows:
                raise SystemExit(f"PSS_LOG logged {logged} lines, expected {args.rows}")

            began = time.perf_counter()
            with PssClient("127.0.0.1", port, secret, client="bench") as client:
                buffer = LogBuffer(client, source="bench")
                for (text,) in rows:
                    buffer.add("APP1", "INFO", text)
                buffer.flush()
            straight = time.perf_counter() - began
        finally:
            session.close()
            dbls.terminate()
            dbls.wait(30)
            devdb.stop()
    print(f"PSS_LOG over {args.rows:,} rows of ~200 bytes (shared 2-CPU machine; compare within this run):")
    print(f"  ours   SELECT SUM(REDSYS.PSS_LOG(...)) in devdb: {args.rows / ours:>10,.0f} lines/s ({ours:.2f} s)")
    print(f"  anchor LogBuffer.add in this process, no db:   {args.rows / straight:>10,.0f} lines/s ({straight:.2f} s)")
    print(f"  anchor the query alone (SUM(LENGTH(TXT))):     {args.rows / query:>10,.0f} rows/s ({query:.2f} s)")
    print(f"  ratio ours/anchor: {straight / ours:.2f}x")


if __name__ == "__main__":
    main()
