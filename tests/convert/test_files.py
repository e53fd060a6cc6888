"""The moves of a conversion and what `recover` does with what a killed run left at each step."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from redpss.convert import files as files_module
from redpss.convert.files import (
    Naming,
    ReplacedSince,
    expire_archive,
    publish,
    publish_orphans,
    recover,
    reject,
    version_key,
)
from redpss.convert.service import ConvertService
from redpss.core.config import load_config, render_config
from redpss.core.filestable import regular_file_state
from redpss.core.paths import InstancePaths
from redpss.core.setaside import NAME_MAX, SetAsideError, move_file, printable
from tests.convert.roundtrip import user_link
from tests.support.file_access import owned_by_another_user

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


def test_a_csv_shown_and_loaded_after_a_stop_between_link_and_unlink_is_not_shown_again(
    instance: InstancePaths,
) -> None:
    """Stopped between the two steps of an earlier publish (a link, then an unlink of the committed file), a LOAD
    took the CSV, loaded it and archived it before the converter was back: the recovery linked the committed file
    again, and the same rows were loaded twice."""
    source = instance.data_input / "o.json"
    ready = NAMING.ready(source)
    ready.write_text('"a"\n1\n')
    os.link(ready, instance.data_input / "o.csv")
    (instance.data_input / "o.csv").rename(instance.data_archive / "o.csv")  # loaded and archived
    recover(NAMING, instance, [instance.data_input])
    assert sorted(p.name for p in instance.data_input.iterdir()) == []


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


def test_a_source_uploaded_again_while_its_csv_waited_is_converted_again(instance: InstancePaths) -> None:
    """The CSV of o.json waited for o.csv to be loaded; a corrected o.json came meanwhile. Publishing archived the
    new source unread and showed the CSV of the old one."""
    source = instance.data_input / "o.json"
    source.write_text('{"id": 1}\n')
    ready = NAMING.ready(source)
    ready.write_text('"id"\n1\n')
    os.utime(ready, ns=(time.time_ns() - 10**10,) * 2)  # written 10 s ago, before the upload below
    (instance.data_input / "o.csv").write_text("not yet loaded")
    assert "waits: o.csv is still there" in recover(NAMING, instance, [instance.data_input])[0]
    source.write_text('{"id": 2}\n')  # the corrected upload
    (instance.data_input / "o.csv").unlink()
    with pytest.raises(ReplacedSince, match=r"o\.json was written to or replaced after it was converted"):
        publish(NAMING, instance, source)
    assert not ready.exists() and not (instance.data_input / "o.csv").exists()
    assert source.read_text() == '{"id": 2}\n' and not (instance.data_archive / "o.json").exists()


def _committed_conversion(instance: InstancePaths) -> Path:
    """o.json, unchanged for 10 s, and its committed CSV (`.ready`)."""
    source = instance.data_input / "o.json"
    source.write_text('{"id": 1}\n')
    os.utime(source, ns=(time.time_ns() - 10**10,) * 2)
    NAMING.ready(source).write_text('"id"\n1\n')
    return source


def _publish_killed_at(monkeypatch: pytest.MonkeyPatch, step: str, instance: InstancePaths, source: Path) -> None:
    """publish() stopped as by kill -9 when it comes to `step` (a function of redpss.convert.files)."""

    def killed(*_: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(files_module, step, killed)
    with pytest.raises(SystemExit):
        publish(NAMING, instance, source)
    monkeypatch.undo()


def test_a_source_uploaded_again_after_a_stop_between_archiving_and_showing_keeps_the_waiting_csv(
    instance: InstancePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the source was archived, before its CSV was shown; the sender uploads a new version under the
    same name before the converter is back. The waiting CSV is of the archived version: it is shown, and the new
    version waits for its own conversion. Before, the new upload counted as a correction of the archived one and
    the waiting CSV was deleted: the archived version's rows were never loaded."""
    source = _committed_conversion(instance)
    _publish_killed_at(monkeypatch, "_link_once", instance, source)
    assert (instance.data_archive / "o.json").read_text() == '{"id": 1}\n' and not source.exists()
    source.write_text('{"id": 2}\n')  # the next upload, before the converter is back
    recover(NAMING, instance, [instance.data_input])
    assert (instance.data_input / "o.csv").read_text() == '"id"\n1\n'
    assert source.read_text() == '{"id": 2}\n'  # not archived: converted on its own turn
    assert sorted(p.name for p in instance.data_archive.iterdir()) == ["o.json"]
    assert sorted(p.name for p in instance.data_input.iterdir()) == ["o.csv", "o.json"]
    NAMING.ready(source).write_text('"id"\n2\n')  # its conversion: shown once the first CSV is loaded
    with pytest.raises(FileExistsError, match=r"o\.csv is still there"):
        publish(NAMING, instance, source)
    (instance.data_input / "o.csv").unlink()
    publish(NAMING, instance, source)
    assert (instance.data_input / "o.csv").read_text() == '"id"\n2\n'
    assert sorted(p.name for p in instance.data_archive.iterdir()) == ["o.json", "o.json.1"]


