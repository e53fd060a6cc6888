"""The moves of a conversion and what `recover` does with what a killed run left at each step."""

from __future__ import annotations

import os
import time
from pathlib import Path

from redpss.convert.files import Naming, expire_archive, publish, recover, reject
from redpss.core.paths import InstancePaths
from tests.convert.roundtrip import user_link

NAMING = Naming("json2csv", ".json", ".csv")


def test_a_committed_conversion_is_published_and_its_source_archived(instance: InstancePaths, tmp_path: Path) -> None:
    folder = user_link(instance, tmp_path)
    source = folder / "o.json"
    source.write_text('{"a": 1}\n')
    NAMING.ready(source).write_text('"a"\n1\n')  # killed after the commit point, before archiving
    assert recover(NAMING, instance, [instance.data_input, folder]) == [
        f"finished the conversion of {source} (stopped before it was published)"
    ]
    assert (folder / "o.csv").read_text() == '"a"\n1\n'
    assert (instance.data_archive / "alice" / "o.json").read_text() == '{"a": 1}\n'
    assert sorted(p.name for p in folder.iterdir()) == ["o.csv"]


def test_killed_after_archiving_only_the_csv_is_published(instance: InstancePaths) -> None:
    source = instance.data_input / "o.json"
    NAMING.ready(source).write_text('"a"\n1\n')
    (instance.data_archive / "o.json").write_text("archived before the stop")
    recover(NAMING, instance, [instance.data_input])
    assert (instance.data_input / "o.csv").read_text() == '"a"\n1\n'
    assert sorted(p.name for p in instance.data_archive.iterdir()) == ["o.json"]  # not archived twice


def test_killed_between_link_and_unlink_is_recognised(instance: InstancePaths) -> None:
    source = instance.data_input / "o.json"
    ready = NAMING.ready(source)
    ready.write_text('"a"\n1\n')
    os.link(ready, instance.data_input / "o.csv")
    recover(NAMING, instance, [instance.data_input])
    assert sorted(p.name for p in instance.data_input.iterdir()) == ["o.csv"]


def test_a_half_written_output_is_removed(instance: InstancePaths) -> None:
    source = instance.data_input / "o.json"
    source.write_text("{}\n")
    NAMING.part(source).write_text("half")
    (NAMING.part(source).parent / (NAMING.part(source).name + ".1")).write_text("segment")
    recover(NAMING, instance, [instance.data_input])
    assert sorted(p.name for p in instance.data_input.iterdir()) == ["o.json"]


def test_publish_never_replaces_a_csv_of_that_name(instance: InstancePaths) -> None:
    source = instance.data_input / "o.json"
    source.write_text("{}\n")
    NAMING.ready(source).write_text("new")
    (instance.data_input / "o.csv").write_text("not yet loaded")
    assert "waits: o.csv is still there" in recover(NAMING, instance, [instance.data_input])[0]
    assert (instance.data_input / "o.csv").read_text() == "not yet loaded"
    (instance.data_input / "o.csv").unlink()
    publish(NAMING, instance, source)
    assert (instance.data_input / "o.csv").read_text() == "new"


def test_a_rejected_source_has_its_reason_beside_it_and_keeps_earlier_ones(instance: InstancePaths) -> None:
    for attempt in (1, 2):
        source = instance.data_input / "bad.json"
        source.write_text(f"attempt {attempt}")
        moved = reject(instance, source, f"line {attempt}, character 3: invalid JSON")
        assert moved.read_text() == f"attempt {attempt}"
        reason = moved.with_name(moved.name + ".reason").read_text()
        assert reason == f"{source}: line {attempt}, character 3: invalid JSON\n"
    assert sorted(p.name for p in instance.data_error.iterdir()) == [
        "bad.json", "bad.json.1", "bad.json.1.reason", "bad.json.reason"
    ]  # fmt: skip


def test_archived_sources_expire_after_their_retention(instance: InstancePaths) -> None:
    (instance.data_archive / "alice").mkdir()
    for name in ("alice/o.json", "o.json.1", "o.csv", "o.parquet"):
        (instance.data_archive / name).write_text("x")
    assert expire_archive(instance, ".json", 7, now=time.time() + 6 * 86400) == 0
    assert expire_archive(instance, ".json", 0, now=time.time() + 30 * 86400) == 0  # 0 keeps everything
    assert expire_archive(instance, ".json", 7, now=time.time() + 8 * 86400) == 2
    assert sorted(p.name for p in instance.data_archive.rglob("*") if p.is_file()) == ["o.csv", "o.parquet"]
