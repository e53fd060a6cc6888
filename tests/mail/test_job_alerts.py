"""Retry-aware job alerts through the whole instance (redctl start_trace with devdb, SCHED, JMON, SENDMAIL) and a
real relay: the owner of a job is mailed once when its run failed for good, and nobody for a failure a retry fixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redpss.core.paths import InstancePaths
from redpss.mail.spoolstat import spool_summary
from tests.mail.conftest import FAST_RETRIES
from tests.support.instance_runner import RunningInstance, add_job, instance_config
from tests.support.smtp_relay import SmtpRelay
from tests.support.wait import wait_for


def job_log(inst: RunningInstance, job_id: int) -> list[dict[str, Any]]:
    return inst.rows(f"SELECT STATUS, ATTEMPT FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {job_id} ORDER BY ATTEMPT")


def test_owner_is_mailed_after_the_last_retry_only(instance: InstancePaths, tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, "STARTTLS", user="sched", password="relay-pw") as relay:
        keys = {**relay.config(), **FAST_RETRIES, "cfi_enabled": "false"}  # no file transfer in this test
        instance.config_file.write_text(instance_config({"redctl": keys}))
        inst = RunningInstance(instance, tmp_path)
        try:
            inst.start()
            inst.redctl("db_register", "APP1")
            failing = {"JOB_TYPE": "SQL", "INTERVAL_SECONDS": 3600, "RETRY_DELAY_SECONDS": 1}
            add_job(
                inst,
                "APP1",
                1,
                "ALWAYS_FAILS",
                COMMAND="SELECT * FROM APP1.NO_SUCH_TABLE",
                MAX_RETRIES=1,
                ALERT_MAIL="owner@example.com",
                **failing,
            )
            fixed = {**failing, "RETRY_DELAY_SECONDS": 4}
            add_job(
                inst,
                "APP1",
                2,
                "FIXED_BY_RETRY",
                COMMAND="INSERT INTO APP1.LATE_TABLE VALUES (1)",
                MAX_RETRIES=2,
                ALERT_MAIL="owner2@example.com, deputy@example.com",
                **fixed,
            )
            add_job(inst, "APP1", 3, "NO_OWNER", COMMAND="SELECT * FROM APP1.NO_SUCH_TABLE", MAX_RETRIES=0, **failing)
            inst.redctl("reload")
            for job in ("APP1.1", "APP1.2", "APP1.3"):
                inst.redctl("start_job", job)
            wait_for(lambda: job_log(inst, 2), 30, interval=0.2, what="job 2's first attempt logged")
            assert job_log(inst, 2)[0]["STATUS"] == "FAILED"
            inst.db().execute("CREATE TABLE APP1.LATE_TABLE (N DECIMAL(9,0))")  # the retry finds it
            inst.db().commit()
            wait_for(
                lambda: [r["STATUS"] for r in job_log(inst, 2)] == ["FAILED", "OK"],
                30,
                interval=0.3,
                what="job 2 fixed by its retry",
            )
            wait_for(
                lambda: [r["STATUS"] for r in job_log(inst, 1)] == ["FAILED", "FAILED"],
                30,
                interval=0.3,
                what="job 1 failed twice",
            )
            wait_for(lambda: job_log(inst, 3), 30, interval=0.3, what="job 3 logged")
            [mail] = relay.wait_for(1, 30)
            wait_for(lambda: spool_summary(instance).get("count") == 0, 20, what="SENDMAIL's spool empty")
            assert len(relay.received) == 1  # nobody mailed for job 2 (fixed) or job 3 (no owner)
            assert mail.recipients == ("owner@example.com",)
            message = mail.message()
            assert (
                message["Subject"] == "[TST1] job APP1.ALWAYS_FAILS (1) FAILED after 2 attempt(s), 1 retry(ies) allowed"
            )
            body = message.get_body()
            assert body is not None
            text = body.get_content()
            assert "No further retry follows." in text
            assert "NO_SUCH_TABLE" in text  # the database's reason

            # the spool where operators look: redctl show (text and --json) and REDSYS's status view
            assert "SENDMAIL spool: no mail waiting" in inst.redctl("show").stdout
            assert json.loads(inst.redctl("show", "--json").stdout)["mail"]["count"] == 0
            sql = "SELECT STATUS_TEXT FROM REDSYS.DAEMON_STATUS WHERE DAEMON = 'sendmail'"
            row = wait_for(
                lambda: [r for r in inst.rows(sql) if "1 sent, no mail waiting" in str(r["STATUS_TEXT"])],
                30,
                interval=0.5,
                what="SENDMAIL's spool line in REDSYS.DAEMON_STATUS",
            )
            assert row
        finally:
            inst.close()


def test_owner_is_mailed_when_a_retry_does_not_start_because_the_instance_is_suspended(
    instance: InstancePaths, tmp_path: Path
) -> None:
    """The retry was the run's last word: skipped while suspended, it ended the job's failure without the mail a
    failure without retries gets."""
    with SmtpRelay(tmp_path, "STARTTLS", user="sched", password="relay-pw") as relay:
        keys = {**relay.config(), **FAST_RETRIES, "cfi_enabled": "false"}
        instance.config_file.write_text(instance_config({"redctl": keys}))
        inst = RunningInstance(instance, tmp_path)
        try:
            inst.start()
            inst.redctl("db_register", "APP1")
            add_job(
                inst,
                "APP1",
                4,
                "FAILS_THEN_SUSPENDED",
                JOB_TYPE="SQL",
                COMMAND="SELECT * FROM APP1.NO_SUCH_TABLE",
                INTERVAL_SECONDS=3600,
                MAX_RETRIES=1,
                RETRY_DELAY_SECONDS=3,
                ALERT_MAIL="owner@example.com",
            )
            inst.redctl("reload")
            inst.redctl("start_job", "APP1.4")
            wait_for(lambda: job_log(inst, 4), 30, interval=0.2, what="job 4's first attempt logged")
            inst.redctl("suspend")  # before the retry is due (3 s after the failure)
            skipped = "SELECT STATUS, SKIP_REASON FROM APP1.ADM_JOB_LOG WHERE JOB_ID = 4 AND ATTEMPT = 2"
            assert wait_for(lambda: inst.rows(skipped), 30, interval=0.3, what="the retry skipped") == [
                {"STATUS": "SKIPPED", "SKIP_REASON": "SUSPENDED"}
            ]
            [mail] = relay.wait_for(1, 30)
            assert mail.recipients == ("owner@example.com",)
            assert mail.message()["Subject"] == (
                "[TST1] job APP1.FAILS_THEN_SUSPENDED (4) FAILED after 1 attempt(s), 1 retry(ies) allowed"
            )
        finally:
            inst.close()
