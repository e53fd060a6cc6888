"""The fault suite's figures (kills survived, rows reconciled, lost, duplicated) in pytest's terminal summary, so
CI shows them without -s; and the fixture that starts an instance whose daemons the tests kill and stop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.paths import InstancePaths
from tests.support.fault_instance import FaultInstance
from tests.support.instance_runner import instance_config

FIGURES: list[str] = []


@pytest.fixture
def figures() -> list[str]:
    """Lines a fault test reports; printed at the end of the run (and at once, visible with -s)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("fault suite figures")
        for line in FIGURES:
            terminalreporter.line(line)


@pytest.fixture
def faulty(instance: InstancePaths, tmp_path: Path) -> Iterator[FaultInstance]:
    """devdb, SCHED and JMON as three processes, APP1 registered with its FAULT_ROWS table."""
    instance.config_file.write_text(instance_config())
    running = FaultInstance(instance, tmp_path)
    try:
        running.start_all()
        yield running
    finally:
        running.close()
