"""Cloning with real daemons: TST1 runs its jobs, saves its state (`redctl preclone`), its database is replaced by a
copy of DEV1's, and at the next start JMON restores TST1's state before it schedules anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.paths import InstancePaths
from tests.clone.clone_setup import (
    DEV1_MARK,
    activation,
    connections,
    count,
    identity,
    make_instance,
    members,
    replace_database,
    seed_dev1,
    seed_tst1,
    stop_daemon,
    wait_job_ran,
)
from tests.support.daemon_set import DaemonSet
from tests.support.wait import wait_for


class Pair:
    def __init__(self, redhome: Path, workdir: Path) -> None:
        self.tst1_paths = make_instance(redhome, "TST1")
        self.dev1_paths = make_instance(redhome, "DEV1")
        self.tst1 = DaemonSet(self.tst1_paths, workdir / "tst1")
        self.dev1 = DaemonSet(self.dev1_paths, workdir / "dev1")

    def close(self) -> None:
        self.tst1.close()
        self.dev1.close()

    def stop_tst1(self) -> None:
        for name in ("jmon", "sched", "devdb"):
            if name in self.tst1.procs:
                stop_daemon(self.tst1, name)

    def clone_dev1_into_tst1(self) -> None:
        """The restore of DEV1's backup over TST1's database, with TST1 stopped."""
        self.stop_tst1()
        replace_database(self.tst1_paths, self.dev1_paths)


@pytest.fixture
def pair(redhome: Path, tmp_path: Path) -> Iterator[Pair]:
    pair = Pair(redhome, tmp_path)
    try:
        pair.dev1.start("devdb")
        seed_dev1(pair.dev1)
        stop_daemon(pair.dev1, "devdb")
        pair.tst1.start("devdb")
        seed_tst1(pair.tst1)
        pair.tst1.start("sched")
        pair.tst1.start("jmon")
        wait_job_ran(pair.tst1, 1)
        yield pair
    finally:
        pair.close()


def old_log_files(paths: InstancePaths) -> list[Path]:
    """Log files as the instance had them before the clone, one in log/ and one in log/DB/<schema>/."""
    files = [paths.log / "before-clone.log", paths.db_log_dir("APP1") / "APP1-before-clone.log"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("from before the clone\n")
    return files


def test_start_after_a_clone_restores_tst1_and_clears_dev1s_logs(pair: Pair) -> None:
    tst1 = pair.tst1
    before = {"activation": activation(tst1), "members": members(tst1), "connections": connections(tst1)}
    own_identity = identity(tst1)
    assert before["activation"] == {("JOB", 1): True, ("JOB", 2): False, ("WATCHER", 1): True}
    db = tst1.inst.db()
    db.execute("UPDATE APP1.ADM_JOBS SET ACTIVE = TRUE WHERE JOB_ID = 2")  # TST_OFF on: DEV1's job 2 is DEV_RUNS
    db.commit()
    tst1.inst.close()
    saved = tst1.inst.redctl("preclone")
    assert "1 member(s) of the REST roles" in saved.stdout, saved.stdout
    manifest = json.loads((pair.tst1_paths.tmp / "preclone" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"identity.json", "owned.json", "suspend.json"}
    refused = tst1.inst.redctl("preclone", check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr, refused
    old_files = old_log_files(pair.tst1_paths)

    pair.clone_dev1_into_tst1()
    tst1.start("devdb")
    assert identity(tst1)["INSTANCE_NAME"] == "DEV1"  # the clone, as restored
    audit = tst1.inst.rows("SELECT * FROM APP1.AUDIT_TRAIL ORDER BY WHAT")
    load_files = tst1.inst.rows("SELECT * FROM REDSYS.ADM_LOAD_FILE")
    tst1.inst.close()
    tst1.start("sched")
    jmon = tst1.start("jmon")  # READY only after the restore

    assert identity(tst1) == own_identity
    after = activation(tst1)
    # job 1 is the same job in both: put back on. Job 2 was on in TST1, but DEV1's job 2 is another job (the ids
    # are whoever wrote the definitions' to give): it stays off, as does DEV1's job 3. Watcher 1 was on, but its
    # definition is DEV1's now and targets DEV1's job 3: switched off
    assert after == {("JOB", 1): True, ("JOB", 2): False, ("JOB", 3): False, ("WATCHER", 1): False}
    assert members(tst1) == before["members"] == {("USER_A", "REDPSS_READER")}
    assert connections(tst1) == before["connections"]
    for table in ("APP1.ADM_JOB_LOG", "APP1.ADM_WATCHER_LOG", "REDSYS.ADM_JMON_JOBLOG"):
        assert count(tst1, table, "RUN_ID LIKE 'dev1%'") == 0, table
    assert count(tst1, "APP1.LOG_MESSAGES", f"MESSAGE = '{DEV1_MARK}'") == 0
    assert count(tst1, "APP1.ADM_WATCHER_EXEC_ERROR") == 0
    assert count(tst1, "REDSYS.ADM_JMON_LOAD", "LOG_TIME < TIMESTAMP '2026-06-01 00:00:00'") == 0
    assert tst1.inst.rows("SELECT * FROM APP1.AUDIT_TRAIL ORDER BY WHAT") == audit and len(audit) == 2
    assert tst1.inst.rows("SELECT * FROM REDSYS.ADM_LOAD_FILE") == load_files and len(load_files) == 1
    assert not any(path.exists() for path in old_files)
    assert not (pair.tst1_paths.tmp / "preclone").exists()
    assert len(list((pair.tst1_paths.tmp / "preclone-archive").iterdir())) == 1

    wait_job_ran(tst1, 1)  # TST1's schedule runs again
    assert count(tst1, "APP1.ADM_JOB_LOG", "JOB_ID IN (2, 3)") == 0  # DEV1's never did
    log = jmon.log
    for step in ("activation", "connections", "database_logs", "identity", "archive"):
        assert f"clone restore step {step} done" in log, log
    postclone = tst1.inst.redctl("postclone", check=False)
    assert postclone.returncode == 1 and "not replaced by a clone" in postclone.stderr, postclone


def test_a_foreign_database_without_preclone_starts_no_job_until_taken_over(pair: Pair) -> None:
    tst1 = pair.tst1
    pair.clone_dev1_into_tst1()
    tst1.start("devdb")
    tst1.start("sched")
    jmon = tst1.start("jmon")
    jmon.wait_log("belongs to instance DEV1")
    assert "ALERT" in jmon.log
    status = tst1.inst.redctl("status", check=False)
    assert "starts no job" in status.stdout and "redctl postclone --force" in status.stdout, status.stdout
    refused = tst1.inst.redctl("postclone", check=False)
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr, refused
    assert identity(tst1)["INSTANCE_NAME"] == "DEV1"
    assert count(tst1, "APP1.ADM_JOB_LOG", "RUN_ID NOT LIKE 'dev1%'") == 0  # DEV1's active jobs 2 and 3 never ran

    taken = tst1.inst.redctl("postclone", "--force")
    assert "identity: instance TST1" in taken.stdout, taken.stdout
    assert "clone restore step identity done" in pair.tst1_paths.log_file("redctl").read_text()  # and the journal
    assert identity(tst1)["INSTANCE_NAME"] == "TST1"
    assert not any(activation(tst1).values())  # nothing known to be TST1's: all inactive
    wait_for(lambda: "starts no job" not in tst1.inst.redctl("status", check=False).stdout, 30, what="status clear")
    assert count(tst1, "APP1.ADM_JOB_LOG") == 0


def test_a_preclone_without_a_restore_changes_nothing(pair: Pair) -> None:
    tst1 = pair.tst1
    tst1.inst.redctl("preclone")
    own_identity, states, roles = identity(tst1), activation(tst1), members(tst1)
    runs = count(tst1, "APP1.ADM_JOB_LOG")
    files = old_log_files(pair.tst1_paths)
    stop_daemon(tst1, "jmon")
    tst1.start("jmon")
    refused = tst1.inst.redctl("postclone", check=False)
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr, refused
    assert (identity(tst1), activation(tst1), members(tst1)) == (own_identity, states, roles)
    assert count(tst1, "APP1.ADM_JOB_LOG") >= runs
    assert all(path.exists() for path in files)
    assert (pair.tst1_paths.tmp / "preclone" / "manifest.json").exists()  # still pending for the real restore
    forced = tst1.inst.redctl("preclone", "--force")
    assert "saved the state" in forced.stdout


def test_a_takeover_that_waited_for_a_restore_takes_nothing_over(pair: Pair) -> None:
    """`postclone --force` judges the database before it waits for the restore lock; a restore by JMON that held the
    lock may make the database this instance's meanwhile. Run then, the takeover found no preclone pending and took
    the instance's own database over: every job and watcher inactive. It now asks again under the lock."""
    from redpss.clone.folder import PrecloneError  # noqa: PLC0415
    from redpss.clone.restore import restore  # noqa: PLC0415
    from redpss.core.secret import instance_secret  # noqa: PLC0415

    tst1 = pair.tst1
    states, own = activation(tst1), identity(tst1)
    session = tst1.inst.db()
    with pytest.raises(PrecloneError, match="restored meanwhile: nothing taken over"):
        restore(session, tst1.inst.config, pair.tst1_paths, instance_secret(pair.tst1_paths), without_preclone=True)
    assert (activation(tst1), identity(tst1)) == (states, own)


