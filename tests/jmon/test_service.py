"""JMON as a daemon: devdb, SCHED and JMON of one instance as separate real processes (as systemd runs them), each
started with a NOTIFY_SOCKET the test binds, steered through the real control socket and redctl, checked by what an
operator sees: the job log, `redctl show`, the daemon's log, its READY/STATUS/WATCHDOG notifications and exit code.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.wire import BlockingClient, Message
from tests.support.daemon_set import DaemonSet
from tests.support.instance_runner import add_job, instance_config
from tests.support.notify import NotifyListener
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow  # every test starts real daemon processes (several seconds each)


class Daemons(DaemonSet):
    """The daemons of one instance, each its own process, with JMON's control socket and `redctl show` at hand."""

    def jmon_request(self, op: str, **fields: Any) -> Message:
        """One raw request on JMON's control socket; the reply as it came (ok or not)."""
        with BlockingClient(self.paths.tmp / "jmon.sock", instance_secret(self.paths, create=False), "test") as client:
            reply: Message = client._exchange({"op": op, **fields})
        return reply

    def show(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.inst.redctl("show", "--json").stdout)
        return data

    def entry(self, job_id: int) -> dict[str, Any]:
        return next(e for e in self.show()["entries"] if e["key"] == ["JOB", "APP1", job_id])

    def job_log(self, job_id: int) -> list[dict[str, Any]]:
        return self.inst.rows(f"SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {job_id} ORDER BY SCHEDULED_AT")


@pytest.fixture
def daemons(instance: InstancePaths, tmp_path: Path) -> Iterator[Daemons]:
    instance.config_file.write_text(instance_config())
    running = Daemons(instance, tmp_path)
    try:
        running.start("devdb")
        yield running
    finally:
        running.close()


def registered(daemons: Daemons) -> Daemons:
    daemons.inst.redctl("db_register", "APP1")
    return daemons


def secret(daemons: Daemons) -> str:
    return instance_secret(daemons.paths, create=False)


def wait_status(notify: NotifyListener, fragment: str, timeout: float = 30.0) -> dict[str, str]:
    """The first STATUS notification containing `fragment` (received so far or arriving within `timeout`)."""

    def seen() -> dict[str, str] | None:
        return next((m for m in notify.messages if fragment in m.get("STATUS", "")), None)

    def arrived() -> dict[str, str] | None:
        if (found := seen()) is None:
            notify.wait_for("STATUS", nth=notify.count("STATUS") + 1, timeout=timeout)
        return found or seen()

    return wait_for(arrived, timeout, what=f"STATUS with {fragment!r}")


def test_unreachable_sched_makes_jmon_unhealthy_and_skipped_ticks_reach_the_log_later(daemons: Daemons) -> None:
    registered(daemons)
    add_job(daemons.inst, "APP1", 1, "EVERY_SECOND", INTERVAL_SECONDS=1)
    jmon = daemons.start("jmon", "--sched-outage-limit", "2", env={"WATCHDOG_USEC": "400000"})
    assert "SCHED did not answer within 2 s of JMON's start" in jmon.log
    first = wait_status(jmon.notify, "UNHEALTHY: SCHED unreachable for")["STATUS"]
    # From now on no watchdog ping may come: wait until the status has counted two more seconds, then compare.
    pings = jmon.notify.count("WATCHDOG")
    seconds = int(first.split("UNHEALTHY: SCHED unreachable for ")[1].split(" s")[0])
    wait_status(jmon.notify, f"UNHEALTHY: SCHED unreachable for {seconds + 2} s", timeout=10)
    assert jmon.notify.count("WATCHDOG") == pings  # systemd's watchdog would now restart JMON
    ping = daemons.jmon_request("ping")
    assert ping["healthy"] is False and "UNHEALTHY: SCHED unreachable" in ping["status"]
    # a start now is refused as unavailable (the API's 503, nothing started), not as a failure without a code
    start = daemons.jmon_request("start_db_job", kind="JOB", schema="APP1", id=1, by="test")
    assert (start["ok"], start["code"], start["error"]) == (False, "UNAVAILABLE", "SCHED is not reachable")
    daemons.start("sched")
    wait_status(jmon.notify, "SCHED connected")
    jmon.notify.wait_for("WATCHDOG", "1", nth=pings + 1, timeout=10)  # healthy again: the pings resume
    assert daemons.jmon_request("ping")["healthy"] is True
    skipped = wait_for(
        lambda: [r for r in daemons.job_log(1) if r["SKIP_REASON"] == "SCHED_UNAVAILABLE"],
        30,
        what="the ticks skipped while SCHED was away, in the job log",
    )
    assert "SCHED is not reachable" in skipped[0]["MESSAGE"]
    wait_for(lambda: [r for r in daemons.job_log(1) if r["STATUS"] == "OK"], 30, what="job 1 running again")


