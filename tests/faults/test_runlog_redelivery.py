"""A run-log batch delivered again leaves one row per run.

The row writer delivers at least once: SCHED killed between a batch's commit and the spool's note that it is done,
or the database killed between the commit and its reply, and the next round or start sends the batch again. For
the run log that must not mean a run logged twice (the kill -9 suite counts run ids): its rows carry their key,
and a batch sent again replaces what an earlier delivery of it left.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.db.sqltext import insert_statement
from redpss.core.net import free_port
from redpss.devdb.testing import InProcessDevDb
from redpss.sched.runlog import record, run_log_writer, run_rows, skip_row
from redpss.sched.runs import FAILED, OK, RunRequest, RunResult
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow


def session(devdb: InProcessDevDb) -> DbSession:
    return DbSession(DbSettings(dsn=devdb.dsn, user=devdb.user, password=Secret(devdb.password), encryption=False))


def test_a_batch_committed_before_the_kill_and_sent_again_leaves_one_row_per_run(tmp_path: Path) -> None:
    with InProcessDevDb(tmp_path / "devdb", port=free_port()) as devdb:
        db = session(devdb)
        install(db, ["APP1"])
        now = time.time()
        run_id = uuid.uuid4().hex
        request = RunRequest(run_id, "JOB", "APP1", 1, "J", job_type="SQL", command="SELECT 1", max_retries=1)
        first_try = run_rows(request, RunResult(run_id, FAILED, "no", now, now, "w"))
        retried = RunRequest(**{**request.to_dict(), "attempt": 2, "trigger": "RETRY"})
        second_try = run_rows(retried, RunResult(run_id, OK, "yes", now, now, "w"))
        other = uuid.uuid4().hex
        another_run = run_rows(RunRequest(other, "JOB", "APP1", 1, "J"), RunResult(other, OK, "", now, now, "w"))
        spool = tmp_path / "sched-runlog.spool"
        killed = run_log_writer(spool, session(devdb))  # never started: SCHED killed right after the append ...
        assert record(killed, first_try + second_try + another_run)
        for rows in (first_try, second_try):  # ... and after the batch's commit, before its note that it is done
            db.execute(insert_statement(rows[0].qualified_table, [rows[0].values]))
        killed.stop(timeout=1)
        restarted = run_log_writer(spool, session(devdb))
        restarted.start()
        try:
            wait_for(lambda: restarted.backlog().rows == 0, 30, what="the spooled batch delivered again")
        finally:
            restarted.stop(timeout=5)
        logged = db.fetchall("SELECT RUN_ID, ATTEMPT, STATUS FROM APP1.ADM_JOB_LOG ORDER BY RUN_ID, ATTEMPT")
        db.close()
    assert sorted(logged) == sorted([(run_id, 1, FAILED), (run_id, 2, OK), (other, 1, OK)])


def test_a_batch_whose_reply_was_lost_after_its_commit_is_sent_again_and_leaves_one_row_per_run(
    tmp_path: Path,
) -> None:
    with InProcessDevDb(tmp_path / "devdb", port=free_port()) as devdb:
        db = session(devdb)
        install(db, ["APP1"])
        now = time.time()
        runs = [uuid.uuid4().hex for _ in range(3)]
        rows = [
            row
            for run_id in runs
            for row in run_rows(RunRequest(run_id, "JOB", "APP1", 1, "J"), RunResult(run_id, OK, "", now, now, "w"))
        ]
        skipped = uuid.uuid4().hex  # a tick that started no run: its row has no ATTEMPT (one of the key columns)
        rows.append(skip_row("JOB", "APP1", 1, "J", scheduled_at=now, reason="OVERLAP", message="", run_id=skipped))
        devdb.lose_next_reply("INSERT INTO APP1.ADM_JOB_LOG")  # committed, then the connection is cut
        writer = run_log_writer(tmp_path / "sched-runlog.spool", session(devdb))
        writer.start()
        try:
            assert record(writer, rows)
            wait_for(lambda: writer.backlog().rows == 0, 30, what="the batch delivered again after the lost reply")
        finally:
            writer.stop(timeout=5)
        logged = db.fetchall("SELECT RUN_ID FROM APP1.ADM_JOB_LOG")
        db.close()
    assert sorted(run_id for (run_id,) in logged) == sorted([*runs, skipped])
