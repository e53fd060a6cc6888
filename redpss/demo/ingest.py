"""The demo's file ingest: order files in JSON and Parquet dropped into data/input/shop end up in DEMO.ORDERS.

The chain is the one of docs/db-contract.md ("LOAD jobs and CSVSRV"): JSON2CSV and PARQ2CSV write a CSV beside each
source and archive it; CSVSRV (the FILE watcher ORDERS_ARRIVED) sees the CSV and starts LOAD_ORDERS, a LOAD job;
the database imports the CSV through CFISRV and the job archives it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path

from redpss.core.db import DbSession
from redpss.core.paths import InstancePaths

FOLDER = "shop"  # as an sFTP user's data/input/<user>
ORDERS_TABLE = (
    "CREATE TABLE DEMO.ORDERS (ORDER_ID DECIMAL(9,0), ITEM VARCHAR(100), QTY DECIMAL(9,0), PRICE DECIMAL(12,2), "
    "ORDERED_AT TIMESTAMP)"
)
# Job 4 and watcher 1 of the sample jobs become the real thing: a LOAD job and CSVSRV's watcher on the CSV files.
DEFINITIONS = [
    ORDERS_TABLE,
    "UPDATE DEMO.ADM_JOBS SET JOB_TYPE = 'LOAD', COMMAND = 'table=DEMO.ORDERS files=shop/*.csv columns=header' "
    "WHERE JOB_ID = 4",
    "UPDATE DEMO.ADM_WATCHER SET CONDITION_TEXT = 'shop/*.csv', INTERVAL_SECONDS = 1 WHERE WATCHER_ID = 1",
]
JSON_ORDERS = [
    {"ORDER_ID": 1, "ITEM": "widget", "QTY": 3, "PRICE": 9.5, "ORDERED_AT": "2026-11-30 09:15:00"},
    {"ORDER_ID": 2, "ITEM": "nut, hex", "QTY": 100, "PRICE": 0.05, "ORDERED_AT": "2026-11-30 09:16:30"},
]
PARQUET_ORDERS = {
    "ORDER_ID": [3, 4],
    "ITEM": ["bolt", "gear \u00e9"],
    "QTY": [10, None],
    "PRICE": [Decimal("1.25"), Decimal("12.00")],
    "ORDERED_AT": [dt.datetime(2026, 11, 30, 10, 0, 0), dt.datetime(2026, 11, 30, 10, 1, 2, 345000)],
}
SOURCES = ("orders-web.json", "orders-shop.parquet")
SAMPLE_ROWS = 4  # two orders in each file
WAIT_SECONDS = 90.0


def define(session: DbSession) -> None:
    """Turn the sample order loader into a LOAD job fed by CSVSRV (run before the definitions are committed)."""
    for statement in DEFINITIONS:
        session.execute(statement)


def upload_folder(paths: InstancePaths, user: str) -> Path:
    """data/input/<user>, a link to the user's upload folder as `redftp` makes it for an sFTP user; here the folder
    is data/work/uploads/<user>, inside the instance tree, since a demo or test has no sFTP tree of its own."""
    target = paths.data_work / "uploads" / user
    target.mkdir(parents=True, exist_ok=True)
    link = paths.data_input / user
    if not link.is_symlink():
        link.symlink_to(target, target_is_directory=True)
    return link


def drop_samples(paths: InstancePaths) -> list[Path]:
    """Write the sample files as an upload would: under a temporary name, renamed when complete."""
    import pyarrow as pa  # noqa: PLC0415 - heavy, only for the demo's Parquet sample
    import pyarrow.parquet as pq  # noqa: PLC0415

    folder = upload_folder(paths, FOLDER)
    json_file, parquet_file = (folder / name for name in SOURCES)
    partial = folder / f"{json_file.name}.part"
    partial.write_text("".join(json.dumps(order) + "\n" for order in JSON_ORDERS), encoding="utf-8")
    partial.replace(json_file)
    table = pa.table(
        {
            "ORDER_ID": pa.array(PARQUET_ORDERS["ORDER_ID"], pa.int32()),
            "ITEM": pa.array(PARQUET_ORDERS["ITEM"], pa.string()),
            "QTY": pa.array(PARQUET_ORDERS["QTY"], pa.int64()),
            "PRICE": pa.array(PARQUET_ORDERS["PRICE"], pa.decimal128(12, 2)),
            "ORDERED_AT": pa.array(PARQUET_ORDERS["ORDERED_AT"], pa.timestamp("us")),
        }
    )
    partial = folder / f"{parquet_file.name}.part"
    pq.write_table(table, partial)
    partial.replace(parquet_file)
    for path in (json_file, parquet_file):
        print(f"== dropped {path}: JSON2CSV/PARQ2CSV convert it, CSVSRV (watcher ORDERS_ARRIVED) starts LOAD_ORDERS")
    return [json_file, parquet_file]


def imported(paths: InstancePaths, session: DbSession) -> bool:
    """Every source and CSV has left data/input/shop (to archive/ or error/) and the run log counts the rows."""
    folder = paths.data_input / FOLDER
    if any(p.name.endswith((".json", ".parquet", ".csv")) for p in folder.iterdir()):
        return False
    logged = session.fetchall("SELECT SUM(ROWS_LOADED) FROM DEMO.ADM_JOB_LOG WHERE JOB_ID = 4")[0][0]
    return int(logged or 0) >= SAMPLE_ROWS


def show(paths: InstancePaths, session: DbSession) -> None:
    """Wait (up to WAIT_SECONDS) for the files to be loaded, then show the table, the archive and the run log."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not imported(paths, session) and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the folder and the run log, with the deadline above
    print("== DEMO.ORDERS (imported by the database from CFISRV):")
    for row in session.fetchall("SELECT ORDER_ID, ITEM, QTY, PRICE, ORDERED_AT FROM DEMO.ORDERS ORDER BY ORDER_ID"):
        print("   " + " | ".join("" if value is None else str(value) for value in row))
    print("== data/archive:")
    for path in sorted(p for p in paths.data_archive.rglob("*") if p.is_file()):
        print(f"   {path.relative_to(paths.data_archive)}")
    for path in sorted(p for p in paths.data_error.rglob("*.reason")):
        print(f"== data/error: {path.relative_to(paths.data_error)}: {path.read_text().strip()}")
    loads = session.fetchall(
        "SELECT STATUS, ROWS_LOADED, MESSAGE FROM DEMO.ADM_JOB_LOG WHERE JOB_ID = 4 AND ROWS_LOADED > 0 "
        "ORDER BY ENDED_AT"
    )
    print("== LOAD_ORDERS runs that loaded rows (DEMO.ADM_JOB_LOG):")
    for status, rows, message in loads:
        print(f"   {status}, ROWS_LOADED {rows}: {message}")
