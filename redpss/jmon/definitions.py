"""Reading job and watcher definitions from REDSYS, and turning a due tick into SCHED's run request."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from redpss.core.db import DbSession
from redpss.core.db.sqltext import parse_timestamp
from redpss.jmon.schedule import Definition, Key, Tick

JOB_COLUMNS = (
    "SCHEMA_NAME, JOB_ID, JOB_NAME, POOL, JOB_TYPE, COMMAND, INTERVAL_SECONDS, CRON_EXPR, ACTIVE, TIMEOUT_SECONDS, "
    "OVERLAP_POLICY, MISSED_POLICY, GRACE_SECONDS, MAX_RETRIES, RETRY_DELAY_SECONDS, ALERT_MAIL"
)
WATCHER_COLUMNS = (
    "SCHEMA_NAME, WATCHER_ID, WATCHER_NAME, CONDITION_TYPE, CONDITION_TEXT, TARGET_JOB_ID, INTERVAL_SECONDS, "
    "CRON_EXPR, ACTIVE, TIMEOUT_SECONDS"
)


def _number(value: Any, default: float) -> float:
    return default if value is None or value == "" else float(value)


def job_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The RunRequest fields of a job row (everything but run_id, scheduling and trigger)."""
    return {
        "kind": "JOB",
        "schema": str(row["SCHEMA_NAME"]).upper(),
        "id": int(row["JOB_ID"]),
        "name": str(row["JOB_NAME"]),
        "pool": str(row.get("POOL") or "DEFAULT").upper(),
        "job_type": str(row.get("JOB_TYPE") or "SQL").upper(),
        "command": str(row.get("COMMAND") or ""),
        "timeout": _number(row.get("TIMEOUT_SECONDS"), 3600),
        "max_retries": int(_number(row.get("MAX_RETRIES"), 0)),
        "retry_delay": _number(row.get("RETRY_DELAY_SECONDS"), 60),
        "alert_mail": str(row.get("ALERT_MAIL") or "").strip(),
        "overlap_policy": str(row.get("OVERLAP_POLICY") or "SKIP").upper(),
    }


def _timing(row: dict[str, Any]) -> tuple[float | None, str | None]:
    interval = row.get("INTERVAL_SECONDS")
    cron = row.get("CRON_EXPR")
    return (float(interval) if interval is not None else None, str(cron) if cron else None)


def read_definitions(session: DbSession) -> tuple[list[Definition], str]:
    """Every job and watcher of every registered schema, as the Schedule wants them, and a fingerprint of the rows
    (equal fingerprints: nothing changed, so JMON can skip re-syncing thousands of definitions)."""
    jobs = session.fetch_dicts(f"SELECT {JOB_COLUMNS} FROM REDSYS.ALL_ADM_JOBS")  # noqa: S608 - constant columns
    watchers = session.fetch_dicts(f"SELECT {WATCHER_COLUMNS} FROM REDSYS.ALL_ADM_WATCHER")  # noqa: S608
    fingerprint = hashlib.sha256(repr((jobs, watchers)).encode()).hexdigest()
    jobs_by_key = {(str(j["SCHEMA_NAME"]).upper(), int(j["JOB_ID"])): j for j in jobs}
    definitions = []
    for row in jobs:
        interval, cron = _timing(row)
        definitions.append(
            Definition(
                kind="JOB",
                schema=str(row["SCHEMA_NAME"]).upper(),
                id=int(row["JOB_ID"]),
                name=str(row["JOB_NAME"]),
                active=bool(row["ACTIVE"]),
                interval_seconds=interval,
                cron_expr=cron,
                overlap_policy=str(row.get("OVERLAP_POLICY") or "SKIP").upper(),
                missed_policy=str(row.get("MISSED_POLICY") or "SKIP").upper(),
                grace_seconds=_number(row.get("GRACE_SECONDS"), 60),
                payload=job_payload(row),
            )
        )
    for row in watchers:
        schema = str(row["SCHEMA_NAME"]).upper()
        target = jobs_by_key.get((schema, int(row["TARGET_JOB_ID"])))
        interval, cron = _timing(row)
        payload = {
            "kind": "WATCHER",
            "schema": schema,
            "id": int(row["WATCHER_ID"]),
            "name": str(row["WATCHER_NAME"]),
            "pool": "DEFAULT",
            "condition_type": str(row.get("CONDITION_TYPE") or "QUERY").upper(),
            "command": str(row.get("CONDITION_TEXT") or ""),
            "timeout": _number(row.get("TIMEOUT_SECONDS"), 300),
            "target": job_payload(target) if target else None,
        }
        definitions.append(
            Definition(
                kind="WATCHER",
                schema=schema,
                id=int(row["WATCHER_ID"]),
                name=str(row["WATCHER_NAME"]),
                active=bool(row["ACTIVE"]) and target is not None,
                interval_seconds=interval,
                cron_expr=cron,
                payload=payload,
            )
        )
    return definitions, fingerprint


def read_blocked_watchers(session: DbSession) -> set[Key]:
    rows = session.fetchall(
        "SELECT DISTINCT SCHEMA_NAME, WATCHER_ID FROM REDSYS.ALL_ADM_WATCHER_EXEC_ERROR WHERE RESET_AT IS NULL"
    )
    return {("WATCHER", str(schema).upper(), int(id_)) for schema, id_ in rows}


def read_last_scheduled(session: DbSession) -> dict[Key, float]:
    """Per job/watcher, the newest SCHEDULED_AT in its log: where the schedule continues after a restart."""
    # Manual and watcher-started runs do not move a job's own timing.
    return _newest_in_logs(
        session, "SCHEDULED_AT", job_filter="AND COALESCE(RUN_TRIGGER, 'SCHEDULE') NOT IN ('MANUAL', 'WATCHER')"
    )


def read_last_started(session: DbSession) -> dict[Key, float]:
    """Per job/watcher, when its newest run that actually began began (any trigger; skipped ticks have none)."""
    return _newest_in_logs(session, "STARTED_AT")


def _newest_in_logs(session: DbSession, column: str, job_filter: str = "") -> dict[Key, float]:
    """Per job/watcher, the newest non-NULL `column` (a timestamp of the run logs) over every registered schema."""
    last: dict[Key, float] = {}
    for kind, view, id_column, extra in (
        ("JOB", "ALL_ADM_JOB_LOG", "JOB_ID", job_filter),
        ("WATCHER", "ALL_ADM_WATCHER_LOG", "WATCHER_ID", ""),
    ):
        rows = session.fetchall(
            f"SELECT SCHEMA_NAME, {id_column}, MAX({column}) FROM REDSYS.{view} "  # noqa: S608 - constants
            f"WHERE {column} IS NOT NULL {extra} GROUP BY SCHEMA_NAME, {id_column}"
        )
        for schema, id_, when in rows:
            if when:
                last[(kind, str(schema).upper(), int(id_))] = parse_timestamp(str(when))
    return last


def run_request(tick: Tick, trigger: str = "SCHEDULE") -> dict[str, Any]:
    """SCHED's submit payload for a tick that runs."""
    return {
        **tick.definition.payload,
        "run_id": uuid.uuid4().hex,
        "scheduled_at": tick.scheduled_at,
        "trigger": trigger,
        "origin": "jmon",
    }
