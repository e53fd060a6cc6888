"""Scheduling end to end: `redctl start_trace` runs devdb, SCHED and JMON of a real instance; jobs are defined in
the database and the redctl commands steer them, exactly as an operator would. What a user would see is checked:
rows in ADM_JOB_LOG / ADM_WATCHER_LOG / ADM_JMON_LOAD, and redctl's output and exit codes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redpss.sql
from redpss.core.paths import InstancePaths
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, add_job, add_watcher, instance_config, started_instance
from tests.support.wait import wait_for

SLEEP = "EXECUTE SCRIPT REDPSS_DEVDB.SLEEP({})"


@pytest.fixture
def inst(instance: InstancePaths, tmp_path: Path) -> Iterator[RunningInstance]:
    with started_instance(instance, tmp_path, "db_register", "APP1") as running:
        yield running


def job_log(inst: RunningInstance, job_id: int) -> list[dict[str, Any]]:
    return inst.rows(f"SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {job_id} ORDER BY SCHEDULED_AT, ATTEMPT")


def runs(inst: RunningInstance, job_id: int, status: str = "OK") -> list[dict[str, Any]]:
    return [r for r in job_log(inst, job_id) if r["STATUS"] == status]


def show(inst: RunningInstance) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(inst.redctl("show", "--json").stdout)
    return data


def entry(inst: RunningInstance, job_id: int, kind: str = "JOB") -> dict[str, Any]:
    return next(e for e in show(inst)["entries"] if e["key"] == [kind, "APP1", job_id])


def let_runs_pass(inst: RunningInstance, witness_id: int, count: int = 2) -> None:
    """Wait until the 1 s witness job has run `count` more times: a window in which anything due would have come,
    measured by the scheduler itself instead of a fixed sleep."""
    seen = len(runs(inst, witness_id))
    wait_for(lambda: len(runs(inst, witness_id)) >= seen + count, 30, what=f"{count} more runs of witness job")


def test_interval_job_runs_on_time_and_is_logged(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 1, "EVERY_SECOND", INTERVAL_SECONDS=1)
    inst.redctl("reload")
    wait_for(lambda: len(runs(inst, 1)) >= 3, 30, what="three runs of job 1")
    for row in runs(inst, 1)[:3]:
        assert row["RUN_TRIGGER"] == "SCHEDULE" and row["ATTEMPT"] == 1 and row["POOL"] == "DEFAULT"
        assert row["WORKER"].startswith("DEFAULT-")
        started = time.mktime(time.strptime(row["STARTED_AT"][:19], "%Y-%m-%d %H:%M:%S"))
        scheduled = time.mktime(time.strptime(row["SCHEDULED_AT"][:19], "%Y-%m-%d %H:%M:%S"))
        assert started - scheduled <= 1  # whole seconds: on time, not a poll interval late
    times = [row["SCHEDULED_AT"] for row in runs(inst, 1)[:3]]
    assert len(set(times)) == 3


def test_cron_job_with_seconds_runs(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 2, "CRON_EVERY_2S", INTERVAL_SECONDS=None, CRON_EXPR="* * * * * */2")
    inst.redctl("reload")
    wait_for(lambda: len(runs(inst, 2)) >= 2, 30, what="two cron runs of job 2")
    seconds = [int(r["SCHEDULED_AT"][17:19]) for r in runs(inst, 2)]
    assert all(s % 2 == 0 for s in seconds)


def test_sql_job_writes_in_the_database_and_a_failing_one_is_logged_failed(inst: RunningInstance) -> None:
    inst.db().execute("CREATE TABLE APP1.BEATS (T TIMESTAMP)")
    add_job(inst, "APP1", 3, "INSERT_BEAT", JOB_TYPE="SQL", COMMAND="INSERT INTO APP1.BEATS VALUES (CURRENT_TIMESTAMP)")
    add_job(inst, "APP1", 4, "BROKEN", JOB_TYPE="SQL", COMMAND="SELECT * FROM APP1.NO_SUCH_TABLE")
    inst.redctl("reload")
    wait_for(lambda: runs(inst, 3) and runs(inst, 4, "FAILED"), 30, what="runs of jobs 3 and 4")
    assert inst.db().fetchall("SELECT COUNT(*) FROM APP1.BEATS")[0][0] >= 1
    failed = runs(inst, 4, "FAILED")[0]
    assert "NO_SUCH_TABLE" in failed["MESSAGE"].upper()


def test_toggle_stops_and_restarts_a_job_and_reload_applies_interval_changes(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 5, "TOGGLED", INTERVAL_SECONDS=1)
    add_job(inst, "APP1", 50, "WITNESS", INTERVAL_SECONDS=1)
    inst.redctl("reload")
    wait_for(lambda: runs(inst, 5), 30, what="job 5 running")
    out = inst.redctl("toggle_db_job", "APP1.5").stdout
    assert "job APP1.5 (TOGGLED) is now inactive" in out
    wait_for(lambda: not entry(inst, 5)["scheduled"], 10, what="job 5 unscheduled")
    count = len(job_log(inst, 5))
    let_runs_pass(inst, 50, 3)  # a window in which an active 1 s job would run at least twice: nothing may come
    assert len(job_log(inst, 5)) <= count + 1  # at most the run that was already on its way
    assert "is now active" in inst.redctl("toggle_db_job", "5").stdout
    wait_for(lambda: len(runs(inst, 5)) > count + 1, 30, what="job 5 running again")
    inst.db().execute("UPDATE APP1.ADM_JOBS SET INTERVAL_SECONDS = 3600 WHERE JOB_ID = 5")
    wait_for(lambda: entry(inst, 5)["timing_pending"], 10, what="the interval change noticed as pending")
    assert entry(inst, 5)["interval_seconds"] == 1
    assert "interval/cron changes applied" in inst.redctl("reload").stdout
    assert entry(inst, 5)["interval_seconds"] == 3600
    assert entry(inst, 5)["next_due"] > time.time() + 3000


def test_killed_worker_is_replaced_and_its_run_recorded_as_failed(inst: RunningInstance) -> None:
    add_job(
        inst, "APP1", 6, "LONG", JOB_TYPE="SQL", COMMAND=SLEEP.format(60), INTERVAL_SECONDS=3600, TIMEOUT_SECONDS=300
    )
    inst.redctl("reload")
    inst.redctl("start_job", "APP1.6")

    def running_worker() -> dict[str, Any] | None:
        pools = show(inst)["sched"]["pools"]
        return next((w for p in pools for w in p["workers"] if w["job"] == "APP1.LONG"), None)

    worker = wait_for(running_worker, 30, what="job 6 running in a worker")
    os.kill(worker["pid"], signal.SIGKILL)
    failed = wait_for(lambda: runs(inst, 6, "FAILED"), 30, what="the killed run logged")[0]
    assert f"exited with code {-signal.SIGKILL}" in failed["MESSAGE"]
    assert "replaced" in failed["MESSAGE"]
    pids = [w["pid"] for p in show(inst)["sched"]["pools"] for w in p["workers"]]
    assert worker["pid"] not in pids and len(pids) == 4


def test_timeout_ends_a_hung_run(inst: RunningInstance) -> None:
    add_job(
        inst, "APP1", 7, "HANGS", JOB_TYPE="SQL", COMMAND=SLEEP.format(120), INTERVAL_SECONDS=3600, TIMEOUT_SECONDS=1
    )
    inst.redctl("reload")
    inst.redctl("start_db_job", "APP1.7")
    row = wait_for(lambda: runs(inst, 7, "TIMEOUT"), 30, what="job 7 timed out")[0]
    assert row["RUN_TRIGGER"] == "MANUAL"
    assert "timed out" in row["MESSAGE"]


def test_overlap_skip_is_recorded_with_its_reason(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 8, "SLOW", JOB_TYPE="SQL", COMMAND=SLEEP.format(3), INTERVAL_SECONDS=1)
    inst.redctl("reload")
    skipped = wait_for(lambda: runs(inst, 8, "SKIPPED"), 30, what="an overlapping tick of job 8 skipped")
    assert skipped[0]["SKIP_REASON"] == "OVERLAP"


def test_suspend_survives_a_restart_until_resume(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 9, "SUSPENDABLE", INTERVAL_SECONDS=1)
    inst.redctl("reload")
    wait_for(lambda: runs(inst, 9), 30, what="job 9 running")
    assert "suspended" in inst.redctl("suspend").stdout
    wait_for(lambda: runs(inst, 9, "SKIPPED"), 30, what="a tick skipped while suspended")
    assert runs(inst, 9, "SKIPPED")[-1]["SKIP_REASON"] == "SUSPENDED"
    assert inst.stop() == 0
    inst.start()
    assert show(inst)["suspended"] is True
    ok_before = len(runs(inst, 9))
    wait_for(lambda: len(runs(inst, 9, "SKIPPED")) >= 3, 30, what="ticks skipped after the restart")
    assert len(runs(inst, 9)) == ok_before
    assert "resumed" in inst.redctl("resume").stdout
    wait_for(lambda: len(runs(inst, 9)) > ok_before, 30, what="job 9 running after resume")


def test_start_trace_with_S_starts_suspended(instance: InstancePaths, tmp_path: Path) -> None:
    instance.config_file.write_text(instance_config())
    running = RunningInstance(instance, tmp_path)
    try:
        running.start("-S")
        assert show(running)["suspended"] is True
        assert "SUSPENDED" in running.redctl("show").stdout
        assert running.stop() == 0
    finally:
        running.close()


def test_missed_runs_across_a_jmon_restart_follow_each_jobs_policy(inst: RunningInstance, tmp_path: Path) -> None:
    assert inst.stop() == 0
    # RED-PSS is down, the database is not: the jobs are defined and last ran 3 hours (18 intervals) ago.
    database = DaemonProcess("redpss.devdb", inst.paths, tmp_path / "devdb-alone")
    try:
        database.wait_ready()
        add_job(inst, "APP1", 10, "SKIP_MISSED", INTERVAL_SECONDS=600, MISSED_POLICY="SKIP", GRACE_SECONDS=60)
        add_job(inst, "APP1", 11, "RUN_MISSED", INTERVAL_SECONDS=600, MISSED_POLICY="RUN_ONCE", GRACE_SECONDS=60)
        add_job(inst, "APP1", 12, "WITNESS", INTERVAL_SECONDS=1)
        for job_id in (10, 11):
            inst.db().execute(
                "INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, SCHEDULED_AT, STATUS) VALUES "
                f"('old-{job_id}', {job_id}, ADD_SECONDS(CURRENT_TIMESTAMP, -10800), 'OK')"
            )
        inst.db().close()
        assert database.stop() == 0
    finally:
        database.close()
    inst.start()
    skipped = wait_for(lambda: runs(inst, 10, "SKIPPED"), 30, what="job 10's missed runs recorded as one skip")
    ran = wait_for(lambda: runs(inst, 11), 30, what="job 11's missed runs made up once")
    let_runs_pass(inst, 12, 3)  # any further (wrong) replays would have come by now
    assert len(runs(inst, 10, "SKIPPED")) == 1 and skipped[0]["SKIP_REASON"] == "MISSED"
    assert "18 run(s) missed" in skipped[0]["MESSAGE"]
    assert len([r for r in job_log(inst, 11) if r["RUN_ID"] != "old-11"]) == 1
    assert ran[-1]["STATUS"] == "OK"


def test_missed_runs_still_follow_their_policy_when_jmons_first_read_of_the_definitions_fails(
    inst: RunningInstance, tmp_path: Path
) -> None:
    """JMON reads the run logs at start, then the definitions. When that first read failed (the database just back,
    a view that cannot be read), the run logs' times were dropped and the next poll scheduled every job from now:
    the ticks missed while RED-PSS was down were neither skipped (SKIP) nor made up (RUN_ONCE), without a row."""
    assert inst.stop() == 0
    database = DaemonProcess("redpss.devdb", inst.paths, tmp_path / "devdb-alone")
    try:
        database.wait_ready()
        add_job(inst, "APP1", 10, "SKIP_MISSED", INTERVAL_SECONDS=600, MISSED_POLICY="SKIP", GRACE_SECONDS=60)
        inst.db().execute(
            "INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, SCHEDULED_AT, STATUS) VALUES "
            "('old-10', 10, ADD_SECONDS(CURRENT_TIMESTAMP, -10800), 'OK')"
        )
        inst.db().execute("DROP TABLE APP1.ADM_WATCHER")  # REDSYS.ALL_ADM_WATCHER cannot be read: the first poll fails
        inst.db().commit()
        inst.db().close()
        assert database.stop() == 0
    finally:
        database.close()
    inst.start()
    wait_for(lambda: "reading job definitions failed" in inst.output, 30, what="JMON's first poll failing")
    schema = (Path(redpss.sql.__file__).parent / "app" / "001_app_schema.sql").read_text()
    create = next(part for part in schema.split(";") if "{{SCHEMA}}.ADM_WATCHER (" in part)
    inst.db().execute(create.replace("{{SCHEMA}}", "APP1"))
    inst.db().commit()
    skipped = wait_for(lambda: runs(inst, 10, "SKIPPED"), 60, what="job 10's missed runs recorded as one skip")
    assert skipped[0]["SKIP_REASON"] == "MISSED" and "18 run(s) missed" in skipped[0]["MESSAGE"]


def test_watcher_error_blocks_until_reset(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 12, "TARGET", INTERVAL_SECONDS=3600)
    add_watcher(
        inst,
        "APP1",
        1,
        "BROKEN_CHECK",
        CONDITION_TYPE="QUERY",
        CONDITION_TEXT="SELECT * FROM APP1.NOPE",
        TARGET_JOB_ID=12,
    )
    inst.redctl("reload")
    wait_for(lambda: "BROKEN_CHECK" in inst.redctl("we_list_error").stdout, 30, what="the executor error listed")
    errors = json.loads(inst.redctl("we_list_error", "--json").stdout)
    assert errors[0]["WATCHER_ID"] == 1 and "NOPE" in errors[0]["ERROR_MESSAGE"].upper()
    wait_for(lambda: entry(inst, 1, "WATCHER")["blocked"], 10, what="the watcher blocked")

    def watcher_runs() -> list[dict[str, Any]]:
        return inst.rows("SELECT * FROM APP1.ADM_WATCHER_LOG WHERE WATCHER_ID = 1")

    wait_for(lambda: any(r["SKIP_REASON"] == "BLOCKED" for r in watcher_runs()), 30, what="a BLOCKED skip")
    executed = [r for r in watcher_runs() if r["STATUS"] != "SKIPPED"]
    assert "reset the executor error of 1 watcher(s)" in inst.redctl("we_reset_error", "APP1.1").stdout
    # The reset error is no longer listed (the still-broken watcher may already have failed anew: another RUN_ID).
    listed = {e["RUN_ID"] for e in json.loads(inst.redctl("we_list_error", "--json").stdout)}
    assert errors[0]["RUN_ID"] not in listed
    wait_for(
        lambda: len([r for r in watcher_runs() if r["STATUS"] != "SKIPPED"]) > len(executed),
        30,
        what="the watcher executed again after the reset",
    )


def test_query_watcher_starts_its_target_job(inst: RunningInstance) -> None:
    inst.db().execute("CREATE TABLE APP1.SIGNAL (READY BOOLEAN)")
    add_job(inst, "APP1", 13, "ON_SIGNAL", INTERVAL_SECONDS=3600)
    add_watcher(
        inst,
        "APP1",
        2,
        "SIGNAL_SET",
        CONDITION_TYPE="QUERY",
        CONDITION_TEXT="SELECT 1 FROM APP1.SIGNAL WHERE READY",
        TARGET_JOB_ID=13,
    )
    inst.redctl("reload")
    wait_for(lambda: inst.rows("SELECT * FROM APP1.ADM_WATCHER_LOG WHERE WATCHER_ID = 2"), 30, what="watcher runs")
    assert not runs(inst, 13)
    inst.db().execute("INSERT INTO APP1.SIGNAL VALUES (TRUE)")
    row = wait_for(lambda: runs(inst, 13), 30, what="the target job started by the watcher")[0]
    assert row["RUN_TRIGGER"] == "WATCHER"
    met = inst.rows("SELECT * FROM APP1.ADM_WATCHER_LOG WHERE WATCHER_ID = 2 AND CONDITION_MET")
    assert met[0]["TARGET_RUN_ID"] == row["RUN_ID"]


def test_a_job_started_by_its_schedule_and_by_a_watcher_never_runs_twice_at_once(inst: RunningInstance) -> None:
    """OVERLAP_POLICY QUEUE with two sources of starts: the job's own ticks (JMON) and a watcher whose condition
    always holds (SCHED starts its target). Each keeps one start waiting while a run is in flight; when the run ends,
    both must not start at once: JMON hears of the watcher's waiting run when SCHED queues it, not at its start."""
    add_job(
        inst, "APP1", 15, "SERIAL", JOB_TYPE="SQL", COMMAND=SLEEP.format(4), INTERVAL_SECONDS=2, OVERLAP_POLICY="QUEUE"
    )
    add_watcher(
        inst, "APP1", 4, "ALWAYS", CONDITION_TYPE="QUERY", CONDITION_TEXT="SELECT 1 FROM DUAL", TARGET_JOB_ID=15
    )
    inst.redctl("reload")
    wait_for(lambda: runs(inst, 15)[3:], 90, interval=0.5, what="four runs of job 15")
    done = runs(inst, 15)
    assert "WATCHER" in {row["RUN_TRIGGER"] for row in done}
    # while a watcher's start waits, JMON's queued tick waits too: no run started beside another
    spans = sorted((row["STARTED_AT"], row["ENDED_AT"], row["RUN_TRIGGER"]) for row in done)
    for (_, ended, _), (started, _, _) in itertools.pairwise(spans):
        assert started >= ended, spans  # each run began after the one before had ended
    skipped = [row for row in job_log(inst, 15) if row["STATUS"] == "SKIPPED"]
    assert {row["SKIP_REASON"] for row in skipped} == {"OVERLAP"}  # the firings and ticks beyond the one waiting