def test_db_install_on_a_clone_without_an_identity_leaves_it_to_the_restore(pair: Pair) -> None:
    """A clone of a database that names no instance (an older series, never db_install'ed since): `redctl
    db_install` before the start, as after an upgrade, wrote TST1's identity, so JMON took the clone for TST1's own
    database, restored nothing, and ran DEV1's schedule."""
    tst1 = pair.tst1
    before = activation(tst1)
    tst1.inst.redctl("preclone")
    pair.clone_dev1_into_tst1()
    tst1.start("devdb")
    db = tst1.inst.db()
    db.execute("DELETE FROM REDSYS.INSTANCE_IDENTITY")
    db.commit()
    tst1.inst.close()
    installed = tst1.inst.redctl("db_install", check=False)
    assert installed.returncode == 1, installed
    assert "nothing changed: a preclone is pending" in installed.stderr
    assert tst1.inst.rows("SELECT * FROM REDSYS.INSTANCE_IDENTITY") == []
    tst1.inst.close()
    tst1.start("sched")
    tst1.start("jmon")  # READY only after the restore
    after = activation(tst1)
    assert {key: after[key] for key in before if key[0] == "JOB"} == {k: v for k, v in before.items() if k[0] == "JOB"}
    assert not (pair.tst1_paths.tmp / "preclone").exists()  # restored and archived


