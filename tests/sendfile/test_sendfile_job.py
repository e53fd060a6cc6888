"""A SENDFILE job: SCHED hands the job's COMMAND (a SENDFILE request as JSON) to the SENDFILE daemon and waits, so
the run's ADM_JOB_LOG row says what was delivered, or why not. The whole instance runs as under start_trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.paths import InstancePaths
from tests.sendfile.conftest import DIGITS, view_sql
from tests.support.instance_runner import RunningInstance, add_job, instance_config
from tests.support.smtp_relay import SmtpRelay
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def running(instance: InstancePaths, tmp_path: Path) -> Iterator[tuple[RunningInstance, SmtpRelay]]:
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        instance.config_file.write_text(instance_config({"redctl": relay.config()}))
        inst = RunningInstance(instance, tmp_path)
        try:
            inst.start()
            inst.redctl("db_register", "APP1")
            yield inst, relay
        finally:
            inst.close()


def test_a_sendfile_job_delivers_and_its_log_row_says_what(running: tuple[RunningInstance, SmtpRelay]) -> None:
    inst, relay = running
    session = inst.db()
    session.execute(DIGITS.format(schema="APP1"))
    session.execute("INSERT INTO APP1.DIGITS VALUES " + ", ".join(f"({n})" for n in range(10)))
    session.execute(view_sql("APP1", "V_DAILY", 500))
    session.commit()
    command = {"source": "APP1.V_DAILY", "format": "PARQUET", "to": "ops@example.com", "file_name": "daily.parquet"}
    add_job(inst, "APP1", 30, "DAILY_EXPORT", JOB_TYPE="SENDFILE", COMMAND=json.dumps(command), INTERVAL_SECONDS=86400)
    add_job(
        inst,
        "APP1",
        31,
        "BROKEN_EXPORT",
        JOB_TYPE="SENDFILE",
        COMMAND='{"source": "APP1.NO_SUCH_VIEW", "to": "ops@example.com"}',
        INTERVAL_SECONDS=86400,
    )
    inst.redctl("reload")
    inst.redctl("start_job", "APP1.30")
    inst.redctl("start_job", "APP1.31")

    def finished(job_id: int) -> list[dict[str, object]]:
        return inst.rows(f"SELECT * FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {job_id} AND STATUS IN ('OK', 'FAILED')")

    [ok] = wait_for(lambda: finished(30), 60, what="the SENDFILE run logged")
    assert ok["STATUS"] == "OK", ok
    assert "APP1.V_DAILY: 500 rows" in str(ok["MESSAGE"]) and "PARQUET daily.parquet" in str(ok["MESSAGE"])
    [received] = relay.wait_for(1, 60)
    assert [a.get_filename() for a in received.message().iter_attachments()] == ["daily.parquet"]
    [failed] = wait_for(lambda: finished(31), 60, what="the failing SENDFILE run logged")
    assert failed["STATUS"] == "FAILED"
    assert "NO_SUCH_VIEW" in str(failed["MESSAGE"]).upper(), failed
    # where an operator sees what waits: both requests are done, so nothing is left in SENDFILE's spool
    assert "SENDFILE queue: no request waiting" in inst.redctl("show").stdout.splitlines()
    assert json.loads(inst.redctl("show", "--json").stdout)["sendfile"] == {"count": 0, "oldest": None, "unreadable": 0}
