"""Rows spooled before the database was replaced by a clone never reach the clone: a writer given the cut-off file
drops them at its start and at its next round while running; rows appended after the cut-off are written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.db.rowwriter import CLONE_CUTOFF_FILE, RowWriter
from redpss.devdb.testing import InProcessDevDb
from tests.core.test_rowwriter import TABLE, devdb_with_table, ids_in_table, session
from tests.support.wait import wait_for


@pytest.fixture
def devdb(tmp_path: Path) -> Iterator[InProcessDevDb]:
    yield from devdb_with_table(tmp_path)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "sched-runlog.spool"


def writer(devdb: InProcessDevDb, spool: Path) -> RowWriter:
    return RowWriter("run log", spool, session(devdb), flush_interval=0.05)


@pytest.fixture
def stopped(devdb: InProcessDevDb, spool: Path) -> Iterator[list[RowWriter]]:
    made: list[RowWriter] = []
    yield made
    for each in made:
        each.stop(timeout=5)


def test_rows_from_before_the_clone_are_dropped_at_start(
    devdb: InProcessDevDb, spool: Path, stopped: list[RowWriter]
) -> None:
    first = writer(devdb, spool)  # never started: the daemon was stopped for the restore
    stopped.append(first)
    first.append(TABLE, [{"ID": 1, "NAME": "before"}])
    appended_at = json.loads(spool.read_text().splitlines()[0])["at"]
    spool.with_name(CLONE_CUTOFF_FILE).write_text(f"{appended_at + 1e-6}\n")  # the clone: just after that row
    second = writer(devdb, spool)
    stopped.append(second)
    assert second.backlog().rows == 0
    assert all("before" not in line for line in spool.read_text().splitlines())
    second.append(TABLE, [{"ID": 2, "NAME": "after"}])
    second.start()
    wait_for(lambda: ids_in_table(devdb) == [2], 10, what="the row from after the clone written, alone")


def test_a_running_writer_drops_them_at_its_next_round(
    devdb: InProcessDevDb, spool: Path, stopped: list[RowWriter]
) -> None:
    running = writer(devdb, spool)
    stopped.append(running)
    running.session.close()
    devdb.stop()  # the database away: the row waits in the spool
    running.start()
    running.append(TABLE, [{"ID": 1, "NAME": "before"}])
    spool.with_name(CLONE_CUTOFF_FILE).write_text(f"{time.time() + 0.001}\n")
    wait_for(lambda: running.backlog().rows == 0, 10, what="the spooled row dropped")
    assert [json.loads(line) for line in spool.read_text().splitlines() if "before" in line] == []
