"""JSON2CSV and PARQ2CSV as real processes: files in data/input and in users' folders converted once, finished files
only, bad ones to data/error with a reason, a daemon killed with SIGKILL mid-file converts it exactly once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from redpss.core.config import render_config
from redpss.core.paths import InstancePaths
from tests.convert.roundtrip import csv_rows, user_link
from tests.support.daemons import DaemonProcess
from tests.support.file_access import WITHOUT_FILE_ACCESS_OVERRIDE, held_open_for_writing, owned_by_another_user
from tests.support.wait import wait_for

STABLE = 0.3  # ingest_stable_seconds for these tests


@pytest.fixture
def converter_instance(instance: InstancePaths) -> InstancePaths:
    instance.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "secret-pw"}, "redctl": {"ingest_stable_seconds": str(STABLE)}})
    )
    return instance


@pytest.fixture
def user_folder(converter_instance: InstancePaths, tmp_path: Path) -> Path:
    return user_link(converter_instance, tmp_path)


class Converters:
    def __init__(self, instance: InstancePaths, workdir: Path) -> None:
        self.instance = instance
        self.workdir = workdir
        self.started: list[DaemonProcess] = []

    def start(self, name: str, launcher: tuple[str, ...] = ()) -> DaemonProcess:
        daemon = DaemonProcess(
            f"redpss.convert.{name}",
            self.instance,
            self.workdir / f"{name}-{len(self.started)}",
            log_name=name,
            launcher=launcher,
        )
        self.started.append(daemon)
        daemon.wait_ready()
        return daemon

    def close(self) -> None:
        for daemon in self.started:
            daemon.close()


@pytest.fixture
def converters(converter_instance: InstancePaths, tmp_path: Path) -> Iterator[Converters]:
    running = Converters(converter_instance, tmp_path / "daemons")
    yield running
    running.close()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_json_and_parquet_in_a_user_folder_become_csv(
    converters: Converters, converter_instance: InstancePaths, user_folder: Path
) -> None:
    converters.start("json2csv")
    converters.start("parq2csv")
    (user_folder / "orders.json").write_text(
        '[{"id": 1, "item": {"name": "tea"}}, {"id": 2, "item": {"name": "café"}}]'
    )
    pq.write_table(pa.table({"id": [7], "price": pa.array([1.5], pa.float32())}), user_folder / "prices.parquet")
    (converter_instance.data_input / "top.JSON").write_text('{"x": true}\n')  # as a Windows client may name it
    wait_for(lambda: (user_folder / "orders.csv").exists() and (user_folder / "prices.csv").exists(), 30, what="CSVs")
    wait_for((converter_instance.data_input / "top.csv").exists, 30, what="top.csv")
    assert csv_rows(user_folder / "orders.csv") == [["id", "item.name"], ["1", "tea"], ["2", "café"]]
    assert csv_rows(user_folder / "prices.csv") == [["id", "price"], ["7", "1.5"]]
    assert csv_rows(converter_instance.data_input / "top.csv") == [["x"], ["1"]]
    archive = converter_instance.data_archive
    assert _names(archive / "alice") == ["orders.json", "prices.parquet"]
    assert _names(archive) == ["alice", "top.JSON"]
    assert _names(user_folder) == ["orders.csv", "prices.csv"]  # no temporary file left


def test_files_in_subfolders_are_converted_and_archived_under_the_same_path(
    converters: Converters, converter_instance: InstancePaths, user_folder: Path
) -> None:
    """Other systems drop files into subfolders of data/input, sFTP users upload into folders they make."""
    converters.start("json2csv")
    dropped = converter_instance.data_input / "orders" / "eu"
    uploaded = user_folder / "2026-11"
    for folder in (dropped, uploaded):
        folder.mkdir(parents=True)
        (folder / "day.json").write_text('{"n": 1}\n')
    wait_for(lambda: (dropped / "day.csv").exists() and (uploaded / "day.csv").exists(), 30, what="both CSVs")
    assert csv_rows(dropped / "day.csv") == csv_rows(uploaded / "day.csv") == [["n"], ["1"]]
    archive = converter_instance.data_archive
    wait_for((archive / "orders" / "eu" / "day.json").exists, 30, what="archived drop")
    wait_for((archive / "alice" / "2026-11" / "day.json").exists, 30, what="archived upload")
    assert _names(dropped) == _names(uploaded) == ["day.csv"]


def test_a_file_still_being_written_waits(converters: Converters, user_folder: Path) -> None:
    converters.start("json2csv")
    source = user_folder / "slow.json"
    with source.open("w") as upload:
        for i in range(40):  # an upload that writes for longer than ingest_stable_seconds, in small steps
            upload.write(json.dumps({"id": i}) + "\n")
            upload.flush()
            # the wait between writes is how slowly this upload arrives, shorter than STABLE: no synchronisation
            _pause(STABLE / 3)
            assert not (user_folder / "slow.csv").exists(), f"converted while being written (after {i + 1} lines)"
    wait_for((user_folder / "slow.csv").exists, 30, what="slow.csv")
    assert [r[0] for r in csv_rows(user_folder / "slow.csv")] == ["id", *map(str, range(40))]


def test_an_upload_whose_writer_stalls_waits_until_it_is_closed(converters: Converters, user_folder: Path) -> None:
    """An sFTP client that stops sending for longer than ingest_stable_seconds (a slow line, a laptop asleep) leaves
    a file unchanged for that long while its sftp-server still has it open: it is taken once closed, not before.
    The daemon runs as redsys would (no file-access override, the upload another user's, CAP_LEASE as its unit)."""
    converters.start("json2csv", WITHOUT_FILE_ACCESS_OVERRIDE)
    stalled = user_folder / "stalled.json"
    stalled.write_text('{"id": 0}\n')
    owned_by_another_user(stalled, 0o640)
    with held_open_for_writing(stalled) as upload:
        old = time.time() - 100  # nothing written for far longer than the interval
        os.utime(stalled, (old, old))
        (user_folder / "later.json").write_text('{"id": 9}\n')  # finished, and seen steady after stalled.json was
        wait_for((user_folder / "later.csv").exists, 30, what="later.csv")
        assert not (user_folder / "stalled.csv").exists() and stalled.exists()
        upload.append('{"id": 1}\n')  # the client resumes; then it closes the file
    wait_for((user_folder / "stalled.csv").exists, 30, what="stalled.csv")
    assert [r[0] for r in csv_rows(user_folder / "stalled.csv")] == ["id", "0", "1"]


def test_a_file_written_to_while_another_is_converted_waits(
    converters: Converters, converter_instance: InstancePaths, tmp_path: Path
) -> None:
    """Both files are finished when a pass begins; the pass converts first.json (seconds: every block goes to
    Python's parser) while second.json is written to again, from the moment first.json's output appears.
    second.json must wait until it is steady once more: taken at once, the rows written after the take would go to
    data/archive with it and never be loaded."""
    folder = converter_instance.data_input
    # steady for 2 s: a writer paused by a busy machine for STABLE (0.3 s) would rightly make its file steady
    converter_instance.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "secret-pw"}, "redctl": {"ingest_stable_seconds": "2"}})
    )
    _mixed_ndjson(tmp_path / "first.json", 700_000)  # ~40 MB: ~3 s, the first block's output after ~0.2 s
    (tmp_path / "first.json").rename(folder / "first.json")
    second = folder / "second.json"
    second.write_text('{"id": 0}\n')
    converters.start("json2csv")  # its first pass sees both files at once
    wait_for(
        (folder / ".first.json.json2csv.part").exists, 60, interval=0.005, what="the conversion of first.json under way"
    )
    lines = 1
    with second.open("a") as upload:
        writes_after = 10  # the upload goes on for a while after first.json is done, when second.json comes next
        while writes_after:
            upload.write(json.dumps({"id": lines}) + "\n")
            upload.flush()
            lines += 1
            # the pace of this upload, far shorter than the 2 s: no synchronisation
            _pause(0.1)
            assert not (folder / "second.csv").exists(), f"second.json converted while written (after {lines} lines)"
            if (folder / "first.csv").exists():
                writes_after -= 1
    wait_for((folder / "second.csv").exists, 30, what="second.csv")
    assert [r[0] for r in csv_rows(folder / "second.csv")] == ["id", *map(str, range(lines))]
    assert csv_rows(folder / "first.csv")[-1] == ["699999", "699999", "lorem ipsum dolor sit amet"]