def test_statistics_rows_are_written_per_pool(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 14, "COUNTED", INTERVAL_SECONDS=1)
    inst.redctl("reload")
    wait_for(lambda: inst.rows("SELECT * FROM REDSYS.ADM_JMON_JOBLOG WHERE ID = 14"), 30, what="JOBLOG rows")
    load = inst.rows("SELECT * FROM REDSYS.ADM_JMON_LOAD")
    assert {r["POOL"] for r in load} == {"DEFAULT", "LOADER", "ACTION"}
    sizes = {r["POOL"]: r["POOL_SIZE"] for r in load}
    assert sizes == {"DEFAULT": 2, "LOADER": 1, "ACTION": 1}
    assert any(r["RUNS_STARTED"] and r["LATENESS_MAX_MS"] is not None for r in load)
    # Rows written before the first successful poll (REDSYS still being installed) rightly have none.
    assert all(r["LAST_POLL_OK"] for r in load if r["RUNS_STARTED"])


def test_listing_commands_and_their_json(inst: RunningInstance) -> None:
    add_job(inst, "APP1", 15, "LISTED", INTERVAL_SECONDS=3600, POOL="LOADER")
    add_watcher(
        inst,
        "APP1",
        3,
        "LISTED_W",
        CONDITION_TYPE="FILE",
        CONDITION_TEXT="x/*.csv",
        TARGET_JOB_ID=15,
        INTERVAL_SECONDS=3600,
    )
    table = inst.redctl("list_db_jobs").stdout
    assert table.splitlines()[0].split()[:4] == ["SCHEMA_NAME", "JOB_ID", "JOB_NAME", "POOL"]
    assert "LISTED" in table and "LOADER" in table
    jobs = json.loads(inst.redctl("list_db_jobs", "--json").stdout)
    assert [j["JOB_NAME"] for j in jobs if j["JOB_ID"] == 15] == ["LISTED"]
    watchers = json.loads(inst.redctl("list_db_watcher", "--json").stdout)
    assert watchers[0]["WATCHER_NAME"] == "LISTED_W"
    assert "LISTED_W" in inst.redctl("list_db_watcher").stdout
    assert "is now inactive" in inst.redctl("toggle_db_watcher", "APP1.3").stdout
    version = json.loads(inst.redctl("version", "--json").stdout)
    assert version["pyexasol"] and version["redpss"]
    watched = inst.redctl("watch", "--count", "1", "--interval", "0.1").stdout
    assert "instance TST1: RUNNING" in watched and "DEFAULT-1[" in watched


