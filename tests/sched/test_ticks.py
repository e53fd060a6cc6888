"""sched/ticks.py: which logged rows stand for a tick of a job's or watcher's own schedule, and of which one."""

from __future__ import annotations

from typing import Any

from redpss.core.db.sqltext import parse_timestamp, timestamp
from redpss.sched.ticks import LoggedTicks

AT = 1_700_000_000.0


def job_row(schema: str, job_id: int, at: float, trigger: str = "SCHEDULE", **more: Any) -> tuple[str, dict[str, Any]]:
    values = {
        "JOB_ID": job_id,
        "SCHEDULED_AT": timestamp(at),
        "RUN_TRIGGER": trigger,
        "RUN_ID": f"r{at}",
        "STATUS": "OK",
    }
    return f"{schema}.ADM_JOB_LOG", values | more


def test_a_tick_is_known_by_kind_schema_and_id_and_only_the_newest_is_kept() -> None:
    ticks = LoggedTicks()
    at = parse_timestamp(str(timestamp(AT)))  # as read back from a row
    ticks.note([job_row("APP1", 7, AT)])
    assert ticks.logged(("JOB", "APP1", 7), at) == (f"r{AT}", "OK")
    assert ticks.logged(("JOB", "APP1", 7), at + 0.4) is not None  # a scheduled_at read back with less precision
    assert ticks.logged(("JOB", "APP2", 7), at) is None  # the same id in another schema
    assert ticks.logged(("WATCHER", "APP1", 7), at) is None  # a watcher with the job's id
    ticks.note([("APP1.ADM_WATCHER_LOG", {"WATCHER_ID": 7, "SCHEDULED_AT": timestamp(AT), "STATUS": "FIRED"})])
    assert ticks.logged(("WATCHER", "APP1", 7), at) == ("", "FIRED")
    ticks.note([job_row("APP1", 7, AT + 3600, trigger="MANUAL"), job_row("APP1", 7, AT + 60, trigger="WATCHER")])
    assert ticks.logged(("JOB", "APP1", 7), at) is not None  # a manual or watcher start is no tick of its schedule
    ticks.note([job_row("APP1", 7, AT + 3600)])
    assert ticks.logged(("JOB", "APP1", 7), at + 3600) is not None
    assert ticks.logged(("JOB", "APP1", 7), at) is None  # older ticks are not kept (JMON hands over the newest)
    ticks.note([job_row("APP1", 7, AT)])  # a late row of an older tick does not replace the newest
    assert ticks.logged(("JOB", "APP1", 7), at + 3600) is not None


def test_rows_that_tell_no_tick_are_passed_over() -> None:
    ticks = LoggedTicks()
    ticks.note(
        [
            ("APP1.ADM_JOB_LOG", {"JOB_ID": "seven", "SCHEDULED_AT": timestamp(AT)}),
            ("APP1.ADM_JOB_LOG", {"JOB_ID": 8}),
            ("APP1.ADM_JOB_LOG", {"JOB_ID": 9, "SCHEDULED_AT": "not a time"}),
            ("APP1.LOG_MESSAGES", {"JOB_ID": 10, "SCHEDULED_AT": timestamp(AT)}),
        ]
    )
    assert not any(ticks.logged(("JOB", "APP1", job), AT) for job in (8, 9, 10))
    assert ticks.logs(*job_row("APP1", 11, AT)) is False