def _mixed_ndjson(path: Path, rows: int) -> None:
    """Records whose field v is a number in one and text in the next: every block goes to Python's parser."""
    text = ',"t":"lorem ipsum dolor sit amet"}\n'
    with path.open("w") as out:
        for i in range(rows):
            out.write(f'{{"id":{i},"v":{i}' + text if i % 2 else f'{{"id":{i},"v":"{i}"' + text)


def test_names_that_are_not_utf8_or_hold_a_line_break_are_shown_escaped_and_stop_nothing(
    converters: Converters, converter_instance: InstancePaths
) -> None:
    """A file name is bytes: one that is not UTF-8 or holds a line break goes into reasons and log lines escaped
    (one line, as repr shows it), and the files after it are converted all the same."""
    folder = converter_instance.data_input
    bad_name = os.fsdecode(b"bad\xff\nname.json")
    (folder / bad_name).write_text('{"a": 1}\n{"a": 2\n')
    (folder / os.fsdecode(b"ok\xfe.json")).write_text('{"a": 1}\n')
    (folder / "zz.json").write_text('{"a": 2}\n')
    daemon = converters.start("json2csv")
    wait_for(lambda: (folder / "zz.csv").exists() or daemon.process.poll() is not None, 30, what="zz.csv or an exit")
    assert daemon.process.poll() is None, daemon.stderr
    assert csv_rows(folder / os.fsdecode(b"ok\xfe.csv")) == [["a"], ["1"]]
    reason = (converter_instance.data_error / (bad_name + ".reason")).read_bytes()
    assert reason == (
        f"{folder}/bad\\xff\\nname.json: line 2, character 8: invalid JSON: Expecting ',' delimiter\n".encode()
    )
    daemon.wait_log("converted " + str(folder) + "/ok\\xfe.json to ok\\xfe.csv")
    daemon.wait_log(str(folder) + "/bad\\xff\\nname.json cannot be converted (line 2")
    assert "\nname.json" not in daemon.log and "bad?" not in daemon.log  # no line forged, no byte lost