def test_redctl_errors_are_clear_and_non_zero(inst: RunningInstance, redhome: Path) -> None:
    result = inst.redctl("start_job", "APP1.999", check=False)
    assert result.returncode == 2 and "no job APP1.999 in any registered schema" in result.stderr
    result = inst.redctl("toggle_db_job", "x.y", check=False)
    assert result.returncode == 2 and "is not a job id: write SCHEMA.ID" in result.stderr
    result = inst.redctl("-i", "tst-1", "show", check=False)
    assert result.returncode == 3 and "instance name 'tst-1' is not valid" in result.stderr
    result = inst.redctl("-i", "NOPE", "show", check=False)
    assert result.returncode == 3 and "instance NOPE does not exist" in result.stderr
    assert inst.redctl("-h").stdout.count("start_db_job") >= 1
    status = inst.redctl("status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "not under systemd; asked the daemons directly" in status.stdout
    for program in ("redpss-devdb", "redpss-sched", "redpss-jmon"):
        assert re.search(rf"{program}\s+running", status.stdout), program
    assert inst.stop() == 0
    status = inst.redctl("status", "--json", check=False)
    assert status.returncode == 3
    running = {d["program"]: d["running"] for d in json.loads(status.stdout)["daemons"]}
    assert {"redpss-devdb", "redpss-sched", "redpss-jmon"} <= set(running)  # and whatever else the instance runs
    assert not any(running.values())
    result = inst.redctl("show", check=False)
    assert result.returncode == 1 and "JMON of instance TST1 is not running" in result.stderr
    assert "redctl start" in result.stderr
