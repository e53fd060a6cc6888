"""Two instances on one server, TST1 and DEV1, each with its own embedded database (a DuckDB file), and the clone
an operator makes: TST1's database stopped and replaced by a copy of DEV1's file.

DEV1's database differs from TST1's in every way the restore must see: other jobs active (and one TST1 never had),
other CONNECTION addresses (its own service ports), other role memberships, log rows of its own, and audit-like
rows (APP1.AUDIT_TRAIL, REDSYS.ADM_LOAD_FILE) that the restore must leave alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from redpss.core.net import free_port_range
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.core.ports import other_instances_claims
from tests.support.daemon_set import DaemonSet
from tests.support.instance_runner import add_job, add_watcher, instance_config
from tests.support.wait import wait_for

API_ROLES = ("REDPSS_READER", "REDPSS_OPERATOR")
DEV1_MARK = "written in DEV1"


def make_instance(redhome: Path, name: str) -> InstancePaths:
    paths = InstancePaths.for_instance(name, redhome)
    create_instance_tree(paths)
    # Two instances on one server: none of this one's ports may be one the other's config claims (the config check
    # refuses that), although nothing listens there while the other instance is stopped.
    claimed = {port for claim in other_instances_claims(paths) for port in range(claim.low, claim.high + 1)}
    first = free_port_range(4)
    while claimed.intersection(range(first, first + 4)):
        first = free_port_range(4)
    passive = {"cfi_pasv_port_start": str(first), "cfi_pasv_port_end": str(first + 3)}
    paths.config_file.write_text(instance_config({"redctl": passive}, avoid=claimed))
    paths.config_file.chmod(0o600)
    return paths


def seed_tst1(daemons: DaemonSet) -> None:
    """TST1: job 1 runs every second, job 2 is switched off, watcher 1 on; USER_A reads through the REST API."""
    inst = daemons.inst
    inst.redctl("db_register", "APP1")
    add_job(inst, "APP1", 1, "TST_RUNS", INTERVAL_SECONDS=1, ACTIVE=True)
    add_job(inst, "APP1", 2, "TST_OFF", INTERVAL_SECONDS=1, ACTIVE=False)
    add_watcher(inst, "APP1", 1, "TST_WATCH", CONDITION_TEXT="SELECT 1 FROM DUAL WHERE 1 = 0", TARGET_JOB_ID=2)
    db = inst.db()
    for user in ("USER_A", "USER_B"):
        db.execute(f'CREATE USER {user} IDENTIFIED BY "pw-{user.lower()}"')
    db.execute("GRANT REDPSS_READER TO USER_A")
    db.commit()


def seed_dev1(daemons: DaemonSet) -> None:
    """DEV1: job 1 (TST1's job 1 too) off, job 2 (another job than TST1's job 2) on, job 3 (unknown to TST1) on;
    USER_A operates, USER_B reads; logs and audit rows."""
    inst = daemons.inst
    inst.redctl("db_register", "APP1")
    add_job(inst, "APP1", 1, "TST_RUNS", INTERVAL_SECONDS=1, ACTIVE=False)
    add_job(inst, "APP1", 2, "DEV_RUNS", INTERVAL_SECONDS=1, ACTIVE=True)
    add_job(inst, "APP1", 3, "DEV_ONLY", INTERVAL_SECONDS=1, ACTIVE=True)
    add_watcher(inst, "APP1", 1, "DEV_WATCH", CONDITION_TEXT="SELECT 1 FROM DUAL", TARGET_JOB_ID=3, ACTIVE=True)
    db = inst.db()
    for user in ("USER_A", "USER_B"):
        db.execute(f'CREATE USER {user} IDENTIFIED BY "pw-{user.lower()}"')
    db.execute("GRANT REDPSS_OPERATOR TO USER_A")
    db.execute("GRANT REDPSS_READER TO USER_B")
    stamp = "TIMESTAMP '2026-01-01 00:00:00'"
    db.execute(
        "INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, JOB_NAME, STATUS, MESSAGE) "
        f"VALUES ('dev1-run', 2, 'DEV_RUNS', 'OK', '{DEV1_MARK}')"
    )
    db.execute(
        "INSERT INTO APP1.ADM_WATCHER_LOG (RUN_ID, WATCHER_ID, STATUS, MESSAGE) "
        f"VALUES ('dev1-w', 1, 'OK', '{DEV1_MARK}')"
    )
    db.execute(
        f"INSERT INTO APP1.ADM_WATCHER_EXEC_ERROR (WATCHER_ID, ERROR_AT, ERROR_MESSAGE) VALUES (1, {stamp}, 'x')"
    )
    db.execute(f"INSERT INTO APP1.LOG_MESSAGES (LOG_TIME, LOG_LEVEL, MESSAGE) VALUES ({stamp}, 'ERROR', '{DEV1_MARK}')")
    db.execute(f"INSERT INTO REDSYS.ADM_JMON_LOAD (LOG_TIME, POOL) VALUES ({stamp}, 'DEFAULT')")
    db.execute(
        "INSERT INTO REDSYS.ADM_JMON_JOBLOG (LOG_TIME, SCHEMA_NAME, KIND, ID, RUN_ID, STATUS) "
        f"VALUES ({stamp}, 'APP1', 'JOB', 2, 'dev1-run', 'OK')"
    )
    db.execute(
        "INSERT INTO REDSYS.ADM_LOAD_FILE (FILE_PATH, FILE_KEY, TARGET_TABLE, RUN_ID, ROWS_LOADED, LOADED_AT) "
        f"VALUES ('/dev1/orders.csv', 'k1', 'APP1.ORDERS', 'dev1-load', 5, {stamp})"
    )
    db.execute('CREATE TABLE APP1.AUDIT_TRAIL ("AT" TIMESTAMP, WHO VARCHAR(64), WHAT VARCHAR(200))')
    db.execute(f"INSERT INTO APP1.AUDIT_TRAIL VALUES ({stamp}, 'SYS', 'dev1 audit 1'), ({stamp}, 'SYS', 'audit 2')")
    db.commit()


def replace_database(target: InstancePaths, source: InstancePaths) -> None:
    """What restoring DEV1's backup over TST1's database is for devdb: its DuckDB file copied over (both stopped)."""
    shutil.rmtree(target.devdb_dir)
    shutil.copytree(source.devdb_dir, target.devdb_dir, ignore=shutil.ignore_patterns("tls"))


def activation(daemons: DaemonSet) -> dict[tuple[str, int], bool]:
    rows = daemons.inst.rows("SELECT 'JOB' AS K, JOB_ID AS I, ACTIVE FROM APP1.ADM_JOBS")
    rows += daemons.inst.rows("SELECT 'WATCHER' AS K, WATCHER_ID AS I, ACTIVE FROM APP1.ADM_WATCHER")
    return {(str(r["K"]), int(r["I"])): bool(r["ACTIVE"]) for r in rows}


def members(daemons: DaemonSet) -> set[tuple[str, str]]:
    rows = daemons.inst.rows("SELECT GRANTEE, GRANTED_ROLE FROM EXA_DBA_ROLE_PRIVS")
    return {
        (str(r["GRANTEE"]), str(r["GRANTED_ROLE"]))
        for r in rows
        if r["GRANTED_ROLE"] in API_ROLES and r["GRANTEE"] not in API_ROLES
    }


def connections(daemons: DaemonSet) -> dict[str, str]:
    rows = daemons.inst.rows('SELECT NAME, ADDRESS FROM "REDPSS_DEVDB"."CONNECTIONS"')
    return {str(r["NAME"]): str(r["ADDRESS"]) for r in rows}


def identity(daemons: DaemonSet) -> dict[str, Any]:
    rows = daemons.inst.rows("SELECT INSTANCE_NAME, INSTANCE_ID FROM REDSYS.INSTANCE_IDENTITY")
    assert len(rows) == 1, rows
    return rows[0]


def count(daemons: DaemonSet, table: str, where: str = "1 = 1") -> int:
    return int(daemons.inst.rows(f"SELECT COUNT(*) AS N FROM {table} WHERE {where}")[0]["N"])


def wait_job_ran(daemons: DaemonSet, job_id: int, after: int = 0, timeout: float = 60) -> None:
    wait_for(
        lambda: count(daemons, "APP1.ADM_JOB_LOG", f"JOB_ID = {job_id} AND STATUS = 'OK'") > after,
        timeout,
        interval=0.2,
        what=f"a run of job {job_id} logged OK",
    )


def stop_daemon(daemons: DaemonSet, name: str) -> None:
    """SIGTERM, as systemd stops a unit; it must end cleanly."""
    if name == "devdb":
        daemons.inst.close()  # the test's session goes with the database
    daemon = daemons.procs.pop(name)
    try:
        assert daemon.stop() == 0, f"{name} exited non-zero: {daemon.stderr}"
    finally:
        daemon.close()