def test_killed_after_taking_the_csv_aside_before_archiving_the_source_finishes_both(
    instance: InstancePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _committed_conversion(instance)
    _publish_killed_at(monkeypatch, "archive", instance, source)
    assert source.exists() and not (instance.data_input / "o.csv").exists()
    recover(NAMING, instance, [instance.data_input])
    assert sorted(p.name for p in instance.data_input.iterdir()) == ["o.csv"]
    assert (instance.data_archive / "o.json").read_text() == '{"id": 1}\n'


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


def test_a_name_not_utf8_or_with_a_line_break_is_shown_escaped_in_its_one_line_reason(instance: InstancePaths) -> None:
    name = os.fsdecode(b"caf\xe9\nlog line.json")  # Latin-1, and a line break an uploader put in
    source = instance.data_input / name
    source.write_text("x")
    moved = reject(instance, source, "invalid JSON\nsecond line of a library's message")
    assert moved.name == name and moved.read_text() == "x"
    reason = moved.with_name(moved.name + ".reason").read_bytes()
    expected = f"{instance.data_input}/caf\\xe9\\nlog line.json: invalid JSON second line of a library's message\n"
    assert reason == expected.encode()


def test_printable_names_escape_only_what_a_line_of_text_cannot_hold() -> None:
    assert printable(Path("/in/alice/Überweisung 2026 (1).json")) == "/in/alice/Überweisung 2026 (1).json"
    assert printable(os.fsdecode(b"a\xff\x00\tb\r\n.json")) == "a\\xff\\x00\\tb\\r\\n.json"
    assert printable("a\\n.json") == "a\\\\n.json"  # a backslash in the name: told apart from an escape
    assert printable("\x1b[31mred\u2028.json") == "\\x1b[31mred\\u2028.json"  # terminal escapes, line separators


def test_archived_sources_expire_after_their_retention(instance: InstancePaths) -> None:
    (instance.data_archive / "alice").mkdir()
    for name in ("alice/o.json", "o.json.1", "o.csv", "o.parquet"):
        (instance.data_archive / name).write_text("x")
    assert expire_archive(instance, ".json", 7, now=time.time() + 6 * 86400) == 0
    assert expire_archive(instance, ".json", 0, now=time.time() + 30 * 86400) == 0  # 0 keeps everything
    assert expire_archive(instance, ".json", 7, now=time.time() + 8 * 86400) == 2
    assert sorted(p.name for p in instance.data_archive.rglob("*") if p.is_file()) == ["o.csv", "o.parquet"]


def test_uploads_kept_by_redftp_userdel_never_expire(instance: InstancePaths) -> None:
    """`redftp_userdel --keep-data` moves what is still in the user's upload folder (never converted, never loaded)
    to data/archive/redftp_<user>_<time>: the expiry of archived sources deleted those after the retention."""
    kept = instance.data_archive / "redftp_alice_20261201T101500"
    again = instance.data_archive / "redftp_alice_20261201T101500-2"
    for folder in (kept, again, instance.data_archive / "bob"):
        folder.mkdir()
        (folder / "orders.json").write_text("x")
    assert expire_archive(instance, ".json", 7, now=time.time() + 8 * 86400) == 1  # bob's, archived by a converter
    assert (kept / "orders.json").exists() and (again / "orders.json").exists()


def test_a_reason_left_alone_is_never_given_to_another_file(instance: InstancePaths) -> None:
    (instance.data_error / "bad.json.reason").write_text("the reason of a file the operator took away\n")
    source = instance.data_input / "bad.json"
    source.write_text("x")
    moved = reject(instance, source, "invalid JSON")
    assert moved.name == "bad.json.1"
    assert (instance.data_error / "bad.json.reason").read_text() == "the reason of a file the operator took away\n"
    assert (instance.data_error / "bad.json.1.reason").read_text().endswith(": invalid JSON\n")


def test_a_name_too_long_for_its_suffixes_is_cut_keeping_its_extension(instance: InstancePaths) -> None:
    name = "é" * 121 + ".json"  # 247 bytes: fits, but `.reason` or `.1` beside it would not
    moved = []
    for attempt in (1, 2):
        source = instance.data_input / name
        source.write_text(f"attempt {attempt}")
        moved.append(reject(instance, source, "invalid JSON"))
    first, second = moved
    assert first.name.endswith("é~.json") and second.name.endswith("é~.json.1")  # cut by whole characters
    assert [p.read_text() for p in moved] == ["attempt 1", "attempt 2"]
    for path in moved:
        reason = path.with_name(path.name + ".reason")
        assert len(os.fsencode(reason.name)) <= NAME_MAX and reason.read_text().endswith(": invalid JSON\n")


def test_a_long_name_moves_across_file_systems(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        source = Path(elsewhere) / ("a" * 250 + ".csv")
        source.write_text("rows")
        assert Path(elsewhere).stat().st_dev != tmp_path.stat().st_dev  # a copy, not a rename
        moved = move_file(source, tmp_path / "archive")
        assert moved.read_text() == "rows" and not source.exists()
        assert moved.name == "a" * (NAME_MAX - 12 - 1 - 4) + "~.csv"  # room for `.tmp-` and `.reason`, `~` and `.csv`


@pytest.mark.parametrize("how", ["renamed over", "written in place"])
def test_a_move_across_file_systems_removes_the_name_only_while_it_holds_the_file_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The sender uploads a new version under the name while the old one is copied to the archive (seconds for a
    large file): removing the name afterwards deleted the new version unread."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        source = Path(elsewhere) / "orders.json"
        source.write_text("version 1\n")
        copy = shutil.copyfileobj

        def copy_while_uploaded(src: Any, dst: Any, length: int) -> None:
            copy(src, dst, length)
            if how == "renamed over":
                (Path(elsewhere) / "orders.json.filepart").write_text("version 2\n")
                (Path(elsewhere) / "orders.json.filepart").replace(source)
            else:
                with source.open("a") as same_file:
                    same_file.write("more of version 1\n")

        monkeypatch.setattr(shutil, "copyfileobj", copy_while_uploaded)  # what core.setaside copies with
        if how == "renamed over":
            moved = move_file(source, tmp_path / "archive")
            assert moved.read_text() == "version 1\n"  # the file that was there is archived
            assert source.read_text() == "version 2\n"  # the new one stays for its own turn
        else:
            with pytest.raises(SetAsideError, match="written to while it was copied"):
                move_file(source, tmp_path / "archive")
            assert source.read_text() == "version 1\nmore of version 1\n"
            assert not list((tmp_path / "archive").iterdir())  # no copy that may hold half of each


def test_recovery_leaves_entries_it_did_not_write_alone_and_goes_on(instance: InstancePaths) -> None:
    """An sFTP user's folder or file named like the converter's own: recovery (at every start) must neither act on
    it nor stop at it, so that no upload can keep the converter from starting."""
    data = instance.data_input
    (data / "a.json").write_text("{}\n")
    (data / ".a.json.json2csv.ready").mkdir()  # a folder under a committed conversion's name
    (data / ".b.json.json2csv.part").mkdir()
    (data / ".c.json.json2csv.ready").write_text("not ours")
    owned_by_another_user(data / ".c.json.json2csv.ready", 0o644)
    (data / "d.json").write_text("{}\n")
    NAMING.ready(data / "d.json").write_text('"a"\n1\n')  # ours: finished as usual
    done = recover(NAMING, instance, [data])
    assert sorted(done) == sorted(
        [
            f"{data}/.a.json.json2csv.ready left alone: named like a file of json2csv, but not a file it wrote",
            f"{data}/.b.json.json2csv.part left alone: named like a file of json2csv, but not a file it wrote",
            f"{data}/.c.json.json2csv.ready left alone: named like a file of json2csv, but not a file it wrote",
            f"finished the conversion of {data}/d.json (stopped before it was published)",
        ]
    )
    assert (data / "d.csv").read_text() == '"a"\n1\n' and (instance.data_archive / "d.json").exists()
    assert (data / "a.json").exists() and not (data / "a.csv").exists() and not (data / "c.csv").exists()
    assert publish_orphans(NAMING, instance, [data]) == []  # nothing of theirs is published later either


def test_a_step_of_recovery_that_fails_is_reported_and_the_others_go_on(instance: InstancePaths) -> None:
    data = instance.data_input
    for name in ("a", "b"):
        (data / f"{name}.json").write_text("{}\n")
        NAMING.ready(data / f"{name}.json").write_text('"a"\n1\n')
    (instance.data_archive).rmdir()
    instance.data_archive.write_text("a file where the archive folder should be")
    done = recover(NAMING, instance, [data])
    assert sorted(line.split(": ")[0] for line in done) == [
        f"could not recover {NAMING.ready(data / f'{n}.json')}" for n in "ab"
    ]


def test_the_version_converted_is_the_one_archived_even_when_the_clock_cannot_tell_a_replacement(
    instance: InstancePaths,
) -> None:
    """The source is replaced between the conversion's last look and the commit, in the same tick of the file
    system's clock as the CSV's last write (its ctime is then not newer): the version converted decides, so the new
    upload is not archived unread."""
    source = instance.data_input / "o.json"
    source.write_text('{"id": 1}\n')
    converted = regular_file_state(source)
    (instance.data_input / "o.json.upload").write_text('{"id": 2}\n')
    (instance.data_input / "o.json.upload").replace(source)
    NAMING.ready(source).write_text('"id"\n1\n')  # written after the replacement: ctime cannot tell
    publish(NAMING, instance, source, converted)
    assert (instance.data_input / "o.csv").read_text() == '"id"\n1\n'
    assert source.read_text() == '{"id": 2}\n' and not (instance.data_archive / "o.json").exists()


def test_a_conversion_committed_before_the_archiving_step_existed_is_published_with_a_name_too_long_for_it(
    instance: InstancePaths,
) -> None:
    """Names of 223 to 239 bytes fit `.ready` but not the `.archiving` name: a `.ready` left by the version before
    (an upgrade) is published the way it was then."""
    source = instance.data_input / ("a" * 225 + ".json")
    source.write_text('{"id": 1}\n')
    NAMING.ready(source).write_text('"id"\n1\n')
    publish(NAMING, instance, source)
    assert NAMING.target(source).read_text() == '"id"\n1\n'
    assert (instance.data_archive / source.name).exists() and not source.exists()
    assert sorted(p.name for p in instance.data_input.iterdir()) == [NAMING.target(source).name]


def test_a_conversion_whose_source_could_not_be_archived_is_finished_on_its_next_turn_not_converted_again(
    instance: InstancePaths,
) -> None:
    """The converter's own path (ConvertService._convert): the CSV was taken aside but archiving the source failed
    (its folder not writable, held for a while). The source's next turn archives it and shows that CSV; a second
    conversion would have shown the same rows twice."""
    instance.config_file.write_text(render_config({"DEFAULT": {"exa_password": "secret-pw"}}))
    service = ConvertService("json", load_config(instance.config_file), instance)
    source = instance.data_input / "o.json"
    source.write_text('{"id": 1}\n')
    os.utime(source, ns=(time.time_ns() - 10**10,) * 2)
    NAMING.ready(source).write_text('"id"\n1\n')
    instance.data_archive.rmdir()
    instance.data_archive.write_text("a file where the archive folder should be")
    with pytest.raises(OSError):
        publish(NAMING, instance, source)
    key = version_key(regular_file_state(source))  # type: ignore[arg-type]
    assert sorted(p.name for p in instance.data_input.iterdir()) == [f".o.json.json2csv.{key}.archiving", "o.json"]
    assert publish_orphans(NAMING, instance, [instance.data_input]) == []  # left to the source's turn and its hold
    subprocess.run(["chmod", "-R", "g+w", str(instance.data_input)], check=True)  # the fix an operator is told
    instance.data_archive.unlink()
    instance.data_archive.mkdir()
    state = regular_file_state(source)
    assert state is not None
    service._convert(source, state)
    assert sorted(p.name for p in instance.data_input.iterdir()) == ["o.csv"]
    assert (instance.data_input / "o.csv").read_text() == '"id"\n1\n'  # the CSV converted before, shown once
    assert (instance.data_archive / "o.json").read_text() == '{"id": 1}\n'
