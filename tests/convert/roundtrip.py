"""Helpers of the converter tests. A converted CSV is read back the way devdb's IMPORT reads it (DuckDB's CSV
reader, every field as text, then CAST to the target column): the tests check what the database would store."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

from redpss.core.paths import InstancePaths
from redpss.devdb.commands import CsvOptions
from redpss.devdb.csvio import load_csv
from redpss.devdb.translate import ObjectName


def imported(csv: Path, columns: dict[str, str]) -> list[tuple[Any, ...]]:
    """The rows IMPORT INTO t(<the CSV's header>) ... SKIP=1 stores from `csv` into a table of `columns`
    (name -> DuckDB type), in the order of `columns`."""
    names = csv_rows(csv)[0]
    with duckdb.connect() as db:
        spec = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
        db.execute(f"CREATE TABLE t ({spec})")
        load_csv(db, ObjectName("main", "t"), names, csv, CsvOptions(skip=1))
        return db.execute("SELECT * FROM t").fetchall()


def csv_rows(path: Path) -> list[list[str]]:
    """The file's rows as Python's csv module reads RFC 4180 (header included)."""
    with path.open(newline="", encoding="utf-8") as opened:
        return list(csv.reader(opened))


def user_link(instance: InstancePaths, root: Path) -> Path:
    """data/input/alice, a link to a folder outside the instance tree, as redftp_useradd makes for an sFTP user."""
    upload = root / "sftp" / "alice" / "upload"
    upload.mkdir(parents=True)
    link = instance.data_input / "alice"
    link.symlink_to(upload)
    return link


def converted_apart(script: str, source: Path, output: Path, timeout: float = 300) -> str:
    """Run `script` (Python; sys.argv[1:] are `source` and `output`) in a process of its own, for what a test must not
    do to its own process (limits, peak memory); its standard output, after asserting it ended well."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(source), str(output)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