def _pause(seconds: float) -> None:
    """The pace of a writer (not a synchronisation): an upload that writes every `seconds`."""
    import time  # noqa: PLC0415

    time.sleep(seconds)


def test_bad_files_go_to_error_with_their_reason(
    converters: Converters, converter_instance: InstancePaths, user_folder: Path
) -> None:
    converters.start("json2csv")
    daemon = converters.start("parq2csv")
    (user_folder / "broken.json").write_text('{"a": 1}\n{"a": 2\n')
    (user_folder / "broken.parquet").write_bytes(b"PAR1" + b"\x00" * 64)
    error = converter_instance.data_error / "alice"
    wait_for(lambda: error.is_dir() and len(list(error.iterdir())) == 4, 30, what="both files and reasons in error/")
    json_reason = (error / "broken.json.reason").read_text()
    assert json_reason == f"{user_folder / 'broken.json'}: line 2, character 8: invalid JSON: Expecting ',' delimiter\n"
    assert "file footer: not a readable Parquet file" in (error / "broken.parquet.reason").read_text()
    assert _names(user_folder) == []
    daemon.wait_log("broken.parquet cannot be converted")


def test_no_upload_stops_the_converter_or_makes_it_loop(
    converters: Converters, converter_instance: InstancePaths, user_folder: Path, tmp_path: Path
) -> None:
    """What an sFTP user can leave in its folder, seen by a converter bound by file modes as redsys is: entries under
    the converter's own temporary names (it must still start), folders it may not enter or list (told once), a file
    it cannot read, a name too long for the names a conversion needs, a source whose temporary name a folder takes
    (those three to data/error with a reason), a bad file in a folder it cannot write (left in place, nothing left
    behind in data/error, said once, not retried in a loop); the other files are converted all the same."""
    (user_folder / ".planted.json.json2csv.ready").mkdir()
    (user_folder / ".planted.json.json2csv.part").mkdir()
    (user_folder / "private" / "inner").mkdir(parents=True)
    owned_by_another_user(user_folder / "private", 0o740)  # its names can be listed, not looked at
    (user_folder / "locked").mkdir()
    owned_by_another_user(user_folder / "locked", 0o700)  # not even listed
    (user_folder / "blind").mkdir()
    owned_by_another_user(user_folder / "blind", 0o711)  # entered, not listed
    deepest = user_folder.joinpath(*[f"level{n}" for n in range(1, 9)])  # the last level watched, not walked
    deepest.mkdir(parents=True)
    owned_by_another_user(deepest, 0o700)
    carol = tmp_path / "sftp" / "carol"  # a user's folder that cannot be reached: its chroot is not enterable
    (carol / "upload").mkdir(parents=True)
    owned_by_another_user(carol, 0o700)
    (converter_instance.data_input / "carol").symlink_to(carol / "upload")
    daemon = converters.start("json2csv", WITHOUT_FILE_ACCESS_OVERRIDE)
    daemon.wait_log(".planted.json.json2csv.ready left alone: named like a file of json2csv, but not a file it wrote")
    (user_folder / "secret.json").write_text('{"a": 1}\n')
    owned_by_another_user(user_folder / "secret.json", 0o600)
    long_name = "n" * 240 + ".json"  # `.<name>.json2csv.part.joined` would be 267 bytes
    (user_folder / long_name).write_text('{"a": 1}\n')
    (user_folder / "blocked.json").write_text('{"a": 1}\n')
    (user_folder / ".blocked.json.json2csv.part").mkdir()
    bob = tmp_path / "sftp" / "bob" / "upload"
    bob.mkdir(parents=True)
    (bob / "bad.json").write_text("{not json\n")
    owned_by_another_user(bob / "bad.json", 0o640)
    owned_by_another_user(bob, 0o2750)  # a folder redsys may read but not change
    (converter_instance.data_input / "bob").symlink_to(bob)
    daemon.wait_log("cannot be moved to data/error")
    (user_folder / "good.json").write_text('{"a": 1}\n')
    wait_for((user_folder / "good.csv").exists, 30, what="good.csv")
    error = converter_instance.data_error / "alice"
    wait_for(lambda: len(list(error.iterdir())) == 6, 30, what="three files and their reasons in error/alice")
    reason = (error / "secret.json.reason").read_text()
    assert "the converter cannot read the file (Permission denied); make it readable by group redftp" in reason
    (cut,) = [p for p in error.iterdir() if p.name.endswith("~.json")]
    # the longest name a conversion needs beside it: `.<name>.json2csv.<12-digit key>.archiving`, 33 bytes more
    assert "the name is too long to convert beside it: rename it to at most 222 bytes" in (
        cut.with_name(cut.name + ".reason").read_text()
    )
    assert ".blocked.json.json2csv.part is in the way (not a file json2csv wrote)" in (
        (error / "blocked.json.reason").read_text()
    )
    assert (bob / "bad.json").exists() and daemon.process.poll() is None
    assert not (converter_instance.data_error / "bob").exists() or not any(
        (converter_instance.data_error / "bob").iterdir()
    )  # the reason written before the move that failed is gone with it
    (user_folder / "later.json").write_text('{"a": 2}\n')  # passes after bad.json was seen steady again
    wait_for((user_folder / "later.csv").exists, 30, what="later.csv")
    assert daemon.log.count("bad.json cannot be converted") == 1
    for folder, why in (
        (user_folder / "private", "it may be listed but not entered"),
        (user_folder / "locked", "it may not be entered"),
        (user_folder / "blind", "it may be entered but not listed"),
        (deepest, "it may not be entered"),
        (converter_instance.data_input / "carol", "its folder cannot be reached: Permission denied"),
    ):
        told = f"cannot read folder {folder} ({why}): files uploaded there are not taken"
        assert daemon.log.count(told) == 1, daemon.log  # told once, though every pass meets it
    assert "cannot list" not in daemon.log
    private = f"cannot read folder {user_folder / 'private'} (it may be listed but not entered)"
    (user_folder / "private").chmod(0o750)  # mended: its files are taken ...
    (user_folder / "private" / "inner" / "mended.json").write_text('{"a": 3}\n')
    wait_for((user_folder / "private" / "inner" / "mended.csv").exists, 30, what="mended.csv")
    (user_folder / "private").chmod(0o740)  # ... and when it comes back, it is told again
    wait_for(lambda: daemon.log.count(private) == 2, 30, what="the folder's problem told again")
    assert sorted(p.name for p in user_folder.iterdir()) == [
        ".blocked.json.json2csv.part", ".planted.json.json2csv.part", ".planted.json.json2csv.ready", "blind",
        "good.csv", "later.csv", "level1", "locked", "private",
    ]  # fmt: skip


