"""Which final outcomes of a run are mailed to the job's owner."""

from __future__ import annotations

import pytest

from redpss.sched.alerts import wants_alert
from redpss.sched.commit import UNREADABLE, not_known
from redpss.sched.runs import FAILED, INTERRUPTED, OK, TIMEOUT, RunRequest, RunResult

JOB = RunRequest("r1", "JOB", "APP1", 1, "LOAD_ORDERS", alert_mail="dba@example.com")


@pytest.mark.parametrize(
    ("result", "mailed"),
    [
        (RunResult("r1", OK), False),
        (RunResult("r1", FAILED), True),
        (RunResult("r1", TIMEOUT), True),
        (RunResult("r1", INTERRUPTED), False),  # SCHED stopped: the run is over, nothing is wrong with the job
        (not_known(RunResult("r1", INTERRUPTED, "interrupted"), "object not found"), True),  # someone must look
    ],
)
def test_failures_and_unknown_outcomes_are_mailed(result: RunResult, mailed: bool) -> None:
    assert wants_alert(JOB, result) is mailed
    assert not wants_alert(RunRequest("r1", "JOB", "APP1", 1, "LOAD_ORDERS"), result)  # nobody to mail


def test_an_unknown_outcome_says_so_and_why() -> None:
    result = not_known(RunResult("r1", FAILED, "worker died"), "object REDSYS.ADM_RUN_COMMIT not found")
    assert result.extra["commit"] == UNREADABLE and result.status == FAILED
    assert result.message.startswith("worker died; whether its work was committed is NOT KNOWN")
    assert "object REDSYS.ADM_RUN_COMMIT not found" in result.message and "not retried" in result.message
