"""JMON's statistics delivered again leave one row per pool and interval, and one per finished run.

The row writer delivers at least once: a batch whose INSERT committed but whose answer was lost (the database or
the connection gone at that moment) is sent again. Its rows carry their key (the interval's time and the pool; the
run and the interval's time), so the second delivery replaces the first instead of counting the minute twice.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.net import free_port
from redpss.devdb.testing import InProcessDevDb
from redpss.jmon.stats import StatsCollector, StatsWriter
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow


def session(devdb: InProcessDevDb) -> DbSession:
    return DbSession(DbSettings(dsn=devdb.dsn, user=devdb.user, password=Secret(devdb.password), encryption=False))


@pytest.mark.parametrize("table", ["ADM_JMON_LOAD", "ADM_JMON_JOBLOG"])
def test_statistics_whose_answer_was_lost_after_the_commit_are_in_the_table_once(tmp_path: Path, table: str) -> None:
    with InProcessDevDb(tmp_path / "devdb", port=free_port()) as devdb:
        db = session(devdb)
        install(db, [])
        now = time.time()
        stats = StatsCollector()
        stats.dispatched(0.01)
        run_id = uuid.uuid4().hex
        for attempt, status in enumerate(("FAILED", "OK")):  # a run and its retry, both ended within the interval
            ended = now - 10 + attempt
            stats.run_finished(
                {
                    "schema": "APP1",
                    "kind": "JOB",
                    "id": 1,
                    "name": "J",
                    "run_id": run_id,
                    "status": status,
                    "scheduled_at": now - 20,
                    "started_at": ended - 1,
                    "ended_at": ended,
                }
            )
        pools = [
            {"pool": "DEFAULT", "size": 4, "busy": 1, "queued": 0},
            {"pool": "LOADER", "size": 2, "busy": 0, "queued": 0},
        ]
        load, joblog = stats.rows(now, pools, now, False)
        devdb.lose_next_reply(f"INSERT INTO REDSYS.{table}")  # committed, then the connection is cut
        writer = StatsWriter(session(devdb), tmp_path / "jmon-stats.spool")
        try:
            writer.add(load, joblog)
            writer.flush()
            wait_for(lambda: writer.backlog == 0, 30, what="the batch delivered again after the lost answer")
        finally:
            writer.close()
        pools_logged = db.fetchall("SELECT POOL FROM REDSYS.ADM_JMON_LOAD ORDER BY POOL")
        runs_logged = db.fetchall("SELECT RUN_ID, STATUS FROM REDSYS.ADM_JMON_JOBLOG ORDER BY ENDED_AT")
        db.close()
    assert pools_logged == [("DEFAULT",), ("LOADER",)]
    assert runs_logged == [(run_id, "FAILED"), (run_id, "OK")]
