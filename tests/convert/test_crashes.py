"""The record of the source a converter's process ended in, across restarts (redpss.convert.crashes)."""

from __future__ import annotations

from pathlib import Path

from redpss.convert.crashes import CrashRecord


def test_other_sources_converted_before_the_suspect_keep_its_count(tmp_path: Path) -> None:
    """After a restart the ready files are taken in order: an upload sorting before the file that ended the process
    set its count back to zero, so the file was never set aside and the process kept ending on it."""
    bad, good = tmp_path / "bob" / "bad.json", tmp_path / "alice" / "good.json"
    first = CrashRecord(tmp_path, "json2csv")
    first.begin(bad)  # ... and the process ends: no end()
    second = CrashRecord(tmp_path, "json2csv")
    assert second.found_at_start() == (bad, 1)
    second.begin(good)
    second.end()  # alice's upload converted first
    second.begin(bad)  # ... and the process ends again
    assert CrashRecord(tmp_path, "json2csv").found_at_start() == (bad, 2)


def test_a_conversion_that_ends_in_the_process_leaves_no_record(tmp_path: Path) -> None:
    record = CrashRecord(tmp_path, "parq2csv")
    record.begin(tmp_path / "a.parquet")
    record.end()
    assert CrashRecord(tmp_path, "parq2csv").found_at_start() is None
    (tmp_path / "parq2csv-converting.json").write_text("{torn")
    assert CrashRecord(tmp_path, "parq2csv").found_at_start() is None  # names nothing: forgotten
    assert not (tmp_path / "parq2csv-converting.json").exists()
