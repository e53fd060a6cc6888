"""The waiting journal: what a killed SCHED left waiting is found at the next start, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.sched import waiting
from redpss.sched.runs import RunRequest
from redpss.sched.waiting import WaitingJournal


def run(run_id: str) -> RunRequest:
    return RunRequest(run_id, "JOB", "APP1", 1, "J")


def test_runs_still_waiting_at_a_kill_are_found_in_order_and_the_journal_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "tmp" / "sched-waiting.journal"
    killed = WaitingJournal(path)
    for number, run_id in enumerate(["a", "b", "c", "d"]):
        killed.add(run(run_id), 100.0 + number)
    killed.remove("b")  # a worker got it
    killed.remove("never-waited")
    killed.close()  # the process is gone (a kill leaves what was written)
    with path.open("a") as journal:
        journal.write('{"request": {"run_id": "e", "ki')  # the line the kill cut short
    restarted = WaitingJournal(path)
    assert [(request.run_id, since) for request, since in restarted.leftovers()] == [
        ("a", 100.0),
        ("c", 102.0),
        ("d", 103.0),
    ]
    assert path.read_bytes() == b""
    assert WaitingJournal(path).leftovers() == []


def test_the_journal_is_emptied_once_nothing_waits_and_rewritten_when_a_backlog_never_empties(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sched-waiting.journal"
    journal = WaitingJournal(path)
    for number in range(40):
        journal.add(run(f"r{number}"), float(number))
    for number in range(40):
        journal.remove(f"r{number}")
    grown = path.stat().st_size
    assert grown > 0
    monkeypatch.setattr(waiting, "SHRINK_BYTES", grown // 2)  # the module's limits, small for a small test
    journal.add(run("x"), 1.0)
    journal.remove("x")
    assert path.stat().st_size == 0
    monkeypatch.setattr(waiting, "REWRITE_BYTES", 1)
    journal.add(run("y"), 2.0)
    journal.add(run("z"), 3.0)
    journal.remove("y")  # z still waits: the journal holds z's line only
    journal.close()
    assert [request.run_id for request, _ in WaitingJournal(path).leftovers()] == ["z"]
