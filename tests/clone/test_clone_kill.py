"""A restore killed with SIGKILL at any point and then run again (as JMON's next start runs it) ends in the state an
uninterrupted restore reaches: a property over the point at which it dies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redpss.clone.restore import STEPS
from redpss.core.paths import InstancePaths
from tests.clone.clone_setup import activation, connections, count, make_instance, members, seed_tst1
from tests.support.daemon_set import DaemonSet

POINTS = [(step, point) for step in STEPS for point in ("before", "after")]
LOG_TABLES = ("APP1.ADM_JOB_LOG", "APP1.LOG_MESSAGES", "REDSYS.ADM_JMON_LOAD")


class Clones:
    """TST1's database with a saved preclone, turned into a clone again (by SQL) for every example."""

    def __init__(self, paths: InstancePaths, workdir: Path) -> None:
        self.paths = paths
        self.daemons = DaemonSet(paths, workdir)
        self.daemons.start("devdb")
        seed_tst1(self.daemons)
        self.daemons.inst.redctl("preclone")
        self.template = workdir / "preclone-template"
        shutil.copytree(paths.tmp / "preclone", self.template)

    def make_clone(self) -> None:
        self.clone_database()
        for leftover in (self.paths.tmp / "preclone", self.paths.tmp / "preclone-archive"):
            shutil.rmtree(leftover, ignore_errors=True)
        (self.paths.tmp / "clone.cutoff").unlink(missing_ok=True)
        shutil.copytree(self.template, self.paths.tmp / "preclone")
        self.paths.suspend_marker.touch()  # saved: not suspended
        for path in (self.paths.log / "old.log", self.paths.db_log_dir("APP1") / "APP1-old.log"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("before the clone\n")

    def clone_database(self) -> None:
        """The database made DEV1's clone (as a restore of DEV1's backup makes it); the files are left alone."""
        db = self.daemons.inst.db()
        db.execute("DELETE FROM REDSYS.INSTANCE_IDENTITY")
        db.execute(
            "INSERT INTO REDSYS.INSTANCE_IDENTITY VALUES ('DEV1', 'dev-server', 'dev1-id', 'f', CURRENT_TIMESTAMP)"
        )
        db.execute("UPDATE APP1.ADM_JOBS SET ACTIVE = NOT ACTIVE")
        db.execute("UPDATE APP1.ADM_WATCHER SET ACTIVE = FALSE")
        db.execute("INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, STATUS) VALUES ('dev1-run', 2, 'OK')")
        db.execute(
            "INSERT INTO APP1.LOG_MESSAGES (LOG_TIME, LOG_LEVEL, MESSAGE) VALUES (CURRENT_TIMESTAMP, 'ERROR', 'x')"
        )
        db.execute("INSERT INTO REDSYS.ADM_JMON_LOAD (LOG_TIME, POOL) VALUES (CURRENT_TIMESTAMP, 'DEFAULT')")
        for grant in (
            "REVOKE REDPSS_READER FROM USER_A",
            "GRANT REDPSS_OPERATOR TO USER_A",
            "GRANT REDPSS_READER TO USER_B",
        ):
            db.execute(grant)
        db.execute("CREATE OR REPLACE CONNECTION REDSYS_DBLS TO '10.9.9.9:7402' USER 'DEV1' IDENTIFIED BY 'other'")
        db.commit()

    def drive(self, step: str, point: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tests.clone.restore_driver", self.paths.redenv, step, point],
            env=self.daemons.inst.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def state(self) -> dict[str, Any]:
        tmp = self.paths.tmp
        identity = self.daemons.inst.rows("SELECT INSTANCE_NAME, INSTANCE_ID FROM REDSYS.INSTANCE_IDENTITY")
        return {
            "identity": identity,
            "activation": activation(self.daemons),
            "members": members(self.daemons),
            "connections": connections(self.daemons),
            "logs": {table: count(self.daemons, table) for table in LOG_TABLES},
            "old files": sorted(str(p.name) for p in self.paths.log.rglob("*old.log")),
            "pending": (tmp / "preclone").exists(),
            "archived": len(list((tmp / "preclone-archive").iterdir())) if (tmp / "preclone-archive").exists() else 0,
            "suspended": self.paths.suspend_marker.exists(),
            "cutoff": (tmp / "clone.cutoff").exists(),
            "blocked": (tmp / "clone.blocked").exists(),
        }

    def close(self) -> None:
        self.daemons.close()


@pytest.fixture
def clones(redhome: Path, tmp_path: Path) -> Iterator[Clones]:
    clones = Clones(make_instance(redhome, "TST1"), tmp_path)
    try:
        yield clones
    finally:
        clones.close()


def test_a_restore_killed_at_any_step_and_run_again_ends_as_an_uninterrupted_one(clones: Clones) -> None:
    clones.make_clone()
    whole = clones.drive("-", "-")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    expected = clones.state()
    assert expected["identity"][0]["INSTANCE_NAME"] == "TST1"
    assert expected["activation"] == {("JOB", 1): True, ("JOB", 2): False, ("WATCHER", 1): True}
    assert expected["members"] == {("USER_A", "REDPSS_READER")}
    assert not expected["connections"]["REDSYS_DBLS"].startswith("10.9.9.9")
    assert expected["logs"] == dict.fromkeys(LOG_TABLES, 0) and expected["old files"] == []
    assert (expected["pending"], expected["archived"], expected["suspended"]) == (False, 1, False)

    @settings(max_examples=len(POINTS), deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(POINTS))
    def killed_then_rerun(at: tuple[str, str]) -> None:
        clones.make_clone()
        killed = clones.drive(*at)
        assert killed.returncode == -9, (at, killed.stdout + killed.stderr)
        rerun = clones.drive("-", "-")
        assert rerun.returncode == 0, (at, rerun.stdout + rerun.stderr)
        assert clones.state() == expected, at

    killed_then_rerun()


def test_a_restore_interrupted_and_the_backup_restored_again_ends_as_an_uninterrupted_one(clones: Clones) -> None:
    """The restore's progress named the database steps done, and a rerun skipped them: after the DBA restored the
    other instance's backup once more, the instance ran on with its job flags, role members and connections, under
    this instance's identity, without a word. The database steps run again at every resume."""
    clones.make_clone()
    assert clones.drive("-", "-").returncode == 0
    expected = clones.state()
    clones.make_clone()
    killed = clones.drive("database_logs", "before")  # connections, activation and roles done
    assert killed.returncode == -9, killed.stdout + killed.stderr
    clones.clone_database()  # the backup restored once more
    rerun = clones.drive("-", "-")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert clones.state() == expected


def test_a_restore_tried_again_by_the_same_process_does_not_empty_the_logs_again(clones: Clones) -> None:
    """JMON tries a failed restore again at every poll. Were the database steps done again each time, the log
    tables would be emptied at every poll, with the rows written meanwhile."""
    clones.make_clone()
    tried = clones.drive("suspend_state", "fail")
    assert tried.returncode == 0, tried.stdout + tried.stderr
    assert count(clones.daemons, "APP1.LOG_MESSAGES", "MESSAGE = 'written while held'") == 1
    assert clones.state()["identity"][0]["INSTANCE_NAME"] == "TST1"
