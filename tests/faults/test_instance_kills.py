"""kill -9 at random moments while SQL jobs insert one row per run: afterwards every run logged OK left exactly one
row, every other run none, and no run id is logged twice.

The schedule of kills (which daemon, how long after the last one, how long it stays dead) comes from a seeded
random generator; the seed is printed, and REDPSS_FAULT_SEED=<seed> replays the same schedule.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections import Counter

import pytest

from redpss.sched.commit import TABLE as MARKERS
from tests.support.fault_instance import ROWS_TABLE, FaultInstance
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

KILLS = 8  # bounded: two of each target
TARGETS = ("sched", "worker", "jmon", "devdb")
DEFAULT_SEED = 9


def busy_worker(faulty: FaultInstance) -> int:
    """The pid of a SCHED worker carrying out a run, 0 while none is (or SCHED does not answer)."""
    try:
        workers = faulty.sched_workers()
    except (OSError, ValueError):
        return 0
    return next((int(w["pid"]) for w in workers if w["run_id"]), 0)


def any_worker(faulty: FaultInstance) -> int:
    workers = faulty.sched_workers()
    return int(workers[0]["pid"]) if workers else 0


def kill_worker(faulty: FaultInstance, rng: random.Random) -> None:
    """Prefer a worker in the middle of a run (that is where a commit can be cut off); any worker otherwise."""
    try:
        pid = wait_for(lambda: busy_worker(faulty), 10, interval=0.005, what="a busy SCHED worker")
    except AssertionError:
        pid = wait_for(lambda: any_worker(faulty), 30, what="a SCHED worker")
    time.sleep(rng.uniform(0, 0.05))  # fault schedule: somewhere inside the run, its commit included
    os.kill(pid, signal.SIGKILL)


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(faulty: FaultInstance, figures: list[str]) -> None:
    seed = int(os.environ.get("REDPSS_FAULT_SEED") or DEFAULT_SEED)
    rng = random.Random(seed)
    print(f"fault suite kill -9: seed {seed} (replay with REDPSS_FAULT_SEED={seed})")
    faulty.add_inserting_jobs(3)
    schedule = list(TARGETS) * (KILLS // len(TARGETS))
    rng.shuffle(schedule)
    survived: Counter[str] = Counter()
    for target in schedule:
        faulty.wait_committing(f"runs committing before the kill of {target}")
        time.sleep(rng.uniform(0, 1.0))  # fault schedule: a random moment
        if target == "worker":
            kill_worker(faulty, rng)
        else:
            faulty.kill(target)
            time.sleep(rng.uniform(0, 1.5))  # fault schedule: dead for a while
            faulty.start(target)
        survived[target] += 1
    faulty.wait_committing("runs committing after the last kill")
    faulty.stop_jobs()
    result = faulty.reconcile()
    kills = sum(survived.values())
    by_target = ", ".join(f"{target} {count}" for target, count in sorted(survived.items()))
    line = (
        f"kill -9 (seed {seed}): kills survived {kills} ({by_target}); "
        f"rows reconciled {result.rows} of {result.ok_runs} OK runs ({result.by_marker} by commit marker); "
        f"lost {result.lost}; duplicated {result.duplicated_run_ids + result.unlogged}; "
        f"statuses {dict(sorted(result.statuses.items()))}"
    )
    print(line)
    figures.append(line)
    assert kills == KILLS
    assert result.ok_runs > 0
    assert result.lost == 0, line
    assert result.unlogged == 0, line
    assert result.duplicated_run_ids == 0, line
    for name in ("sched", "jmon", "devdb"):
        assert "Traceback" not in faulty.procs[name].log, f"{name} logged a traceback"


def started_run(faulty: FaultInstance, job: str) -> str:
    out = faulty.redctl("start_db_job", job).stdout
    match = re.search(r"started as run (\w+)", out)
    assert match, out
    return match.group(1)


def worker_of(faulty: FaultInstance, run_id: str) -> int:
    return next((int(w["pid"]) for w in faulty.sched_workers() if w["run_id"] == run_id), 0)


def test_a_worker_killed_around_its_commit_is_logged_as_the_database_decided(faulty: FaultInstance) -> None:
    """The worker dies with its transaction open while another session holds the write lock. What that session
    then does stands for the two ways the worker's COMMIT can have ended: kept (its row and its marker), or not.
    SCHED must wait for that outcome and log OK only for the first: a marker read while the COMMIT is still under
    way, or no marker at all (the run logged FAILED though its row stays), breaks the count.
    """
    faulty.add_inserting_jobs(1, interval=None)  # manual starts only
    for committed in (True, False):
        db = faulty.inst.db()
        rows_before = faulty.rows_written()
        db.connection().set_autocommit(False)
        db.execute(f"INSERT INTO {ROWS_TABLE} (SESSION_ID, WRITTEN_AT) VALUES (0, CURRENT_TIMESTAMP)")  # write lock
        run_id = started_run(faulty, "APP1.101")
        pid = wait_for(lambda: worker_of(faulty, run_id), 30, what=f"run {run_id} in a worker")  # noqa: B023
        os.kill(pid, signal.SIGKILL)
        if committed:
            db.execute(f"INSERT INTO {MARKERS} (RUN_ID, COMMITTED_AT) VALUES ('{run_id}', CURRENT_TIMESTAMP)")
            db.commit()
        else:
            db.execute("ROLLBACK")
        db.connection().set_autocommit(True)
        [row] = wait_for(
            lambda: faulty.inst.rows(f"SELECT STATUS, MESSAGE FROM APP1.ADM_JOB_LOG WHERE RUN_ID = '{run_id}'"),  # noqa: B023
            60,
            what=f"the log row of run {run_id}",
        )
        if committed:
            assert row["STATUS"] == "OK"
            assert "committed; the worker ended before reporting" in row["MESSAGE"]
        else:
            assert row["STATUS"] == "FAILED"
        assert faulty.rows_written() == rows_before + (1 if committed else 0)
        wait_for(lambda: not faulty.inst.rows(f"SELECT * FROM {MARKERS}"), 30, what="the marker deleted once logged")
