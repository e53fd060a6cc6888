"""Retry-aware job alerts: a job's owner gets a mail when its run failed for good, never for a failure a retry fixed.

A job with ALERT_MAIL set (addresses separated by commas; docs/db-contract.md) has its owner mailed when a run ends
FAILED or TIMEOUT and no retry follows: after the last of MAX_RETRIES retries, or at once for a job without retries.
The mail goes through SENDMAIL (spooled, retried while the relay is away) from a thread, so the scheduler's loop
never waits on it; when SENDMAIL cannot take it, the log says so at ERROR (the run log row tells the failure anyway).
"""

from __future__ import annotations

import datetime as dt
import logging

from redpss.core.config import Config
from redpss.core.paths import InstancePaths
from redpss.mail.client import MailNotAccepted, submit_mail
from redpss.sched.commit import UNREADABLE
from redpss.sched.runs import FAILED, TIMEOUT, RunRequest, RunResult

log = logging.getLogger("redpss.sched.alerts")


def wants_alert(request: RunRequest, result: RunResult) -> bool:
    """Whether this final outcome of a run (no retry follows) is one the job's owner is mailed about."""
    unknown = result.extra.get("commit") == UNREADABLE  # interrupted or not: someone must look at the target
    failed = result.status in (FAILED, TIMEOUT) or unknown
    return request.kind == "JOB" and bool(request.alert_mail.strip()) and failed


def alert_mail(request: RunRequest, result: RunResult, instance: str) -> tuple[str, str]:
    """(subject, body) of the alert about a run that failed for good."""
    tries = f"{request.attempt} attempt(s)" + (
        f", {request.max_retries} retry(ies) allowed" if request.max_retries else ""
    )
    subject = f"[{instance}] job {request.schema}.{request.name} ({request.id}) {result.status} after {tries}"
    ended = dt.datetime.fromtimestamp(result.ended_at or result.started_at).strftime("%Y-%m-%d %H:%M:%S")
    body = (
        f"Job {request.schema}.{request.name} (JOB_ID {request.id}, pool {request.pool}, type {request.job_type}) "
        f"of instance {instance} ended {result.status} at {ended}, run {request.run_id}, {tries}.\n"
        f"No further retry follows.\n\n{result.message}\n\n"
        f"Its runs are in {request.schema}.ADM_JOB_LOG (JOB_ID {request.id}); `redctl list_db_jobs` shows the job.\n"
    )
    return subject, body


def mail_owner(config: Config, paths: InstancePaths, request: RunRequest, result: RunResult) -> None:
    """Hand the alert to SENDMAIL (blocking: run it in a thread); failures are logged, never raised."""
    subject, body = alert_mail(request, result, paths.redenv)
    extra = {"SCHEMA": request.schema, "JOB_ID": request.id, "RUN_ID": request.run_id}
    try:
        mail_id = submit_mail(
            config,
            paths,
            request.alert_mail,
            subject,
            body,
            schema=request.schema,
            client=f"SCHED alert {request.run_id}",
        )
    except MailNotAccepted as exc:
        log.error(
            "job %s.%s: the failure alert to %s was not sent: %s",
            request.schema,
            request.name,
            request.alert_mail,
            exc,
            extra=extra,
        )
        return
    log.info(
        "job %s.%s: failure alert %s to %s", request.schema, request.name, mail_id, request.alert_mail, extra=extra
    )
