"""SCHED's group recorder: rows of many runs reach the run log's spool in a few appends, each caller told when its
own rows are on disk, none lost when a caller gives up waiting (SCHED stopping)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from redpss.core.config import Secret
from redpss.core.db import DbSession, DbSettings
from redpss.core.net import free_port
from redpss.sched.runlog import GroupRecorder, LogRow, run_log_writer


def _row(number: int) -> LogRow:
    return LogRow("APP1", "ADM_JOB_LOG", {"RUN_ID": f"run-{number}", "JOB_ID": number, "STATUS": "OK"})


def _spooled_run_ids(spool: Path) -> list[str]:
    records = [json.loads(line) for line in spool.read_text().splitlines()]
    return [record["row"]["RUN_ID"] for record in records if "row" in record]


def test_rows_of_many_callers_are_on_disk_in_order_when_each_caller_is_answered(tmp_path: Path) -> None:
    # the database is away (nothing listens): the rows stay in the spool, where this test reads them
    settings = DbSettings(dsn=f"127.0.0.1:{free_port()}", user="sys", password=Secret("pw"), encryption=False)
    spool = tmp_path / "sched-runlog.spool"
    writer = run_log_writer(spool, DbSession(settings))
    recorder = GroupRecorder(writer)

    async def scenario() -> tuple[list[bool], list[str], list[str]]:
        nothing = await asyncio.wait_for(recorder.record([]), 5)  # as a stop with nothing queued asks
        first = await recorder.record([_row(0)])
        answers = await asyncio.gather(*(recorder.record([_row(n)]) for n in range(1, 301)), recorder.record([]))
        on_answer = _spooled_run_ids(spool)
        given_up = asyncio.ensure_future(recorder.record([_row(301), _row(302)]))
        await asyncio.sleep(0)  # the caller's rows are handed over; then it stops waiting
        given_up.cancel()
        await recorder.flushed()
        return [nothing, first, *answers], on_answer, _spooled_run_ids(spool)

    try:
        answers, on_answer, at_the_end = asyncio.run(scenario())
    finally:
        recorder.close()
        writer.stop(1.0)
    assert answers == [True] * 303
    assert on_answer == [f"run-{n}" for n in range(301)]  # every answered caller's row is there, in order
    assert at_the_end[-2:] == ["run-301", "run-302"]  # a cancelled wait does not take the rows back