def _big_ndjson(path: Path, rows: int) -> None:
    line = ',"text":"' + 'lorem, \\"ipsum\\" dolor ' * 8 + '"}\n'
    with path.open("w") as out:
        for start in range(0, rows, 10000):
            out.write("".join(f'{{"id":{i}' + line for i in range(start, min(rows, start + 10000))))


def test_sigkill_mid_file_then_restart_converts_exactly_once(
    converters: Converters, converter_instance: InstancePaths, tmp_path: Path
) -> None:
    rows = 400_000  # ~80 MB: long enough to be killed in the middle
    staged = tmp_path / "big.json"
    _big_ndjson(staged, rows)
    daemon = converters.start("json2csv")
    source = converter_instance.data_input / "big.json"
    staged.rename(source)
    part = converter_instance.data_input / ".big.json.json2csv.part"
    wait_for(lambda: part.exists() and part.stat().st_size > 1 << 20, 60, interval=0.005, what="conversion under way")
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(10)
    assert source.exists() and not (converter_instance.data_input / "big.csv").exists()
    converters.start("json2csv")
    target = converter_instance.data_input / "big.csv"
    wait_for(target.exists, 120, what="big.csv after the restart")
    table = pacsv.read_csv(target, read_options=pacsv.ReadOptions(use_threads=False))
    assert table.num_rows == rows and table["id"].to_pylist() == list(range(rows))
    assert _names(converter_instance.data_input) == ["big.csv"]
    assert _names(converter_instance.data_archive) == ["big.json"]