def test_a_database_that_stops_answering_does_not_stop_the_watchdog_pings(daemons: Daemons) -> None:
    """The poll ran inside the tick, and the main loop pings after each tick: a database that stops answering on an
    open connection held a query for the socket timeout (30 s, the watchdog's interval) and systemd killed JMON."""
    registered(daemons)
    daemons.start("sched")
    jmon = daemons.start("jmon", env={"WATCHDOG_USEC": "400000"})  # a ping due every 0.2 s
    devdb = daemons.procs["devdb"]
    os.kill(devdb.pid, signal.SIGSTOP)  # connections stay open; nothing is answered
    try:
        pings = jmon.notify.count("WATCHDOG")
        # polls are due every 0.5 s, so one waits on the database from the first second on: 8 of the 30 pings due in
        # these 6 s must come (a poll in the tick would hold them all, for the 30 s of the socket timeout)
        jmon.notify.wait_for("WATCHDOG", "1", nth=pings + 8, timeout=6.0)
    finally:
        os.kill(devdb.pid, signal.SIGCONT)
    assert daemons.jmon_request("ping")["healthy"] is True


def test_a_restarted_jmon_starts_no_second_run_beside_one_still_running(daemons: Daemons) -> None:
    """JMON learned which jobs are busy only from its own submissions: started anew while a run went on in SCHED,
    it handed the job's next tick over as free, and a job with OVERLAP_POLICY SKIP ran twice at once."""
    registered(daemons)
    forever = 'SELECT SUM(a."RANGE" * b."RANGE") FROM range(1000000) a, range(1000000) b'
    add_job(daemons.inst, "APP1", 5, "LONG", JOB_TYPE="SQL", COMMAND=forever, INTERVAL_SECONDS=1, TIMEOUT_SECONDS=20)
    sched = daemons.start("sched")
    first = daemons.start("jmon")

    def running() -> list[str]:
        with BlockingClient(("127.0.0.1", daemons.inst.config.redctl.sched_service_port), secret(daemons), "t") as c:
            status = c.request("status")
        return [w["run_id"] for pool in status["pools"] for w in pool["workers"] if w["run_id"]]

    def overlaps() -> int:
        return len([r for r in daemons.job_log(5) if r["SKIP_REASON"] == "OVERLAP"])

    [run_id] = wait_for(running, 30, what="job 5 running")
    first.close()  # SIGKILL
    before = overlaps()
    restarted = daemons.start("jmon")
    wait_for(lambda: overlaps() >= before + 3, 30, what="ticks skipped for the run still going")
    assert running() == [run_id]  # no second run beside it
    assert f"run {run_id} of APP1.5 is in flight in SCHED; its job waits for it" in restarted.log
    os.kill(sched.pid, signal.SIGTERM)  # SCHED hands the endless run back at its stop


