"""Faults between the daemons, each started on its own (as systemd would) so one can be killed or stopped while the
others run: SCHED killed and restarted under a running JMON, the database away for a while, SCHED draining a queue.
Nothing accepted may be lost: runs are found lost and scheduled again, rows wait and arrive later.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.core.db.sqltext import timestamp
from redpss.core.paths import InstancePaths
from tests.support.daemon_set import DaemonSet
from tests.support.instance_runner import add_job, instance_config
from tests.support.processes import alive
from tests.support.wait import wait_for


def start_instance(instance: InstancePaths, tmp_path: Path, sched: str = "", *args: str) -> Iterator[DaemonSet]:
    """devdb with APP1 registered, SCHED (or the module `sched` in its place, with `args`) and JMON."""
    instance.config_file.write_text(instance_config({"redctl": {"sched_default_pool_size": "1"}}))
    running = DaemonSet(instance, tmp_path)
    try:
        running.start("devdb")
        running.inst.redctl("db_register", "APP1")
        running.start("sched", *args, module=sched)
        running.start("jmon")
        yield running
    finally:
        running.close()


@pytest.fixture
def daemons(instance: InstancePaths, tmp_path: Path) -> Iterator[DaemonSet]:
    yield from start_instance(instance, tmp_path)


@pytest.fixture
def daemons_small_tmp(instance: InstancePaths, tmp_path: Path) -> Iterator[DaemonSet]:
    """As `daemons`, with SCHED seeing a 1 MiB tmpfs as its tmp/ (tests/sched/small_tmp.py)."""
    yield from start_instance(instance, tmp_path, "tests.sched.small_tmp", "--tmp-size", "1m")


def rows(daemons: DaemonSet, sql: str) -> list[dict[str, Any]]:
    return daemons.inst.rows(sql)


def show(daemons: DaemonSet) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(daemons.inst.redctl("show", "--json").stdout)
    return data


def test_runs_lost_by_a_killed_sched_are_freed_and_the_job_runs_again(daemons: DaemonSet) -> None:
    add_job(
        daemons.inst,
        "APP1",
        1,
        "LONG",
        JOB_TYPE="SQL",
        COMMAND="EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(60)",
        INTERVAL_SECONDS=3600,
        OVERLAP_POLICY="SKIP",
    )
    daemons.inst.redctl("reload")
    daemons.inst.redctl("start_job", "APP1.1")

    def running_ids() -> list[str]:
        entry = next(e for e in show(daemons)["entries"] if e["key"] == ["JOB", "APP1", 1])
        return list(entry["running"])

    lost = wait_for(running_ids, 30, what="the run in flight")[0]
    os.kill(daemons.procs["sched"].pid, signal.SIGKILL)  # SCHED dies with the run; nothing is told to JMON
    daemons.procs["sched"].close()
    daemons.start("sched")
    daemons.procs["jmon"].wait_log(f"run {lost} of APP1.1 was lost by SCHED; the job is scheduled again")
    wait_for(lambda: not running_ids(), 30, what="the job free again")
    # free again: a manual start is not refused as an overlap, and it runs in the new SCHED
    daemons.inst.redctl("start_job", "APP1.1")
    wait_for(lambda: running_ids() and running_ids()[0] != lost, 30, what="a new run in the new SCHED")


def test_while_the_database_is_away_runs_and_statistics_wait_and_arrive_later(daemons: DaemonSet) -> None:
    add_job(daemons.inst, "APP1", 2, "TICK", INTERVAL_SECONDS=1)
    daemons.inst.redctl("reload")
    wait_for(lambda: rows(daemons, "SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 2"), 30, what="first runs logged")
    daemons.inst.close()
    went_away = timestamp(time.time())
    assert daemons.procs["devdb"].stop() == 0  # the database goes away for a while
    daemons.procs["devdb"].close()
    daemons.procs["sched"].wait_log("database unavailable")
    daemons.procs["jmon"].wait_log("statistics: database unavailable")
    outage = daemons.procs["sched"].log.count("job APP1.TICK run")  # runs finished so far, some during the outage
    came_back = timestamp(time.time())
    daemons.start("devdb")
    logged = wait_for(
        lambda: (n := len(rows(daemons, "SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 2"))) >= outage and n,
        60,
        what="every run, including those during the outage, in ADM_JOB_LOG",
    )
    assert logged >= outage
    assert not (daemons.paths.tmp / "sched-runlog.rejected").exists()
    during = wait_for(
        lambda: rows(
            daemons,
            "SELECT * FROM REDSYS.ADM_JMON_LOAD WHERE POOL = 'DEFAULT' "
            f"AND LOG_TIME > '{went_away}' AND LOG_TIME < '{came_back}'",
        ),
        60,
        what="statistics rows stamped during the outage, written once the database was back",
    )
    assert during[0]["POOL_SIZE"] == 1


def test_sched_drain_finishes_the_running_run_and_records_the_queue_as_interrupted(daemons: DaemonSet) -> None:
    add_job(
        daemons.inst,
        "APP1",
        3,
        "SLOWISH",
        JOB_TYPE="SQL",
        COMMAND="EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(3)",
        INTERVAL_SECONDS=None,
    )
    daemons.inst.redctl("reload")
    for _ in range(3):  # one pool worker: the first runs, two wait in the queue
        daemons.inst.redctl("start_db_job", "APP1.3")
    sched = daemons.procs["sched"]
    wait_for(lambda: '"queued": 2' in json.dumps(show(daemons)["sched"]["pools"][0]), 30, what="two runs queued")
    assert sched.stop() == 0
    assert "waiting for 1 running run(s) to finish" in sched.log
    statuses = sorted(
        (r["STATUS"], r["MESSAGE"] or "") for r in rows(daemons, "SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 3")
    )
    assert [s for s, _ in statuses] == ["INTERRUPTED", "INTERRUPTED", "OK"]
    assert all("not started: SCHED stopped first" in m for s, m in statuses if s == "INTERRUPTED")
    sched.close()
    del daemons.procs["sched"]


@pytest.mark.slow
def test_kill_9_of_sched_takes_its_workers_along_and_the_next_start_logs_the_run_interrupted(
    daemons: DaemonSet,
) -> None:
    add_job(
        daemons.inst,
        "APP1",
        4,
        "LONGER",
        JOB_TYPE="SQL",
        COMMAND="EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(30)",
        INTERVAL_SECONDS=None,
    )
    daemons.inst.redctl("reload")
    started = daemons.inst.redctl("start_db_job", "APP1.4").stdout
    run_id = re.search(r"started as run (\w+)", started).group(1)  # type: ignore[union-attr]

    def worker_pid() -> int:
        pools = show(daemons)["sched"]["pools"]
        return next((int(w["pid"]) for p in pools for w in p["workers"] if w["run_id"] == run_id), 0)

    pid = wait_for(worker_pid, 30, what="the run in a worker")
    os.kill(daemons.procs["sched"].pid, signal.SIGKILL)
    daemons.procs["sched"].close()
    wait_for(lambda: not alive(pid), 10, what=f"worker {pid} ending with its master (its run sleeps 30 s)")
    daemons.start("sched")
    daemons.procs["sched"].wait_log(f"run {run_id} was in flight when SCHED ended; logged INTERRUPTED")
    [row] = wait_for(
        lambda: rows(daemons, f"SELECT STATUS, MESSAGE FROM APP1.ADM_JOB_LOG WHERE RUN_ID = '{run_id}'"),
        30,
        what="the interrupted run's row",
    )
    assert row["STATUS"] == "INTERRUPTED"
    assert "SCHED ended (killed?) while this run was in flight" in row["MESSAGE"]
    assert not list((daemons.paths.tmp / "sched-running").iterdir())


def rows_once_there(daemons: DaemonSet, sql: str, count: int, what: str) -> list[dict[str, Any]]:
    """The rows of `sql` once there are `count` of them (rows written one by one arrive one by one)."""

    def enough() -> list[dict[str, Any]] | None:
        found = rows(daemons, sql)
        return found if len(found) >= count else None

    return wait_for(enough, 30, what=what)


def started_run(daemons: DaemonSet, job: str) -> str:
    """The run id `redctl start_db_job` names for `job`."""
    output = daemons.inst.redctl("start_db_job", job).stdout
    found = re.search(r"started as run (\w+)", output)
    assert found, output
    return found.group(1)


@pytest.mark.slow
def test_kill_9_of_sched_loses_no_waiting_run_the_next_start_logs_queued_runs_and_a_pending_retry_interrupted(
    daemons: DaemonSet,
) -> None:
    add_job(
        daemons.inst,
        "APP1",
        5,
        "FAILS_ONCE_MORE_LATER",
        JOB_TYPE="SQL",
        COMMAND="EXECUTE SCRIPT REDPSS_DEVDB.NO_SUCH_SCRIPT()",
        INTERVAL_SECONDS=None,
        MAX_RETRIES=1,
        RETRY_DELAY_SECONDS=3600,
    )
    add_job(
        daemons.inst,
        "APP1",
        6,
        "HOLDS_THE_WORKER",
        JOB_TYPE="SQL",
        COMMAND="EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(30)",
        INTERVAL_SECONDS=None,
    )
    daemons.inst.redctl("reload")
    failing = started_run(daemons, "APP1.5")
    wait_for(
        lambda: [r for r in show(daemons)["sched"]["retries_waiting"] if r["run_id"] == failing],
        30,
        what="the failed run's retry waiting for its time (an hour)",
    )
    daemons.inst.redctl("start_db_job", "APP1.6")  # the one worker of the pool: this runs, the next two wait
    queued = [started_run(daemons, "APP1.6") for _ in range(2)]
    wait_for(lambda: set(queued) <= set(show(daemons)["sched"]["queued_run_ids"]), 30, what="two runs queued")
    os.kill(daemons.procs["sched"].pid, signal.SIGKILL)
    daemons.procs["sched"].close()
    daemons.start("sched")
    for run_id in [*queued, failing]:
        daemons.procs["sched"].wait_log(f"run {run_id} was waiting to start when SCHED ended; logged INTERRUPTED")
    listed = ", ".join(f"'{run_id}'" for run_id in queued)
    rows_of_queued = rows_once_there(
        daemons, f"SELECT STATUS, MESSAGE FROM APP1.ADM_JOB_LOG WHERE RUN_ID IN ({listed})", 2, "the queued runs' rows"
    )
    for row in rows_of_queued:
        assert row["STATUS"] == "INTERRUPTED"
        assert "not started: SCHED ended (killed?) while this run waited in its queue" in row["MESSAGE"]
    attempts = rows_once_there(
        daemons,
        f"SELECT ATTEMPT, STATUS, MESSAGE FROM APP1.ADM_JOB_LOG WHERE RUN_ID = '{failing}' ORDER BY ATTEMPT",
        2,
        "the failed run's second attempt logged",
    )
    assert [(a["ATTEMPT"], a["STATUS"]) for a in attempts] == [(1, "FAILED"), (2, "INTERRUPTED")]
    assert "retry 2 not started: SCHED ended (killed?)" in attempts[1]["MESSAGE"]
    # the run that held the worker is resolved by its commit marker, which waits for the killed worker's session
    # to end (its statement sleeps 30 s): its in-flight file goes then, possibly after the rows above were logged
    running = daemons.paths.tmp / "sched-running"
    wait_for(lambda: not list(running.iterdir()), 90, what="every in-flight run of the killed SCHED resolved")


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` with one file until no byte more fits; the file, to remove later."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"x" * size)
    return filler


@pytest.mark.slow
@pytest.mark.root  # mounts a tmpfs in a mount namespace of its own
def test_a_full_tmp_loses_no_run_and_frees_every_job_and_all_rows_arrive_once_space_returns(
    daemons_small_tmp: DaemonSet,
) -> None:
    daemons = daemons_small_tmp
    sched = daemons.procs["sched"]
    add_job(daemons.inst, "APP1", 5, "EVERY_SECOND", INTERVAL_SECONDS=1, OVERLAP_POLICY="SKIP")
    daemons.inst.redctl("reload")
    wait_for(lambda: rows(daemons, "SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 5"), 30, what="first runs logged")
    tmp_seen_by_sched = Path(f"/proc/{sched.pid}/root") / daemons.paths.tmp.relative_to("/")
    filler = fill(tmp_seen_by_sched)
    sched.wait_log("cannot write the spool")
    before = sched.log.count("job APP1.EVERY_SECOND run")

    def runlog() -> dict[str, Any]:
        return dict(show(daemons)["sched"]["runlog"])

    # runs go on while the disk is full: JMON hears of each end (an unfreed job would be skipped as overlapping)
    wait_for(lambda: sched.log.count("job APP1.EVERY_SECOND run") >= before + 3, 30, what="3 more runs")
    assert "No space left on device" in runlog()["spool_error"]
    assert "run log spool failing: No space left on device" in daemons.inst.redctl("show").stdout
    assert sched.log.count("cannot write the spool") == 1  # said once, not once per row
    filler.unlink()
    sched.wait_log("the spool can be written again")
    wait_for(lambda: not runlog()["spool_error"], 10, what="the spool problem gone from redctl show")
    finished = set(re.findall(r"job APP1\.EVERY_SECOND run (\w+): OK", sched.log))

    def logged() -> set[str]:
        found = rows(daemons, "SELECT RUN_ID FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 5 AND STATUS = 'OK'")
        return {str(r["RUN_ID"]) for r in found}

    wait_for(lambda: finished <= logged(), 30, what="every finished run's row in ADM_JOB_LOG")
    assert sched.stop() == 0
    counts = rows(daemons, "SELECT RUN_ID, COUNT(*) AS N FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 5 GROUP BY RUN_ID")
    assert all(r["N"] == 1 for r in counts), counts  # and none twice


def test_a_jmon_restarted_while_a_tick_runs_does_not_start_that_tick_again(daemons: DaemonSet) -> None:
    """The run in flight has no log row until it ends, so a restarted JMON finds its tick still due (within the
    grace) and hands it to SCHED again: before, SCHED started the tick a second time beside the first."""
    add_job(
        daemons.inst,
        "APP1",
        5,
        "HOURLY_LOAD",
        JOB_TYPE="SQL",
        COMMAND="EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(12)",
        INTERVAL_SECONDS=600,
        GRACE_SECONDS=120,
        OVERLAP_POLICY="SKIP",
    )
    daemons.inst.db().execute(  # the previous run, 596 s ago: the next tick is due in 4 s
        "INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, SCHEDULED_AT, STATUS) VALUES "
        "('before', 5, ADD_SECONDS(CURRENT_TIMESTAMP, -596), 'OK')"
    )
    daemons.inst.db().commit()

    def restart_jmon() -> None:
        os.kill(daemons.procs["jmon"].pid, signal.SIGKILL)
        daemons.procs["jmon"].close()
        daemons.start("jmon")  # reads the newest SCHEDULED_AT of each job from the log

    def running_ids() -> list[str]:
        entry = next(e for e in show(daemons)["entries"] if e["key"] == ["JOB", "APP1", 5])
        return list(entry["running"])

    restart_jmon()
    first = wait_for(running_ids, 30, what="the tick's run in flight")[0]
    restart_jmon()
    # the restarted JMON learns the run in flight from SCHED and counts its tick as done: the tick neither runs
    # again nor is skipped as OVERLAP beside its own run (SCHED would also refuse to start it twice)
    daemons.procs["jmon"].wait_log(f"run {first} of APP1.5 is in flight in SCHED; its job waits for it")
    assert running_ids() == [first]
    logged = wait_for(
        lambda: rows(daemons, "SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 5 AND RUN_ID <> 'before'"),
        60,
        what="the run's row",
    )
    seen = [(r["RUN_ID"], r["STATUS"], r["SKIP_REASON"]) for r in logged]
    assert seen == [(first, "OK", None)], seen  # no OVERLAP row for the tick beside its own run
    assert daemons.procs["sched"].log.count("job APP1.HOURLY_LOAD run") == 1  # one run of the tick, not two
    wait_for(lambda: not running_ids(), 30, what="the job free once its run ended")


def test_a_run_whose_row_reached_the_database_before_sched_was_killed_is_not_logged_again(daemons: DaemonSet) -> None:
    """The run log's writer inserts a row as soon as it is spooled; the run's in-flight record is removed after. A
    kill -9 in between left the record of a run whose row was in ADM_JOB_LOG, and the next start logged it again:
    INTERRUPTED beside its OK row. That state is made here by hand: the row there, the record left."""
    add_job(daemons.inst, "APP1", 9, "QUICK", INTERVAL_SECONDS=3600)
    daemons.inst.redctl("reload")
    daemons.inst.redctl("start_job", "APP1.9")
    done = rows_once_there(
        daemons, "SELECT RUN_ID, STATUS FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 9", 1, "the run's row in ADM_JOB_LOG"
    )
    run_id = str(done[0]["RUN_ID"])
    assert done[0]["STATUS"] == "OK"
    assert daemons.procs["sched"].stop() == 0
    request = {
        "run_id": run_id,
        "kind": "JOB",
        "schema": "APP1",
        "id": 9,
        "name": "QUICK",
        "job_type": "NOOP",
        "scheduled_at": time.time() - 5,
    }
    record = {"request": request, "started_at": time.time() - 5, "worker": "DEFAULT-1"}
    (daemons.paths.tmp / "sched-running" / f"{run_id}.run").write_text(json.dumps(record))
    daemons.procs["sched"].close()
    daemons.start("sched")
    sched = daemons.procs["sched"]
    sched.wait_log(f"run {run_id} was in flight when SCHED ended")
    sched.wait_log("1 row(s) for APP1.ADM_JOB_LOG not written: the table has a row of their keys already")
    logged = rows(daemons, f"SELECT STATUS FROM APP1.ADM_JOB_LOG WHERE RUN_ID = '{run_id}'")
    assert [r["STATUS"] for r in logged] == ["OK"]