def test_a_file_whose_conversion_ends_the_process_twice_goes_to_error(
    converters: Converters, converter_instance: InstancePaths, tmp_path: Path
) -> None:
    """A file that ends the process where no handler can catch it (a crash in pyarrow's native code, the kernel's
    SIGKILL for the memory it decodes to) was taken again right after each restart, until systemd gave up on the
    unit and no file of any user was converted. Killed twice in its conversion, it goes to data/error."""
    staged = tmp_path / "big.json"
    _big_ndjson(staged, 400_000)
    source = converter_instance.data_input / "big.json"
    part = converter_instance.data_input / ".big.json.json2csv.part"
    staged.rename(source)
    for run in (1, 2):
        daemon = converters.start("json2csv")
        wait_for(lambda: part.exists() and part.stat().st_size > 1 << 20, 60, interval=0.005, what="conversion")
        daemon.process.send_signal(signal.SIGKILL)  # as the kernel's OOM killer ends a process
        daemon.process.wait(10)
        assert source.exists(), run
    daemon = converters.start("json2csv")
    assert "ended while it converted" in converters.started[1].log  # the first restart said so, and tried again
    reason = converter_instance.data_error / "big.json.reason"
    wait_for(reason.exists, 30, what="big.json set aside with its reason")
    assert "ended the converter's process 2 times in a row" in reason.read_text()
    assert _names(converter_instance.data_error) == ["big.json", "big.json.reason"]
    assert not (converter_instance.data_input / "big.csv").exists()
    daemon.wait_log("cannot be converted")