def test_a_start_logs_no_sched_unavailable_skip(daemons: Daemons) -> None:
    registered(daemons)
    # Due at once when JMON starts: its last scheduled run was an hour ago; the missed run is made up once.
    add_job(daemons.inst, "APP1", 2, "DUE_AT_START", INTERVAL_SECONDS=600, MISSED_POLICY="RUN_ONCE", GRACE_SECONDS=1)
    daemons.inst.db().execute(
        "INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, SCHEDULED_AT, STATUS) VALUES "
        "('old-2', 2, ADD_SECONDS(CURRENT_TIMESTAMP, -3600), 'OK')"
    )
    daemons.inst.db().commit()
    daemons.start("sched")
    daemons.start("jmon")
    wait_for(lambda: [r for r in daemons.job_log(2) if r["RUN_ID"] != "old-2"], 30, what="the made-up run logged")
    rows = [r for r in daemons.job_log(2) if r["RUN_ID"] != "old-2"]
    assert [(r["STATUS"], r["SKIP_REASON"]) for r in rows] == [("OK", None)]


def test_every_request_field_is_checked_with_a_clear_error(daemons: Daemons) -> None:
    registered(daemons)
    daemons.start("sched")
    jmon = daemons.start("jmon")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"op": "start_db_job", "id": "abc"}, "start_db_job: schema = None must be a schema name"),
        ({"op": "start_db_job", "schema": "APP1", "id": "abc"}, "start_db_job: id = 'abc' must be a whole number"),
        ({"op": "start_job", "schema": "APP1", "id": True}, "start_job: id = True must be a whole number"),
        ({"op": "start_job", "schema": "APP1", "id": -1}, "start_job: id = -1 must be a whole number"),
        ({"op": "start_job", "schema": ["APP1"], "id": 1}, "start_job: schema = ['APP1'] must be a schema name"),
        ({"op": "start_job", "schema": "A" * 100_000, "id": 1}, "start_job: schema = 'AAAA"),
        ({"op": "start_job", "kind": "WATCHER", "schema": "APP1", "id": 1}, "kind = 'WATCHER' is not allowed"),
        ({"op": "start_job", "schema": "APP1", "id": 1, "force": "yes"}, "force = 'yes' must be true or false"),
        ({"op": "start_job", "schema": "APP1", "id": 1, "colour": 1}, "start_job: unknown field(s) colour"),
        ({"op": "stats", "reset": 1}, "stats: reset = 1 must be true or false"),
        ({"op": "dance"}, "unknown request 'dance'"),
    ]
    for request, expected in cases:
        op = request.pop("op")
        reply = daemons.jmon_request(op, **request)
        assert reply["ok"] is False and expected in reply["error"], (request, reply)
        assert len(reply["error"]) < 400  # a huge field is not echoed back whole
    assert daemons.jmon_request("start_db_job", schema="APP1", id=99)["error"] == "no job 99 in schema APP1"
    assert daemons.jmon_request("ping")["ok"] is True  # the connection and the daemon are still fine
    assert "Traceback" not in jmon.log and "JMON: request" not in jmon.log


def test_suspended_means_no_manual_run_either_unless_forced(daemons: Daemons) -> None:
    registered(daemons)
    add_job(daemons.inst, "APP1", 3, "MANUAL_ONLY", INTERVAL_SECONDS=3600)
    daemons.start("sched")
    jmon = daemons.start("jmon")
    assert "suspended" in daemons.inst.redctl("suspend").stdout
    for command in ("start_db_job", "start_job"):
        refused = daemons.inst.redctl(command, "APP1.3", check=False)
        assert refused.returncode == 1
        assert "instance TST1 is suspended: no run starts, APP1.MANUAL_ONLY was not started" in refused.stderr
        assert "--force" in refused.stderr
    assert daemons.job_log(3) == []
    assert daemons.entry(3)["last_started"] is None
    forced = daemons.inst.redctl("start_db_job", "--force", "APP1.3")
    assert "despite the suspended instance (--force)" in forced.stdout
    jmon.wait_log("job APP1.MANUAL_ONLY started by redctl (")
    assert "while the instance is suspended (--force)" in jmon.log
    row = wait_for(lambda: [r for r in daemons.job_log(3) if r["STATUS"] == "OK"], 30, what="the forced run")[0]
    assert row["RUN_TRIGGER"] == "MANUAL"


