"""The README's main job: the demo runs as a new user would run it and shows what it promises."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_runs_an_instance_with_sample_jobs_and_stops_it_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "redpss.demo.run", "--seconds", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "== instance DEMO1 created in REDHOME=" in out
    assert "data/input/  (0750)" in out and "tmp/  (0700)" in out
    assert "exa_password=Secret('********')" in out
    assert "demo-only-password" not in out
    for program in ("redpss-devdb", "redpss-sched", "redpss-jmon"):
        assert f"DEMO1 {program}[" in out, program  # journald-style lines of every daemon
    assert "applied REDSYS 001_redsys_core.sql" in out
    assert "registered schema DEMO" in out
    assert "instance DEMO1: RUNNING" in out  # redctl show
    summary = out.split("== run log (REDSYS.ALL_ADM_JOB_LOG):", 1)[1]
    # the database side: a SQL job logging through REDSYS.PSS_LOG, an ACTION job and PSS_EXEC through JEXEC
    pss_log = out.split("== PSS_LOG: job LOG_SAMPLE", 1)[1].split("\n== ", 1)[0]
    assert "log/DB/DEMO/" in pss_log and "ERROR REDSYS/session-" in pss_log, pss_log
    assert "sample job LOG_SAMPLE: order 17 has no customer" in pss_log
    assert re.search(r"ERROR lines in REDSYS.ALL_LOG_MESSAGES: [1-9]", pss_log), pss_log
    action = out.split("== ACTION job HELLO_ACTION runs cmd/demo/hello.sh through JEXEC", 1)[1].split("\n== ", 1)[0]
    assert "OK: cmd/demo/hello.sh: exit code 0 in " in action and "hello world from DEMO1 (run " in action, action
    assert "log/JEXEC/" in action
    assert re.search(r"returned:\n   exit=0 status=OK seconds=[0-9.]+\n   hello SQL from DEMO1", out), out
    # file ingest: JSON and Parquet orders converted, CSVSRV's LOAD job imports them through CFISRV, all archived
    ingest = out.split("== DEMO.ORDERS (imported by the database from CFISRV):", 1)[1].split("\n== LOAD_ORDERS", 1)[0]
    assert "1 | widget | 3 | 9.5 | 2026-11-30 09:15:00" in ingest and "4 | gear \u00e9 |  | 12 |" in ingest, ingest
    for name in ("orders-web.json", "orders-web.csv", "orders-shop.parquet", "orders-shop.csv"):
        assert f"shop/{name}" in ingest, ingest
    assert sum(int(n) for n in re.findall(r"OK, ROWS_LOADED (\d+): ", out)) == 4, out
    assert "CSVSRV (FILE watchers starting LOAD jobs): DEMO watcher 1 ORDERS_ARRIVED" in out
    for name in ("HEARTBEAT", "PING", "LOAD_ORDERS", "LOG_SAMPLE", "HELLO_ACTION"):
        assert re.search(rf"{name}\s+OK\s+[1-9]", summary), name
    assert re.search(r"BROKEN\s+FAILED\s+[1-9]", summary)
    mail = out.split("== mail: a local SMTP relay on 127.0.0.1:", 1)[1].split("\n== ", 1)[0]
    assert "the relay received it: From redsys@demo.example, To operator@demo.example" in mail, mail
    assert "attachment(s) demo-report.csv" in mail and "where to see it: SENDMAIL's log " in mail
    assert "SENDMAIL spool: no mail waiting" in out  # redctl show, after the relay took it
    assert "== start_trace exited with code 0" in out