def test_sigterm_finishes_the_file_in_progress(
    converters: Converters, converter_instance: InstancePaths, tmp_path: Path
) -> None:
    staged = tmp_path / "big.json"
    _big_ndjson(staged, 300_000)
    daemon = converters.start("json2csv")
    staged.rename(converter_instance.data_input / "big.json")
    part = converter_instance.data_input / ".big.json.json2csv.part"
    wait_for(part.exists, 60, interval=0.005, what="conversion under way")
    assert daemon.stop() == 0
    assert _names(converter_instance.data_input) == ["big.csv"]
    assert (
        pacsv.read_csv(
            converter_instance.data_input / "big.csv", read_options=pacsv.ReadOptions(use_threads=False)
        ).num_rows
        == 300_000
    )


def test_a_source_replaced_while_it_is_converted_is_converted_again(
    converters: Converters, converter_instance: InstancePaths, tmp_path: Path
) -> None:
    """An uploader renames a new big.json over the one being converted: the CSV of the old rows is dropped and the
    new file converted; archiving the new file under the old rows' CSV would lose its rows."""
    staged = tmp_path / "big.json"
    _big_ndjson(staged, 400_000)
    daemon = converters.start("json2csv")
    source = converter_instance.data_input / "big.json"
    staged.rename(source)
    part = converter_instance.data_input / ".big.json.json2csv.part"
    wait_for(lambda: part.exists() and part.stat().st_size > 1 << 20, 60, interval=0.005, what="conversion under way")
    newer = tmp_path / "newer.json"
    newer.write_text('{"id": 999, "v": "NEW"}\n')
    newer.rename(source)
    target = converter_instance.data_input / "big.csv"
    wait_for(target.exists, 120, what="big.csv")
    assert csv_rows(target) == [["id", "v"], ["999", "NEW"]]
    assert _names(converter_instance.data_input) == ["big.csv"]
    assert (converter_instance.data_archive / "big.json").read_text() == '{"id": 999, "v": "NEW"}\n'
    daemon.wait_log("big.json changed while it was converted")


def test_a_conversion_done_while_its_csv_name_is_taken_waits_with_its_source(
    converters: Converters, converter_instance: InstancePaths
) -> None:
    """orders.csv appears (another upload) while orders.json is converted: the source stays until the name is
    free, and a later orders.json is never taken for it."""
    from redpss.convert.files import Naming, publish  # noqa: PLC0415

    naming = Naming("json2csv", ".json", ".csv")
    folder = converter_instance.data_input
    source, target = folder / "orders.json", folder / "orders.csv"
    source.write_text('{"id": 1}\n')
    naming.ready(source).write_text('"id"\n1\n')  # converted and committed
    target.write_text("someone else's\n")
    with pytest.raises(FileExistsError, match=r"orders\.csv is still there"):
        publish(naming, converter_instance, source)
    assert source.exists() and target.read_text() == "someone else's\n"
    source.unlink()  # as if archived before the name was taken (a kill between the steps)
    daemon = converters.start("json2csv")
    target.unlink()  # loaded: the name is free, the committed CSV is shown
    wait_for(lambda: target.exists() and target.read_text() == '"id"\n1\n', 30, what="the committed CSV shown")
    daemon.wait_log("converted before while its name was taken")
    source.write_text('{"id": 2}\n')  # a new file of the same name waits for the name, then is converted on its own
    daemon.wait_log("orders.json waits: orders.csv is still there")
    target.unlink()
    wait_for(lambda: not source.exists() and target.exists(), 30, what="the new orders.csv")
    assert csv_rows(target) == [["id"], ["2"]]
    assert (converter_instance.data_archive / "orders.json").read_text() == '{"id": 2}\n'
