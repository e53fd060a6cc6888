"""REDSYS.DAEMON_STATUS with the real daemons: `redctl start_trace` runs devdb, SCHED and JMON on the embedded
database, and the view, read through pyexasol like any database client would, says what each daemon does."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redpss
from redpss.core.paths import InstancePaths
from redpss.core.services import enabled_services
from tests.support.instance_runner import RunningInstance, started_instance
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def inst(instance: InstancePaths, tmp_path: Path) -> Iterator[RunningInstance]:
    with started_instance(instance, tmp_path, "db_install") as running:
        yield running


def daemons(inst: RunningInstance) -> dict[str, dict[str, Any]]:
    return {r["DAEMON"]: r for r in inst.rows("SELECT * FROM REDSYS.DAEMON_STATUS ORDER BY DAEMON")}


def test_every_daemon_has_a_row_kept_current(inst: RunningInstance) -> None:
    enabled = sorted(spec.name for spec in enabled_services(inst.config) if spec.probe != "none")  # those JMON can ask
    assert {"devdb", "jmon", "sched"} <= set(enabled)
    rows = wait_for(lambda: daemons(inst) or None, 30, interval=0.5, what="rows in REDSYS.DAEMON_STATUS")
    assert sorted(rows) == enabled
    assert {r["INSTANCE"] for r in rows.values()} == {"TST1"}
    assert {r["STATE"] for r in rows.values()} == {"RUNNING"}
    jmon, sched = rows["jmon"], rows["sched"]
    for row in (jmon, sched):
        assert row["VERSION"] == redpss.__version__
        pid = int(row["PID"])
        assert pid != os.getpid() and Path(f"/proc/{pid}").exists()
        started = dt.datetime.fromisoformat(row["STARTED_AT"])
        assert dt.datetime.now() - dt.timedelta(minutes=5) < started <= dt.datetime.now()
    assert jmon["STATUS_TEXT"].endswith("definitions, 0 running, SCHED connected")
    assert sched["STATUS_TEXT"].startswith("pools DEFAULT ")
    assert rows["devdb"]["STATUS_TEXT"].startswith("listening on 127.0.0.1:")

    # Kept current: the heartbeat moves on, and a suspend shows in JMON's status text within seconds.
    first = jmon["LAST_HEARTBEAT"]
    wait_for(lambda: daemons(inst)["jmon"]["LAST_HEARTBEAT"] > first, 20, interval=0.5, what="a newer heartbeat")
    inst.redctl("suspend")
    wait_for(lambda: "SUSPENDED" in daemons(inst)["jmon"]["STATUS_TEXT"], 20, interval=0.5, what="SUSPENDED")
