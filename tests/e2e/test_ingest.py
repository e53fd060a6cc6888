"""File ingest end to end with real processes: files dropped into data/input/<user> end up in a table.

The instance runs under `redctl start_trace` with devdb, CFISRV, JSON2CSV, PARQ2CSV, SCHED and JMON. A JSON and a
Parquet file become CSV, CSVSRV (a FILE watcher) starts the LOAD job, devdb imports each CSV through the CONNECTION
REDSYS_CFI from CFISRV over implicit FTPS, and every file ends in data/archive; a CSV the database rejects ends in
data/error with the database's reason, and the job log counts the rows loaded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redpss.core.paths import InstancePaths
from redpss.demo.ingest import upload_folder
from tests.support.instance_runner import RunningInstance, add_job, add_watcher, instance_config
from tests.support.wait import wait_for

USER = "alice"
ORDERS = (
    "CREATE TABLE APP1.ORDERS (ORDER_ID DECIMAL(9,0), ITEM VARCHAR(100), QTY DECIMAL(9,0), PRICE DECIMAL(12,2), "
    "ORDERED_AT TIMESTAMP, PAID BOOLEAN)"
)


@pytest.fixture
def inst(instance: InstancePaths, tmp_path: Path) -> Iterator[RunningInstance]:
    overrides = {"redctl": {"cfi_enabled": "true", "ingest_stable_seconds": "1"}}
    instance.config_file.write_text(instance_config(overrides))
    running = RunningInstance(instance, tmp_path)
    try:
        running.start()
        running.redctl("db_register", "APP1")  # REDSYS, the schema and the CONNECTION REDSYS_CFI
        running.db().execute(ORDERS)
        add_job(
            running,
            "APP1",
            1,
            "LOAD_ORDERS",
            POOL="LOADER",
            JOB_TYPE="LOAD",
            INTERVAL_SECONDS=None,
            COMMAND=f"table=APP1.ORDERS files='{USER}/*.csv' columns=header",
        )
        add_watcher(
            running, "APP1", 1, "ORDERS_ARRIVED", CONDITION_TYPE="FILE", CONDITION_TEXT=f"{USER}/*.csv", TARGET_JOB_ID=1
        )
        running.redctl("reload")
        yield running
    finally:
        running.close()


def drop(folder: Path, name: str, write: Any) -> Path:
    """Write as an upload does: under a temporary name, renamed once complete."""
    partial = folder / f"{name}.part"
    write(partial)
    target = folder / name
    partial.replace(target)
    return target


def write_json(path: Path) -> None:
    orders = [
        {"ORDER_ID": 1, "ITEM": "widget", "QTY": 3, "PRICE": 9.5, "ORDERED_AT": "2026-11-30 09:15:00", "PAID": True},
        {"ORDER_ID": 2, "ITEM": 'nut, "hex"', "QTY": None, "PRICE": 0.05, "ORDERED_AT": None, "PAID": False},
    ]
    path.write_text("".join(json.dumps(order) + "\n" for order in orders), encoding="utf-8")


def write_parquet(path: Path) -> None:
    table = pa.table(
        {
            "ORDER_ID": pa.array([3, 4], pa.int32()),
            "ITEM": pa.array(["bolt", "gr\u00fcn\nline"], pa.large_string()),
            "QTY": pa.array([10, 7], pa.int64()),
            "PRICE": pa.array([Decimal("1.25"), Decimal("12.00")], pa.decimal128(12, 2)),
            "ORDERED_AT": pa.array(
                [dt.datetime(2026, 11, 30, 10, 0, 0), dt.datetime(2026, 11, 30, 10, 1, 2, 345000)], pa.timestamp("us")
            ),
            "PAID": pa.array([True, None], pa.bool_()),
        }
    )
    pq.write_table(table, path)


def orders(inst: RunningInstance) -> list[tuple[Any, ...]]:
    rows = inst.db().fetchall("SELECT ORDER_ID, ITEM, QTY, PRICE, ORDERED_AT, PAID FROM APP1.ORDERS ORDER BY ORDER_ID")
    return [tuple(row) for row in rows]


def test_json_and_parquet_files_are_converted_imported_through_cfisrv_and_archived(inst: RunningInstance) -> None:
    folder = upload_folder(inst.paths, USER)  # data/input/alice, a link as for an sFTP user
    drop(folder, "web.json", write_json)
    drop(folder, "shop.parquet", write_parquet)
    archive = inst.paths.data_archive / USER
    wanted = {"web.json", "shop.parquet", "web.csv", "shop.csv"}
    wait_for(
        lambda: archive.is_dir() and wanted <= {p.name for p in archive.iterdir()},
        120,
        interval=0.2,
        what=f"sources and CSVs in {archive} (see {inst.trace_log})",
    )
    assert not list(folder.iterdir())  # nothing left behind, no temporary file either
    assert not list(inst.paths.data_error.rglob("*"))
    rows = orders(inst)
    assert [(*row[:3], Decimal(str(row[3]))) for row in rows] == [
        (1, "widget", 3, Decimal("9.5")),
        (2, 'nut, "hex"', None, Decimal("0.05")),
        (3, "bolt", 10, Decimal("1.25")),
        (4, "gr\u00fcn\nline", 7, Decimal("12")),
    ]
    assert [str(row[4])[:19] if row[4] else None for row in rows] == [
        "2026-11-30 09:15:00",
        None,
        "2026-11-30 10:00:00",
        "2026-11-30 10:01:02",
    ]
    assert str(rows[3][4]).startswith("2026-11-30 10:01:02.345")
    assert [row[5] for row in rows] == [True, False, True, None]
    logged = wait_for(
        lambda: inst.db().fetchall("SELECT SUM(ROWS_LOADED) FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 1")[0][0] or None,
        30,
        what="the LOAD runs in the job log",
    )
    assert int(logged) == 4
    ledger = inst.db().fetchall("SELECT FILE_PATH, ROWS_LOADED FROM REDSYS.ADM_LOAD_FILE ORDER BY FILE_PATH")
    assert [tuple(r) for r in ledger] == [(f"input/{USER}/shop.csv", 2), (f"input/{USER}/web.csv", 2)]
    shown = inst.redctl("show").stdout
    assert "CSVSRV (FILE watchers starting LOAD jobs): APP1 watcher 1 ORDERS_ARRIVED" in shown


def test_a_rejected_csv_goes_to_error_with_the_reason_and_the_run_counts_what_it_loaded(
    inst: RunningInstance,
) -> None:
    folder = upload_folder(inst.paths, USER)  # data/input/alice, a link as for an sFTP user
    good = "ORDER_ID,ITEM,QTY,PRICE,ORDERED_AT,PAID\n10,ok,1,1.00,,\n"
    bad = "ORDER_ID,ITEM,QTY,PRICE,ORDERED_AT,PAID\n11,bad,three,1.00,,\n"
    drop(folder, "a-good.csv", lambda p: p.write_text(good, encoding="utf-8"))
    drop(folder, "b-bad.csv", lambda p: p.write_text(bad, encoding="utf-8"))
    reason_file = inst.paths.data_error / USER / "b-bad.csv.reason"
    wait_for(reason_file.exists, 120, interval=0.2, what=f"{reason_file} (see {inst.trace_log})")
    assert "three" in reason_file.read_text()
    assert (inst.paths.data_error / USER / "b-bad.csv").read_text() == bad
    wait_for((inst.paths.data_archive / USER / "a-good.csv").exists, 30, what="the good file archived")
    assert [row[:3] for row in orders(inst)] == [(10, "ok", 1)]
    failed = wait_for(
        lambda: inst.rows("SELECT STATUS, ROWS_LOADED, MESSAGE FROM APP1.ADM_JOB_LOG WHERE STATUS = 'FAILED'"),
        30,
        what="the LOAD run's FAILED row",
    )
    assert int(failed[0]["ROWS_LOADED"]) == 1
    assert f"1 file(s) rejected to data/error: {USER}/b-bad.csv:" in failed[0]["MESSAGE"]


def test_a_load_worker_killed_mid_run_loses_and_duplicates_nothing(inst: RunningInstance) -> None:
    """SIGKILL of the LOADER worker while it loads 40 files, then the job again: every row exactly once."""
    add_job(
        inst, "APP1", 2, "LOAD_BATCH", POOL="LOADER", JOB_TYPE="LOAD", INTERVAL_SECONDS=None,
        COMMAND="table=APP1.ORDERS files='batch/*.csv' skip=0",
    )  # fmt: skip
    inst.redctl("reload")
    folder = inst.paths.data_input / "batch"
    folder.mkdir()
    for number in range(40):
        drop(folder, f"{number:03}.csv", lambda p, n=number: p.write_text(f"{n},item {n},1,,,\n", encoding="utf-8"))
    wait_for(
        lambda: all(time.time() - p.stat().st_mtime >= 1.5 for p in folder.iterdir()), 10, what="the files settled"
    )
    inst.redctl("start_db_job", "APP1.2")
    archive = inst.paths.data_archive / "batch"

    def loading_worker() -> dict[str, Any] | None:
        if not archive.is_dir() or len(list(archive.iterdir())) < 3:
            return None
        pools = inst_show(inst)["sched"]["pools"]
        return next((w for p in pools for w in p["workers"] if w["job"] == "APP1.LOAD_BATCH"), None)

    worker = wait_for(loading_worker, 60, interval=0.05, what="the LOAD run under way with 3 files archived")
    os.kill(worker["pid"], signal.SIGKILL)
    wait_for(
        lambda: inst.rows("SELECT RUN_ID FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 2 AND STATUS = 'FAILED'"),
        30,
        what="the killed run logged",
    )
    assert 0 < len(list(archive.iterdir())) < 40, "the kill came after the run's end: nothing was tested"
    inst.redctl("start_db_job", "APP1.2")
    wait_for(lambda: not list(folder.iterdir()), 60, what="every file loaded by the second run")
    ids = [row[0] for row in orders(inst)]
    assert ids == list(range(40))  # none lost, none twice
    assert sorted(p.name for p in archive.iterdir()) == [f"{n:03}.csv" for n in range(40)]


def inst_show(inst: RunningInstance) -> dict[str, Any]:
    return dict(json.loads(inst.redctl("show", "--json").stdout))