def test_last_run_is_the_last_run_that_began_never_a_skipped_tick(daemons: Daemons) -> None:
    registered(daemons)
    add_job(daemons.inst, "APP1", 4, "HOURLY", INTERVAL_SECONDS=3600)
    add_job(daemons.inst, "APP1", 5, "SKIPPED_ONLY", INTERVAL_SECONDS=1)
    daemons.inst.redctl("suspend")
    daemons.start("sched")
    daemons.start("jmon")
    daemons.inst.redctl("start_db_job", "--force", "APP1.4")  # a manual run: it is the last run of job 4
    wait_for(lambda: daemons.entry(4)["last_started"], 30, what="job 4's manual run seen as begun")
    wait_for(lambda: daemons.job_log(5), 30, what="a skipped tick of job 5")
    assert {r["SKIP_REASON"] for r in daemons.job_log(5)} == {"SUSPENDED"}
    entry = daemons.entry(5)
    assert entry["last_scheduled"] is not None and entry["last_started"] is None
    table = daemons.inst.redctl("show").stdout.splitlines()
    header = table[2].split()
    assert header[5] == "LAST_RUN"
    skipped_row = next(line for line in table if "SKIPPED_ONLY" in line)
    manual_row = next(line for line in table if " HOURLY " in line)
    assert skipped_row.split()[5] == "-"  # only skipped ticks: no last run
    assert manual_row.split()[5] != "-"


def test_show_escapes_control_characters_and_json_keeps_the_name(daemons: Daemons) -> None:
    registered(daemons)
    name = "TWO\nLINES\x1b[31mRED" + "X" * 110  # 127 characters: JOB_NAME is VARCHAR(128)
    add_job(daemons.inst, "APP1", 6, name, INTERVAL_SECONDS=3600)
    daemons.start("sched")
    daemons.start("jmon")
    wait_for(lambda: any(e["key"] == ["JOB", "APP1", 6] for e in daemons.show()["entries"]), 30, what="job 6")
    assert daemons.entry(6)["name"] == name  # --json: the exact value
    table = daemons.inst.redctl("show").stdout
    line = next(line for line in table.splitlines() if "TWO" in line)
    assert "TWO\\nLINES\\x1b[31mRED" in line and "\x1b" not in table
    assert line.split()[1] == "APP1" and line.split()[2] == "6"  # the row stays one row, columns in place
    assert "..." in line and len(line) < 200
    listing = daemons.inst.redctl("list_db_jobs").stdout
    assert "TWO\\nLINES" in listing and "\x1b" not in listing


def test_before_db_install_jmon_says_once_what_is_missing_and_the_fix(daemons: Daemons) -> None:
    daemons.start("sched")
    jmon = daemons.start("jmon")
    for _ in range(3):
        reply = daemons.jmon_request("poll")
        assert reply["ok"] is False
    log = jmon.log
    assert log.count("REDSYS is not installed in the database at") == 1
    assert "run `redctl db_install`" in log
    assert "reading job definitions failed" not in log and "Traceback" not in log


def test_a_refused_login_stops_jmon_at_once_with_exit_3(daemons: Daemons) -> None:
    config = daemons.paths.config_file
    config.write_text(config.read_text().replace("exa_password = test-pw", "exa_password = not-the-password"))
    jmon = daemons.launch("jmon")
    assert jmon.process.wait(timeout=30) == 3  # a config error: no restart loop, no 60 s wait
    assert "login refused" in jmon.log and "check exa_username and exa_password" in jmon.log
    assert jmon.notify.count("READY") == 0
    result = daemons.inst.redctl("list_db_jobs", check=False)  # redctl says the same, at once
    assert result.returncode == 3 and "login refused" in result.stderr and "not reachable" not in result.stderr


