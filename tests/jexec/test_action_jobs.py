"""An ACTION job end to end: JMON schedules it (or redctl start_job starts it), SCHED's ACTION pool hands it to
JEXEC, and the output is in the job log. devdb, SCHED, JEXEC and JMON run as separate processes, as under systemd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.core.paths import InstancePaths
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, add_job, instance_config
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

MODULES = {
    "devdb": "redpss.devdb",
    "sched": "redpss.sched.service",
    "jexec": "redpss.jexec.service",
    "jmon": "redpss.jmon.service",
}


@pytest.fixture
def inst(instance: InstancePaths, tmp_path: Path) -> Iterator[RunningInstance]:
    instance.config_file.write_text(instance_config())
    running = RunningInstance(instance, tmp_path)
    procs: list[DaemonProcess] = []
    try:
        for name, module in MODULES.items():
            daemon = DaemonProcess(module, instance, tmp_path / name, log_name=name)
            procs.append(daemon)
            daemon.wait_ready()
            if name == "devdb":
                running.redctl("db_register", "APP1")
        yield running
    finally:
        running.close()
        for daemon in reversed(procs):
            daemon.stop()
            daemon.close()


def job_log(inst: RunningInstance, job_id: int) -> list[dict[str, Any]]:
    return inst.rows(f"SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {job_id} AND STATUS <> 'SKIPPED'")


def test_an_action_job_runs_its_cmd_script_through_jexec_and_its_output_is_in_the_job_log(
    inst: RunningInstance,
) -> None:
    scripts = inst.paths.cmd / "reports"
    scripts.mkdir()
    (scripts / "hello.sh").write_text('#!/bin/sh\necho "hello $1 from job $REDPSS_JOB_ID"\necho "warned" >&2\n')
    (scripts / "hello.sh").chmod(0o750)
    (inst.paths.cmd / "fail.sh").write_text("#!/bin/sh\necho 'no input file'\nexit 4\n")
    (inst.paths.cmd / "fail.sh").chmod(0o750)
    hello = "reports/hello.sh 'big world'"
    add_job(inst, "APP1", 1, "HELLO", JOB_TYPE="ACTION", POOL="ACTION", COMMAND=hello, INTERVAL_SECONDS=1)
    add_job(inst, "APP1", 2, "FAIL", JOB_TYPE="ACTION", POOL="ACTION", COMMAND="fail.sh", INTERVAL_SECONDS=3600)
    inst.redctl("reload")

    [ok, *_] = wait_for(lambda: job_log(inst, 1), 60, interval=0.5, what="a run of the ACTION job logged")
    assert ok["STATUS"] == "OK", ok
    assert ok["POOL"] == "ACTION"
    assert ok["MESSAGE"].startswith("cmd/reports/hello.sh: exit code 0 in ")
    assert ok["MESSAGE"].endswith("output:\nhello big world from job 1\n[stderr] warned")
    run_file = inst.paths.log / "JEXEC" / f"{ok['RUN_ID']}.log"
    assert "stdout: hello big world from job 1" in run_file.read_text()

    inst.redctl("start_job", "APP1.2")
    [failed, *_] = wait_for(lambda: job_log(inst, 2), 60, interval=0.5, what="a run of the failing ACTION job")
    assert failed["STATUS"] == "FAILED"
    assert failed["MESSAGE"] == f"cmd/fail.sh: exit code 4 in {failed['MESSAGE'].split(' in ')[1]}"
    assert failed["MESSAGE"].endswith("output:\nno input file")


def test_an_action_job_past_its_timeout_is_logged_timeout(inst: RunningInstance) -> None:
    """A script JEXEC ends at the job's timeout is a TIMEOUT in the job log, as a SQL job past its timeout is."""
    (inst.paths.cmd / "slow.sh").write_text("#!/bin/sh\necho started\nexec sleep 60\n")
    (inst.paths.cmd / "slow.sh").chmod(0o750)
    slow = {"COMMAND": "slow.sh", "TIMEOUT_SECONDS": 1, "INTERVAL_SECONDS": 3600}
    add_job(inst, "APP1", 3, "SLOW", JOB_TYPE="ACTION", POOL="ACTION", **slow)
    inst.redctl("reload")
    inst.redctl("start_job", "APP1.3")
    [timed_out, *_] = wait_for(lambda: job_log(inst, 3), 60, interval=0.5, what="the run of the slow ACTION job")
    assert timed_out["STATUS"] == "TIMEOUT", timed_out
    assert timed_out["MESSAGE"].startswith("cmd/slow.sh: timed out after 1 s"), timed_out["MESSAGE"]