def test_db_install_on_another_instances_database_changes_nothing(pair: Pair) -> None:
    """DEV1's database under TST1 (a clone without a preclone, or an exa_connection naming DEV1's database):
    `redctl db_install` installed first and looked at the identity afterwards, so DEV1's CONNECTION objects already
    pointed at TST1's daemons, with secrets derived from TST1's, when it said "it is a clone"."""
    tst1 = pair.tst1
    pair.clone_dev1_into_tst1()
    tst1.start("devdb")
    dev1s = connections(tst1)
    assert dev1s and identity(tst1)["INSTANCE_NAME"] == "DEV1"
    tst1.inst.close()
    installed = tst1.inst.redctl("db_install", check=False)
    assert installed.returncode == 1, installed
    assert "nothing changed: the database belongs to instance DEV1" in installed.stderr
    assert "exa_connection" in installed.stderr and "postclone" in installed.stderr
    assert (connections(tst1), identity(tst1)["INSTANCE_NAME"]) == (dev1s, "DEV1")
    tst1.inst.close()


def test_a_database_restored_under_the_running_instance_starts_no_job_of_it(pair: Pair) -> None:
    """DEV1's backup restored over TST1's database while TST1 ran on (the daemons ride out a database outage): the
    clone guard looked only at JMON's start, so JMON took DEV1's definitions and ran its active jobs 2 and 3."""
    tst1 = pair.tst1
    stop_daemon(tst1, "devdb")  # the restore: the database goes away ...
    replace_database(pair.tst1_paths, pair.dev1_paths)
    tst1.start("devdb")  # ... and comes back as DEV1's, under the running JMON and SCHED
    tst1.procs["jmon"].wait_log("belongs to instance DEV1", timeout=60)
    status = tst1.inst.redctl("status", check=False)
    assert "starts no job" in status.stdout, status.stdout
    assert count(tst1, "APP1.ADM_JOB_LOG", "JOB_ID IN (2, 3) AND RUN_ID NOT LIKE 'dev1%'") == 0
