"""The preclone folder on its own: whole or absent, checked by its manifest, never overwritten without --force;
and the foreign-database notice in the operations' status."""

from __future__ import annotations

import json

import pytest

from redpss.clone import folder
from redpss.clone.blocked import block, unblock
from redpss.core.paths import InstancePaths
from redpss.ops.instance import Instance
from redpss.ops.status import instance_status

CONTENTS = {"identity.json": {"a": 1}, "owned.json": {"rows": {}, "roles": {}}, "suspend.json": {"suspended": False}}


def test_written_folder_reads_back_and_a_second_is_refused_without_force(instance: InstancePaths) -> None:
    path = folder.write(instance, CONTENTS, force=False)
    assert folder.pending(instance) and path == instance.tmp / "preclone"
    assert folder.read(instance).files == CONTENTS
    with pytest.raises(folder.PrecloneError, match="preclone --force"):
        folder.write(instance, CONTENTS, force=False)
    folder.write(instance, {**CONTENTS, "suspend.json": {"suspended": True}}, force=True)
    assert folder.read(instance).files["suspend.json"] == {"suspended": True}
    assert sorted(p.name for p in instance.tmp.iterdir() if p.name.startswith("preclone")) == ["preclone"]


def test_a_changed_file_is_refused_naming_it(instance: InstancePaths) -> None:
    folder.write(instance, CONTENTS, force=False)
    owned = instance.tmp / "preclone" / "owned.json"
    owned.write_text(json.dumps({"rows": {"APP1.ADM_JOBS": [{"JOB_ID": 1, "ACTIVE": True}]}, "roles": {}}))
    with pytest.raises(folder.PrecloneError, match=r"owned\.json does not match its checksum"):
        folder.read(instance)


def test_a_begun_restore_is_never_replaced_and_archiving_ends_pending(instance: InstancePaths) -> None:
    folder.write(instance, CONTENTS, force=False)
    folder.save_progress(instance, {"cutoff": 1.0, "done": ["log_files"]})
    with pytest.raises(folder.PrecloneError, match="postclone"):
        folder.write(instance, CONTENTS, force=True)
    archived = folder.archive(instance)
    assert archived is not None and (archived / "restore.json").exists()
    assert not folder.pending(instance) and folder.archive(instance) is None


def test_the_operations_status_says_why_no_job_starts(instance: InstancePaths) -> None:
    """What `redctl status`, the REST API and MAIL2CMD show comes from the same file JMON writes."""
    ops = Instance.load(instance)
    assert instance_status(ops)["foreign_database"] is None
    block(instance, "the database belongs to instance DEV1")
    assert instance_status(ops)["foreign_database"] == "the database belongs to instance DEV1"
    unblock(instance)
    assert instance_status(ops)["foreign_database"] is None