def test_another_instances_database_is_refused_at_start(daemons: Daemons) -> None:
    config = daemons.paths.config_file
    config.write_text(config.read_text().replace("[DEFAULT]\n", "[DEFAULT]\nexa_dbname = OTHER_DB\n", 1))
    jmon = daemons.launch("jmon")
    assert jmon.process.wait(timeout=30) == 3
    assert "is 'EXA_DB', but exa_dbname = 'OTHER_DB'" in jmon.log
    result = daemons.inst.redctl("list_db_jobs", check=False)
    assert result.returncode == 3 and "exa_dbname = 'OTHER_DB'" in result.stderr


def test_sighup_rereads_the_config_and_says_what_needs_a_restart(daemons: Daemons) -> None:
    registered(daemons)
    daemons.start("sched")
    jmon = daemons.start("jmon")
    config = daemons.paths.config_file
    text = config.read_text()
    port = daemons.inst.config.redctl.sched_service_port
    text = text.replace("jmon_poll_interval = 0.5", "jmon_poll_interval = 3")
    text = text.replace(f"sched_service_port = {port}", f"sched_service_port = {port + 1}")
    config.write_text(text.replace("[redctl]\n", "[redctl]\nlog_level = DEBUG\n", 1))
    jmon.process.send_signal(signal.SIGHUP)
    jmon.wait_log("jmon reloaded")
    log = jmon.log
    assert "reload: [redctl] jmon_poll_interval: 0.5 -> 3.0 (applied)" in log
    assert "reload: [redctl] log_level: 'INFO' -> 'DEBUG' (applied)" in log
    assert (
        f"reload: [redctl] sched_service_port: {port} -> {port + 1}: takes effect only after a restart of JMON" in log
    )
    config.write_text(text.replace("jmon_poll_interval = 3", "jmon_poll_interval = soon"))
    jmon.process.send_signal(signal.SIGHUP)
    jmon.wait_log("reload failed; keeping the previous settings")
    assert "jmon_poll_interval = 'soon'" in jmon.log and "Traceback" not in jmon.log
    assert daemons.jmon_request("ping")["ok"] is True


def test_a_submission_that_reaches_sched_after_jmon_gave_up_starts_nothing(daemons: Daemons) -> None:
    """SCHED stopped past JMON's submit timeout: JMON logs the tick SKIPPED (SCHED_UNAVAILABLE). The submission still
    in SCHED's socket must not start a run after SIGCONT: the tick would be both skipped and run, and JMON, which took
    it for skipped, would start the next run of the job beside it."""
    registered(daemons)
    add_job(daemons.inst, "APP1", 9, "EVERY_SECOND", INTERVAL_SECONDS=1)
    sched = daemons.start("sched")
    jmon = daemons.start("jmon")

    def runs() -> list[dict[str, Any]]:
        return [r for r in daemons.job_log(9) if r["STATUS"] == "OK"]

    wait_for(runs, 30, what="job 9 running")
    os.kill(sched.pid, signal.SIGSTOP)
    try:
        jmon.wait_log("SCHED_UNAVAILABLE SCHED did not take the run", timeout=60)  # after JMON's 30 s submit timeout
        before = len(runs())
    finally:
        os.kill(sched.pid, signal.SIGCONT)
    wait_for(lambda: len(runs()) >= before + 2, 30, what="job 9 running again")
    wait_for(
        lambda: [r for r in daemons.job_log(9) if r["SKIP_REASON"] == "SCHED_UNAVAILABLE"],
        30,
        what="the tick JMON gave up on, logged as skipped",
    )
    ticks = [(r["SCHEDULED_AT"], r["STATUS"], r["SKIP_REASON"]) for r in daemons.job_log(9)]
    assert len({when for when, _, _ in ticks}) == len(ticks), ticks  # each tick once: run or skipped, never both
    [late] = [line for line in sched.log.splitlines() if "not started: the submission arrived" in line]
    run_id = late.split(" run ", 1)[1].split(" ", 1)[0]
    assert f"SCHED did not take the run {run_id}" in jmon.log  # the tick JMON logged as skipped
