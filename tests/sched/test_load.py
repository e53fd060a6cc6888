"""LOAD jobs against devdb, which pulls the files over implicit FTPS from a real CFISRV daemon serving data/.

The database fetches every file through the CONNECTION REDSYS_CFI, as in production; what is checked here is the
job's side: the statement, the rows, where each file ends up, the reason of a rejected file, the exactly-once ledger
and the ROWS_LOADED of the job log. tests/e2e/test_ingest.py runs the whole chain with every daemon.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redpss.cfi.tls import ensure_certificate
from redpss.core.config import Config, Secret, load_config, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.db.errors import DatabaseQueryError
from redpss.core.db.sqltext import insert_statement
from redpss.core.durable import rename_without_replacing
from redpss.core.net import free_port, free_ports_beside_range
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.devdb.testing import InProcessDevDb
from redpss.jmon.schedule import Definition, role
from redpss.sched import load as load_module
from redpss.sched.load import LoadCommand, LoadCommandError, LoadRejected, load_files, parse_command
from redpss.sched.runlog import run_rows
from redpss.sched.runners import execute
from redpss.sched.runs import FAILED, OK, RunRequest, RunResult
from tests.sched.load_process import load_request as request
from tests.support.daemons import DaemonProcess
from tests.support.file_access import (
    WITHOUT_FILE_ACCESS_OR_OWNER_OVERRIDE,
    WITHOUT_FILE_ACCESS_OVERRIDE,
    held_open_for_writing,
    owned_by_another_user,
)

ORDERS = 'CREATE TABLE LOADS.ORDERS (ID DECIMAL(9,0), ITEM VARCHAR(40), QTY DECIMAL(9,0), "AT" TIMESTAMP)'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("orders", "'orders' is not key=value"),
        ("files=a/*.csv", "table= is missing"),
        ("table=T", "files= is missing"),
        ("table=T files=a.csv colour=red", "unknown key 'colour' (known: column_delimiter, column_separator,"),
        ("table=T files=../other/*.csv", "files='../other/*.csv' must be a glob relative to data/input without '..'"),
        ("table=T files=/etc/*.csv", "must be a glob relative to data/input"),
        ("table='T; DROP' files=a.csv", "table='T; DROP' is not a table name"),
        ("table=T files=a.csv column_separator=;;", "column_separator=';;' must be exactly one character"),
        ("table=T files=a.csv skip=-1", "skip='-1' must be the number of header lines"),
        ("table=T files=a.csv skip=²", "skip='²' must be the number of header lines"),  # a digit to isdigit()
        ("table=T files=a.csv row_separator=NL", "row_separator='NL' must be one of LF, CRLF, CR"),
        ("table=T files=a.csv columns=A,B-C", "columns: 'B-C' is not a column name"),
        ("table=T files=a.csv skip=1 skip=2", "skip is given twice"),
        ("table=T files='a.csv", "cannot split"),
        ("table=T files=a.csv columns=header skip=0", "columns=header reads the names from the header line: it needs"),
    ],
)
def test_a_bad_command_is_refused_naming_the_problem_and_showing_a_valid_one(text: str, problem: str) -> None:
    with pytest.raises(LoadCommandError) as caught:
        parse_command(text)
    assert problem in str(caught.value)
    assert str(caught.value).startswith("LOAD command: ")
    assert "e.g. table=APP1.ORDERS files='orders/*.csv'" in str(caught.value)


def test_a_command_becomes_one_import_per_file_through_the_cfi_connection() -> None:
    command = parse_command(
        "table=app1.orders files='orders/*.csv' skip=0 column_separator=';' column_delimiter=\"'\" "
        "row_separator=crlf encoding=iso-8859-1 null=NA columns=id,item"
    )
    assert command == LoadCommand(
        "APP1.ORDERS", "orders/*.csv", 0, ";", "'", "CRLF", "ISO-8859-1", "NA", ("ID", "ITEM")
    )
    assert command.import_statement("input/orders/o'1.csv") == (
        "IMPORT INTO APP1.ORDERS (ID, ITEM) FROM CSV AT REDSYS_CFI FILE 'input/orders/o''1.csv' "
        "ENCODING = 'ISO-8859-1' ROW SEPARATOR = 'CRLF' COLUMN SEPARATOR = ';' COLUMN DELIMITER = '''' SKIP = 0 "
        "NULL = 'NA'"
    )
    assert parse_command("table=T files=x/*.csv") == LoadCommand("T", "x/*.csv")  # header skipped by default
    by_header = parse_command("table=T files=x/*.csv columns=HEADER")
    assert by_header == LoadCommand("T", "x/*.csv", header_columns=True)
    assert by_header.import_statement("input/x/a.csv", ["ID", 'odd "name"']).startswith(  # as the table has them
        'IMPORT INTO T ("ID", "odd ""name""") FROM CSV AT REDSYS_CFI FILE \'input/x/a.csv\' '
    )


@dataclass
class Site:
    paths: InstancePaths
    session: DbSession
    config: Config
    ftp_port: int
    dsn: str
    redftp: Path  # CFISRV's sFTP root, on another file system (tmpfs) than the instance tree
    devdb: InProcessDevDb

    def drop(self, relative: str, text: str, *, age: float = 60.0) -> Path:
        """A file below data/input, its modification time `age` seconds ago (0: just written)."""
        path = self.paths.data_input / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if age:
            past = time.time() - age
            os.utime(path, (past, past))
        return path

    def rows(self) -> list[tuple[object, ...]]:
        return self.session.fetchall('SELECT ID, ITEM, QTY, "AT" FROM LOADS.ORDERS ORDER BY ID')

    def load(self, command: str) -> object:
        return load_files(request(command), parse_command(command), self.session, self.paths, self.config)

    def load_as_instance_user(self, command: str, kind: str = "LOAD", *, owner: bool = True) -> dict[str, object]:
        """The outcome of a LOAD run (or, with kind FILE, a FILE watcher's check of the glob `command`) in a process
        bound by file modes, as the redsys user is (status, message). With owner=False also without root's
        CAP_FOWNER (WITHOUT_FILE_ACCESS_OR_OWNER_OVERRIDE)."""
        done = subprocess.run(
            [
                *(WITHOUT_FILE_ACCESS_OVERRIDE if owner else WITHOUT_FILE_ACCESS_OR_OWNER_OVERRIDE),
                sys.executable,
                "-m",
                "tests.sched.load_process",
                str(self.paths.redhome),
                self.paths.redenv,
                self.dsn,
                command,
                kind,
            ],
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outcome: dict[str, object] = json.loads(done.stdout)
        return outcome


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """devdb and a CFISRV daemon over one instance's data tree, for the whole module (each test starts clean)."""
    root = tmp_path_factory.mktemp("load")
    paths = InstancePaths.for_instance("TST1", root / "redsys")
    create_instance_tree(paths)
    devdb = InProcessDevDb(root / "devdb", port=free_port())
    devdb.start()
    (cfi_port,), pasv = free_ports_beside_range(1, 4)
    redctl = {
        "cfi_port": str(cfi_port),
        "cfi_explicit_port": "0",
        "cfi_pasv_port_start": str(pasv),
        "cfi_pasv_port_end": str(pasv + 3),
        "cfi_password": "cfi-test-pw",
    }
    paths.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "exasol", "exa_connection": devdb.dsn}, "redctl": redctl})
    )
    paths.config_file.chmod(0o600)
    ensure_certificate(paths)
    redftp = Path(tempfile.mkdtemp(prefix="redpss-load-", dir="/dev/shm")) / "redftp"
    cfi = DaemonProcess("redpss.cfi.service", paths, root / "cfi", "--redftp-root", str(redftp))
    session = DbSession(DbSettings(dsn=devdb.dsn, user="sys", password=Secret("exasol"), encryption=False))
    try:
        cfi.wait_ready(timeout=30)
        config = load_config(paths.config_file)
        install(session, ["LOADS"])
        yield Site(paths, session, config, cfi_port, devdb.dsn, redftp, devdb)
    finally:
        session.close()
        try:
            cfi.stop()
        finally:
            cfi.close()
            devdb.stop()
            shutil.rmtree(redftp.parent)


@pytest.fixture
def site(served: Site) -> Iterator[Site]:
    """The module's instance with an empty LOADS.ORDERS, ledger and data tree, and its config as written."""
    config_text = served.paths.config_file.read_text()
    served.session.execute("DROP TABLE IF EXISTS LOADS.ORDERS")
    served.session.execute(ORDERS)
    served.session.execute("DELETE FROM REDSYS.ADM_LOAD_FILE")
    served.session.execute(
        f"CREATE OR REPLACE CONNECTION REDSYS_CFI TO 'ftps://127.0.0.1:{served.ftp_port}/' "
        f"USER '{served.config.redctl.cfi_user}' IDENTIFIED BY 'cfi-test-pw'"
    )
    yield served
    served.paths.config_file.write_text(config_text)
    for folder in (served.paths.data_input, served.paths.data_archive, served.paths.data_error, served.redftp):
        for entry in list(folder.iterdir()) if folder.exists() else []:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


HEADER = "ID,ITEM,QTY,AT\n"


def test_files_are_imported_by_the_database_then_archived_and_recorded_once(site: Site) -> None:
    site.drop("alice/orders-1.csv", HEADER + '1,widget,3,2026-11-30 01:02:03.456789\n2,"nut, hex",,\n')
    site.drop("alice/orders-2.csv", HEADER + "3,bolt,10,2026-11-30 04:05:06.000000\n")
    site.drop("bob/other.csv", HEADER + "9,not mine,1,\n")
    report = site.load("table=LOADS.ORDERS files='alice/*.csv'")
    assert report.rows == 3  # type: ignore[attr-defined]
    assert report.message == (  # type: ignore[attr-defined]
        "3 row(s) from 2 file(s); alice/orders-1.csv: 2, alice/orders-2.csv: 1"
    )
    rows = site.rows()
    assert [r[:3] for r in rows] == [(1, "widget", 3), (2, "nut, hex", None), (3, "bolt", 10)]
    assert str(rows[0][3]).startswith("2026-11-30 01:02:03.457") and rows[1][3] is None  # milliseconds, as Exasol
    archive = site.paths.data_archive / "alice"
    assert sorted(p.name for p in archive.iterdir()) == ["orders-1.csv", "orders-2.csv"]
    assert not list((site.paths.data_input / "alice").iterdir())
    assert (site.paths.data_input / "bob" / "other.csv").exists()  # not named by the glob
    ledger = site.session.fetchall(
        "SELECT FILE_PATH, TARGET_TABLE, SCHEMA_NAME, JOB_ID, ROWS_LOADED FROM REDSYS.ADM_LOAD_FILE ORDER BY 1"
    )
    assert ledger == [
        ("input/alice/orders-1.csv", "LOADS.ORDERS", "LOADS", 7, 2),
        ("input/alice/orders-2.csv", "LOADS.ORDERS", "LOADS", 7, 1),
    ]
    again = site.load("table=LOADS.ORDERS files='alice/*.csv'")
    assert again.message == "0 row(s) from 0 file(s)"  # type: ignore[attr-defined]


def test_a_rejected_file_goes_to_error_with_the_databases_reason_and_the_others_load(site: Site) -> None:
    site.drop("in/a-good.csv", HEADER + "1,widget,3,\n")
    site.drop("in/b-bad.csv", HEADER + "2,gear,three,\n")
    with pytest.raises(LoadRejected) as caught:
        site.load("table=LOADS.ORDERS files='in/*.csv'")
    assert caught.value.extra == {"rows_loaded": 1}
    assert "1 row(s) from 1 file(s); in/a-good.csv: 1; 1 file(s) rejected to data/error: in/b-bad.csv:" in str(
        caught.value
    )
    assert [r[:3] for r in site.rows()] == [(1, "widget", 3)]  # nothing of the bad file
    bad = site.paths.data_error / "in" / "b-bad.csv"
    assert bad.read_text().endswith("2,gear,three,\n")
    reason = (site.paths.data_error / "in" / "b-bad.csv.reason").read_text()
    assert "three" in reason and "IMPORT INTO LOADS.ORDERS" in reason
    assert (site.paths.data_archive / "in" / "a-good.csv").exists()
    assert not (site.paths.data_input / "in" / "b-bad.csv").exists()


def test_a_bad_value_whose_text_reads_like_a_missing_object_still_rejects_only_its_file(site: Site) -> None:
    """The database quotes the value it could not take; what the value says must not make the file look blameless
    (left in place, it would stop every later run at the same file)."""
    site.drop("v/a-bad.csv", HEADER + "1,widget,item does not exist,\n")
    site.drop("v/b-good.csv", HEADER + "2,gear,2,\n")
    with pytest.raises(LoadRejected, match=r"1 file\(s\) rejected to data/error: v/a-bad.csv:"):
        site.load("table=LOADS.ORDERS files='v/*.csv'")
    assert [r[:3] for r in site.rows()] == [(2, "gear", 2)]
    assert (site.paths.data_error / "v" / "a-bad.csv").exists()


def test_names_of_any_printable_or_blank_characters_load(site: Site) -> None:
    for name in ("Rechnung\u00a0Mai.csv", "\u8acb\u6c42\u3000\u66f8.csv"):  # a no-break space, an ideographic one
        site.drop(f"u/{name}", HEADER + "1,widget,3,\n")
        report = site.load("table=LOADS.ORDERS files='u/*.csv'")
        assert report.message == f"1 row(s) from 1 file(s); u/{name}: 1"  # type: ignore[attr-defined]
        assert (site.paths.data_archive / "u" / name).exists()


@pytest.mark.parametrize(
    ("name", "shown", "why"),
    [("caf\udcff.csv", "caf\\xff.csv", "not UTF-8"), ("a\nb.csv", "a\\nb.csv", "control character")],
    ids=["latin-1", "line-break"],
)
def test_a_file_whose_name_import_cannot_use_is_rejected_and_the_others_load(
    site: Site, name: str, shown: str, why: str
) -> None:
    site.drop(f"n/{name}", HEADER + "1,widget,3,\n")
    site.drop("n/zz-normal.csv", HEADER + "2,gear,2,\n")
    with pytest.raises(LoadRejected) as caught:
        site.load("table=LOADS.ORDERS files='n/*.csv'")
    assert f"1 file(s) rejected to data/error: n/{shown}: its name" in str(caught.value)
    assert why in str(caught.value)
    assert [r[:3] for r in site.rows()] == [(2, "gear", 2)]
    assert (site.paths.data_error / "n" / name).exists()
    assert why in (site.paths.data_error / "n" / f"{name}.reason").read_text()


def test_a_file_still_being_written_waits_for_the_next_run(site: Site) -> None:
    site.drop("w/part.csv", HEADER + "1,widget,3,\n", age=0)
    site.drop("w/upload.csv.part", HEADER + "2,widget,3,\n")
    report = site.load("table=LOADS.ORDERS files='w/*'")
    assert report.message == "0 row(s) from 0 file(s); 1 file(s) still being written, left for the next run"  # type: ignore[attr-defined]
    assert site.rows() == []
    assert (site.paths.data_input / "w" / "part.csv").exists()


def test_an_upload_whose_writer_stalled_waits_for_its_close_and_fires_no_watcher(site: Site) -> None:
    """Untouched for a minute, but its sftp-server still has it open: neither the FILE watcher (CSVSRV) nor LOAD
    takes it, in a process bound by file modes as redsys is, the file another user's; once closed, both do."""
    stalled = site.drop("w/stalled.csv", HEADER + "1,widget,3,\n")
    owned_by_another_user(stalled, 0o640)
    with held_open_for_writing(stalled) as upload:
        upload.append("2,nut,4,\n")
        past = time.time() - 60
        os.utime(stalled, (past, past))
        assert site.load_as_instance_user("w/*.csv", kind="FILE")["message"] == "condition does not hold"
        waiting = site.load_as_instance_user("table=LOADS.ORDERS files='w/*.csv'")
        assert waiting["message"] == "0 row(s) from 0 file(s); 1 file(s) still being written, left for the next run"
    assert site.load_as_instance_user("w/*.csv", kind="FILE")["message"] == "condition holds"
    loaded = site.load_as_instance_user("table=LOADS.ORDERS files='w/*.csv'")
    assert loaded["message"] == "2 row(s) from 1 file(s); w/stalled.csv: 2", loaded
    assert [r[:3] for r in site.rows()] == [(1, "widget", 3), (2, "nut", 4)]


def test_a_failure_that_is_not_the_files_fault_leaves_it_in_place(site: Site) -> None:
    path = site.drop("x/orders.csv", HEADER + "1,widget,3,\n")
    with pytest.raises(DatabaseQueryError, match="not found"):
        site.load("table=LOADS.MISSING files='x/*.csv'")
    site.session.execute(
        "CREATE OR REPLACE CONNECTION REDSYS_CFI TO 'ftps://127.0.0.1:1/' USER 'cfi' IDENTIFIED BY 'cfi-pw'"
    )
    with pytest.raises(DatabaseQueryError, match=r"IMPORT from ftps://127\.0\.0\.1:1/"):
        site.load("table=LOADS.ORDERS files='x/*.csv'")
    assert path.exists() and not list(site.paths.data_error.iterdir())


def test_a_file_loaded_but_not_archived_is_archived_without_a_second_import(site: Site) -> None:
    site.drop("y/orders.csv", HEADER + "1,widget,3,\n")
    blocker = site.paths.data_archive / "y"
    blocker.write_text("a file where the archive folder would go")  # the move fails after the COMMIT
    with pytest.raises(LoadRejected, match=r"y/orders.csv: cannot be moved to data/archive \(\[Errno 17\] File exists"):
        site.load("table=LOADS.ORDERS files='y/*.csv'")
    assert len(site.rows()) == 1 and (site.paths.data_input / "y" / "orders.csv").exists()
    blocker.unlink()
    report = site.load("table=LOADS.ORDERS files='y/*.csv'")
    assert report.rows == 1  # type: ignore[attr-defined]  # counted as loaded (by the first run), not imported again
    assert len(site.rows()) == 1
    assert (site.paths.data_archive / "y" / "orders.csv").exists()


def test_a_file_that_cannot_be_read_or_moved_keeps_no_other_file_from_loading(site: Site) -> None:
    """As the redsys user sees an sFTP user's uploads: a file it may not read goes to data/error with what to do,
    a file in a folder it may not change is loaded but stays (named in the run's message, archived without a second
    import once the folder is fixed), and the files sorted after both are loaded."""
    stuck = site.drop("in/a-sub/x.csv", HEADER + "1,in a folder of the user,1,\n")
    owned_by_another_user(stuck, 0o640)
    refused = site.drop("in/a-sub/y-bad.csv", HEADER + "9,gear,three,\n")  # rejected, and cannot go to data/error
    owned_by_another_user(refused, 0o640)
    owned_by_another_user(stuck.parent, 0o2750)  # made by the sFTP user under its umask 0027
    secret = site.drop("in/b-secret.csv", HEADER + "2,not readable,1,\n")
    owned_by_another_user(secret, 0o600)
    site.drop("in/c-good.csv", HEADER + "3,good,1,\n")
    outcome = site.load_as_instance_user("table=LOADS.ORDERS files='in/**/*.csv'")
    assert outcome["status"] == FAILED and outcome["extra"] == {"rows_loaded": 2}
    message = str(outcome["message"])
    assert message.startswith("2 row(s) from 2 file(s); in/a-sub/x.csv: 1, in/c-good.csv: 1; ")
    assert (
        "1 file(s) rejected to data/error: in/b-secret.csv: the instance user cannot read the file (Permission denied)"
        in message
    )
    assert (
        "2 file(s) could not be moved out of data/input, left in place: in/a-sub/x.csv: cannot be moved to "
        "data/archive ([Errno 13] Permission denied" in message
    )
    assert f"(fix: let the instance user change {stuck.parent} (chmod g+w on it" in message
    assert "in/a-sub/y-bad.csv: cannot be moved to data/error" in message and "the next run tries again" in message
    assert not list(site.paths.data_error.rglob("y-bad*"))  # its reason went with the move that failed
    assert [r[0] for r in site.rows()] == [1, 3]
    assert "make it readable by group redftp" in (site.paths.data_error / "in" / "b-secret.csv.reason").read_text()
    assert (site.paths.data_archive / "in" / "c-good.csv").exists() and stuck.exists()
    again = site.load_as_instance_user("table=LOADS.ORDERS files='in/**/*.csv'")
    assert again["status"] == FAILED and "in/a-sub/x.csv: cannot be moved" in str(again["message"])
    stuck.parent.chmod(0o2770)
    refused.unlink()
    fixed = site.load_as_instance_user("table=LOADS.ORDERS files='in/**/*.csv'")
    assert (fixed["status"], fixed["message"]) == (OK, "1 row(s) from 1 file(s); in/a-sub/x.csv: 1")
    assert [r[0] for r in site.rows()] == [1, 3]  # archived, not imported a second time
    assert (site.paths.data_archive / "in" / "a-sub" / "x.csv").exists() and not stuck.exists()


def test_a_folder_the_glob_cannot_search_is_named_in_the_message_and_the_others_load(site: Site) -> None:
    """Path.glob passes over a folder it may not list or enter without a word: as the redsys user, the run names
    each such folder with the fix, and loads the files it can reach."""
    hidden = site.drop("in/private/a.csv", HEADER + "1,listed not entered,1,\n")
    owned_by_another_user(hidden.parent, 0o740)
    locked = site.drop("in/locked/b.csv", HEADER + "2,neither,1,\n")
    owned_by_another_user(locked.parent, 0o700)
    blind = site.drop("in/blind/c.csv", HEADER + "3,entered not listed,1,\n")
    owned_by_another_user(blind.parent, 0o711)
    site.drop("in/open/d.csv", HEADER + "4,good,1,\n")
    outcome = site.load_as_instance_user("table=LOADS.ORDERS files='in/*/*.csv'")
    input_folder = site.paths.data_input / "in"
    assert (outcome["status"], outcome["message"]) == (
        OK,
        "1 row(s) from 1 file(s); in/open/d.csv: 1; 3 folder(s) not searched: "
        + "; ".join(
            f"cannot read folder {input_folder / name} ({why}): files uploaded there are not taken; the instance user "
            "needs read and enter rights on it (as group redftp: chmod g+rx)"
            for name, why in (
                ("blind", "it may be entered but not listed"),
                ("locked", "it may not be entered"),
                ("private", "it may be listed but not entered"),
            )
        ),
    )
    assert [r[0] for r in site.rows()] == [4]
    deep = site.load_as_instance_user("table=LOADS.ORDERS files='in/**/*.csv'")
    assert str(deep["message"]).startswith("0 row(s) from 0 file(s); 3 folder(s) not searched: ")
    named = site.load_as_instance_user("table=LOADS.ORDERS files='in/locked/b.csv'")  # entering is needed all the same
    assert str(named["message"]).startswith(
        "0 row(s) from 0 file(s); 1 folder(s) not searched: "
        f"cannot read folder {input_folder / 'locked'} (it may not be entered)"
    )
    check = site.load_as_instance_user("in/locked/*.csv", kind="FILE")  # a FILE watcher (CSVSRV) on that folder
    assert check["message"] == (
        f"condition does not hold; 1 folder(s) not searched: cannot read folder {input_folder / 'locked'} (it may not "
        "be entered): files uploaded there are not taken; the instance user needs read and enter rights on it (as "
        "group redftp: chmod g+rx)"
    )
    site.drop("in/open/e.csv", HEADER + "5,next,1,\n")
    assert site.load_as_instance_user("in/*/*.csv", kind="FILE")["message"] == "condition holds"
    through = site.load_as_instance_user("table=LOADS.ORDERS files='in/blind/c.csv'")  # no listing needed: loaded
    assert [r[0] for r in site.rows()] == [3, 4] and "not searched" not in str(through["message"])


def test_a_file_uploaded_again_while_it_is_loaded_is_left_for_the_next_run(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender writes a new version under the same name while the database imports the first: the run took the
    first aside, so the new version is a new file, loaded by the next run; each version is archived."""
    path = site.drop("r/orders.csv", HEADER + "1,first,1,\n")
    original = load_module._import

    def import_then_upload_again(*args: object, **kwargs: object) -> int:
        rows = original(*args, **kwargs)  # type: ignore[arg-type]
        site.drop("r/orders.csv", HEADER + "2,second,1,\n")
        return rows

    monkeypatch.setattr(load_module, "_import", import_then_upload_again)
    first = site.load("table=LOADS.ORDERS files='r/*.csv'")
    monkeypatch.undo()
    assert first.rows == 1 and path.read_text().endswith("2,second,1,\n")  # type: ignore[attr-defined]
    second = site.load("table=LOADS.ORDERS files='r/*.csv'")
    assert second.rows == 1  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] == [(1, "first"), (2, "second")]
    archive = site.paths.data_archive / "r"
    assert (archive / "orders.csv").read_text().endswith("1,first,1,\n")
    assert (archive / "orders.csv.1").read_text().endswith("2,second,1,\n")


def test_a_file_written_in_place_while_it_is_loaded_goes_back_under_its_name_for_the_next_run(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that had the file open before the run took it aside writes a new version into it while the database
    imports the first: it is not archived unloaded; it goes back under its name and the next run loads it."""
    path = site.drop("s/orders.csv", HEADER + "1,first,1,\n")
    original = load_module._import

    def import_then_write_in_place(*args: object, **kwargs: object) -> int:
        rows = original(*args, **kwargs)  # type: ignore[arg-type]
        aside = path.with_name(load_module.CLAIM_PREFIX + path.name)
        with aside.open("r+") as same_file:
            same_file.truncate()
            same_file.write(HEADER + "2,second,1,\n")
        past = time.time() - 60
        os.utime(aside, (past, past))
        return rows

    monkeypatch.setattr(load_module, "_import", import_then_write_in_place)
    first = site.load("table=LOADS.ORDERS files='s/*.csv'")
    monkeypatch.undo()
    assert first.rows == 1 and sorted(p.name for p in path.parent.iterdir()) == ["orders.csv"]  # type: ignore[attr-defined]
    second = site.load("table=LOADS.ORDERS files='s/*.csv'")
    assert second.rows == 1  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] == [(1, "first"), (2, "second")]
    assert (site.paths.data_archive / "s" / "orders.csv").read_text().endswith("2,second,1,\n")


def test_a_file_replaced_under_its_name_before_the_database_reads_it_loads_each_version_once(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender renames a new version over the name after the run chose the file, before the database fetches it:
    the database reads the version the run chose, and the next run loads the new one. Before, it read the new one,
    recorded it as the old, and the next run loaded it a second time (the old one never)."""
    path = site.drop("q/orders.csv", HEADER + "1,first,1,\n")
    original = load_module._import

    def replace_then_import(*args: object, **kwargs: object) -> int:
        newer = site.drop("q/.orders.csv.upload", HEADER + "2,second,1,\n")  # uploaded under a temporary name
        newer.replace(path)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(load_module, "_import", replace_then_import)
    first = site.load("table=LOADS.ORDERS files='q/*.csv'")
    monkeypatch.undo()
    assert first.message == "1 row(s) from 1 file(s); q/orders.csv: 1"  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] == [(1, "first")]
    assert path.read_text().endswith("2,second,1,\n")  # the new version waits under its name
    second = site.load("table=LOADS.ORDERS files='q/*.csv'")
    assert second.message == "1 row(s) from 1 file(s); q/orders.csv: 1"  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] == [(1, "first"), (2, "second")]
    archive = site.paths.data_archive / "q"
    assert sorted(p.read_text()[len(HEADER) :] for p in archive.iterdir()) == ["1,first,1,\n", "2,second,1,\n"]
    assert sorted(p.name for p in (site.paths.data_input / "q").iterdir()) == []


def test_a_file_a_run_claimed_before_it_ended_is_loaded_once_by_the_next(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ends after it took the file aside for loading (killed, database away) leaves it under the claimed
    name; the next run of the job loads it (or, if its IMPORT had committed, only archives it), under its own name."""
    path = site.drop("k/orders.csv", HEADER + "1,first,1,\n")

    def database_away(*args: object, **kwargs: object) -> int:
        raise DatabaseQueryError("the statement timed out", timeout=True)

    monkeypatch.setattr(load_module, "_import", database_away)
    with pytest.raises(DatabaseQueryError):
        site.load("table=LOADS.ORDERS files='k/*.csv'")
    monkeypatch.undo()
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["orders.csv"]  # put back

    claimed = path.with_name(load_module.CLAIM_PREFIX + path.name)  # as a run killed while loading leaves it
    path.rename(claimed)
    assert site.load_as_instance_user("k/*.csv", kind="FILE")["message"] == "condition holds"  # the one aside
    site.drop("k/orders.csv", HEADER + "2,second,1,\n")  # and a new version uploaded meanwhile
    report = site.load("table=LOADS.ORDERS files='k/*.csv'")
    assert report.message == "2 row(s) from 2 file(s); k/orders.csv: 1, k/orders.csv: 1"  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] == [(1, "first"), (2, "second")]  # the one aside first
    assert not list(path.parent.iterdir())
    archive = site.paths.data_archive / "k"
    assert [(p.name, p.read_text()[len(HEADER) :]) for p in sorted(archive.iterdir())] == [
        ("orders.csv", "1,first,1,\n"),
        ("orders.csv.1", "2,second,1,\n"),
    ]
    ledger = site.session.fetchall("SELECT FILE_PATH, ROWS_LOADED FROM REDSYS.ADM_LOAD_FILE")
    assert ledger == [("input/k/orders.csv", 1), ("input/k/orders.csv", 1)]


def test_a_file_of_an_sftp_user_goes_back_under_its_name_after_a_failure(site: Site) -> None:
    """As the redsys user, which may read an upload but not write it: the kernel refuses a hard link to it
    (protected_hardlinks), so putting it back by a link left it hidden, where no FILE watcher saw it again."""
    upload = site.drop("u/orders.csv", HEADER + "1,widget,3,\n")
    owned_by_another_user(upload, 0o640)
    owned_by_another_user(upload.parent, 0o2770)
    site.session.execute(
        "CREATE OR REPLACE CONNECTION REDSYS_CFI TO 'ftps://127.0.0.1:1/' USER 'cfi' IDENTIFIED BY 'cfi-pw'"
    )
    outcome = site.load_as_instance_user("table=LOADS.ORDERS files='u/*.csv'", owner=False)
    assert outcome["status"] == FAILED and "IMPORT from ftps://127.0.0.1:1/" in str(outcome["message"])
    assert sorted(p.name for p in upload.parent.iterdir()) == ["orders.csv"]
    assert site.load_as_instance_user("u/*.csv", kind="FILE", owner=False)["message"] == "condition holds"


def test_a_version_renamed_over_the_name_while_the_run_takes_the_file_aside_is_left_for_the_next_run(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run holds the file it chose; a new version is renamed over the name just before the run renames the name
    aside. What was renamed is not the file the run holds: it goes back, and the next run loads it once."""
    path = site.drop("v/orders.csv", HEADER + "1,first,1,\n")
    rename = rename_without_replacing

    def replaced_first(source: Path, target: Path) -> None:
        site.drop("v/.orders.csv.upload", HEADER + "2,second,1,\n").replace(path)
        monkeypatch.setattr(load_module, "rename_without_replacing", rename)
        rename(source, target)

    monkeypatch.setattr(load_module, "rename_without_replacing", replaced_first)
    first = site.load("table=LOADS.ORDERS files='v/*.csv'")
    assert first.message == "0 row(s) from 0 file(s)"  # type: ignore[attr-defined]
    assert sorted(p.name for p in path.parent.iterdir()) == ["orders.csv"]
    assert path.read_text().endswith("2,second,1,\n")
    second = site.load("table=LOADS.ORDERS files='v/*.csv'")
    assert second.message == "1 row(s) from 1 file(s); v/orders.csv: 1"  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] == [(2, "second")]


def test_a_glob_ending_in_two_stars_looks_for_no_file_taken_aside(site: Site) -> None:
    """pathlib refuses `**` beside other characters: the glob of the files taken aside is not built for it, and the
    run ends normally (what `t/**` itself matches depends on the Python version: folders only on 3.11)."""
    site.drop("t/orders.csv", HEADER + "1,first,1,\n")
    report = site.load("table=LOADS.ORDERS files='t/**'")
    assert report.message.startswith(f"{report.rows} row(s) from ")  # type: ignore[attr-defined]
    assert [r[:2] for r in site.rows()] in ([], [(1, "first")])


def test_the_worker_logs_rows_loaded_and_a_bad_command_or_a_disabled_cfisrv_fails_clearly(site: Site) -> None:
    site.drop("z/orders.csv", HEADER + "1,widget,3,\n2,nut,4,\n")
    result = execute(request("table=LOADS.ORDERS files=z/*.csv"), site.session, site.paths, "LOADER-0")
    assert (result.status, result.message, result.extra) == (
        OK,
        "2 row(s) from 1 file(s); z/orders.csv: 2",
        {"rows_loaded": 2},
    )
    result = execute(request("table=LOADS.ORDERS"), site.session, site.paths, "LOADER-0")
    assert result.status == FAILED and result.message.startswith("LOAD command: files= is missing")
    site.paths.config_file.write_text(
        site.paths.config_file.read_text().replace("[redctl]", "[redctl]\ncfi_enabled = false")
    )
    result = execute(request("table=LOADS.ORDERS files=z/*.csv"), site.session, site.paths, "LOADER-0")
    assert result.status == FAILED
    assert "LOAD jobs need CFISRV, through which the database fetches the files: set cfi_enabled = true" in (
        result.message
    )


@pytest.mark.allow_leaks  # the module's session connects again here, for the module's later tests
def test_a_run_the_database_ends_midway_still_logs_the_files_it_loaded(site: Site) -> None:
    """Files a and b were imported and archived when the database went away during c's IMPORT: the run's log row
    said only the error, ROWS_LOADED NULL, and nothing named the files already in data/archive."""
    for name, rows in (("a", "1,widget,3,\n"), ("b", "2,nut,4,\n3,bolt,5,\n"), ("c", "4,gear,6,\n")):
        site.drop(f"m/{name}.csv", HEADER + rows)
    site.devdb.lose_next_reply("IMPORT", containing="c.csv")
    result = execute(request("table=LOADS.ORDERS files=m/*.csv"), site.session, site.paths, "LOADER-0")
    assert result.status == FAILED, result
    assert "is not reachable" in result.message or "connection" in result.message.lower(), result.message
    assert result.message.endswith("before that: 3 row(s) from 2 file(s); m/a.csv: 1, m/b.csv: 2"), result.message
    assert result.extra == {"rows_loaded": 3}
    assert sorted(p.name for p in site.paths.data_archive.rglob("*.csv")) == ["a.csv", "b.csv"]
    assert site.session.fetchall("SELECT COUNT(*) FROM LOADS.ORDERS") == [(3,)]  # c's, not committed, is not in
    assert execute(request("table=LOADS.ORDERS files=m/*.csv"), site.session, site.paths, "LOADER-0").extra == {
        "rows_loaded": 1
    }  # the next run loads c


def test_rows_loaded_is_a_column_of_the_job_log_for_load_runs_only(site: Site) -> None:
    load = request("table=LOADS.ORDERS files=z/*.csv")
    sql = RunRequest(run_id="sql-run", kind="JOB", schema="LOADS", id=8, name="SQL_JOB", command="SELECT 1")
    for run, extra in ((load, {"rows_loaded": 5}), (sql, {})):
        (row,) = run_rows(run, RunResult(run.run_id, OK, "done", 1.0, 2.0, "w", extra=extra))
        site.session.execute(insert_statement(row.qualified_table, [row.values]))
    logged = site.session.fetchall("SELECT JOB_NAME, ROWS_LOADED FROM REDSYS.ALL_ADM_JOB_LOG ORDER BY JOB_NAME")
    assert logged == [("LOAD_ORDERS", 5), ("SQL_JOB", None)]


def test_the_command_in_the_docs_is_valid() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "db-contract.md").read_text(encoding="utf-8")
    (example,) = [line.strip() for line in docs.splitlines() if line.startswith("    table=")]
    assert parse_command(example) == LoadCommand("APP1.ORDERS", "orders/*.csv", header_columns=True)


def test_a_file_watcher_starting_a_load_job_is_csvsrv_in_redctl_show() -> None:
    def watcher(condition_type: str, job_type: str) -> Definition:
        target = {"kind": "JOB", "job_type": job_type, "command": "table=T files=a/*.csv"}
        payload = {"condition_type": condition_type, "command": "a/*.csv", "target": target}
        return Definition("WATCHER", "APP1", 1, "ARRIVED", True, 5.0, None, payload=payload)

    assert role(watcher("FILE", "LOAD")) == "CSVSRV"
    assert role(watcher("QUERY", "LOAD")) == role(watcher("FILE", "SQL")) == ""


def test_columns_from_the_header_line_load_a_file_whatever_its_column_order(site: Site) -> None:
    site.drop("h/reordered.csv", 'at,qty,"item",id\n2026-11-30 01:02:03,3,widget,1\n,,nut,2\n')
    site.drop("h/unnamed.csv", "id,,qty\n1,x,2\n")
    site.drop("h/unknown.csv", "id,colour\n3,red\n")
    site.drop("h/without-line-breaks.csv", "x," * 1_000_000)  # never read whole
    site.drop("h/empty.csv", "")  # a JSON file that was `[]`: no columns known, no rows; archived
    site.drop("h/marked.csv", "\ufeffid,item\n5,bolt\n")  # a byte order mark first, as Excel's "CSV UTF-8" has
    with pytest.raises(LoadRejected) as caught:
        site.load("table=LOADS.ORDERS files='h/*.csv' columns=header")
    assert caught.value.extra == {"rows_loaded": 3}
    assert [r[:3] for r in site.rows()] == [(1, "widget", 3), (2, "nut", None), (5, "bolt", None)]
    assert str(site.rows()[0][3]).startswith("2026-11-30 01:02:03")
    reason = (site.paths.data_error / "h" / "unnamed.csv.reason").read_text()
    assert reason.startswith("line 1: columns=header needs a header line naming every column, found ['id', '', 'qty']")
    reason = (site.paths.data_error / "h" / "unknown.csv.reason").read_text()
    assert reason == "line 1: the header names column(s) colour that LOADS.ORDERS does not have\n"
    reason = (site.paths.data_error / "h" / "without-line-breaks.csv.reason").read_text()
    assert reason == "line 1: the header line is longer than 1048576 characters; is it a CSV file?\n"
    assert (site.paths.data_archive / "h" / "empty.csv").exists()


def test_without_columns_a_header_naming_the_tables_columns_decides_where_values_go(site: Site) -> None:
    """Converted JSON files list their fields in the order they came: loaded by position, a file whose records
    start with another key would put its values into other columns without a word."""
    site.drop("d/a-converted.csv", '"QTY","ID","ITEM"\n3,1,"widget"\n')  # another order, and no AT
    site.drop("d/b-foreign.csv", "Nr,Article,Count,When\n2,gear,5,\n")  # another system's header: by position
    site.load("table=LOADS.ORDERS files='d/*.csv'")
    assert [r[:3] for r in site.rows()] == [(1, "widget", 3), (2, "gear", 5)]


def test_a_header_maps_to_columns_as_the_table_spells_them_and_a_short_header_means_by_position(site: Site) -> None:
    """A table made with quoted lower-case names for a JSON feed's keys: the IMPORT names its columns as the table
    has them (upper-cased, "ID" was not found and the file stayed in data/input for every run). A header naming
    fewer fields than its rows hold does not map them: the rows load by position, as before."""
    site.session.execute('CREATE OR REPLACE TABLE LOADS.FEED ("id" DECIMAL(9,0), "item" VARCHAR(40))')
    site.drop("c/a-lower.csv", '"ITEM","ID"\nwidget,1\n')
    site.load("table=LOADS.FEED files='c/*.csv'")
    site.drop("c/b-header.csv", "item,id\ngear,2\n")
    site.load("table=LOADS.FEED files='c/*.csv' columns=header")
    site.drop("c/c-marked.csv", "\ufeffid,item\n3,bolt\n")  # a byte order mark, the encoding spelled UTF-8
    site.load("table=LOADS.FEED files='c/*.csv' columns=header encoding=UTF-8")
    assert sorted(site.session.fetchall('SELECT "id", "item" FROM LOADS.FEED')) == [
        (1, "widget"),
        (2, "gear"),
        (3, "bolt"),
    ]
    site.drop("s/short-header.csv", "ID,ITEM\n3,nut,4,2026-11-30 01:02:03\n")
    site.load("table=LOADS.ORDERS files='s/*.csv'")
    assert [r[:3] for r in site.rows()] == [(3, "nut", 4)]


def test_a_header_is_matched_against_the_whole_first_row_after_the_skipped_lines(site: Site) -> None:
    """The first row of a converted file may hold a quoted line break: read as a line, it looked shorter than the
    header and the file loaded by position. With skip=2 the first row is the third line. (devdb cannot hold case
    twins, ID beside "id", for which `Id` means ID as an unquoted name does.)"""
    site.drop("r/a-broken.csv", '"ITEM","ID","QTY"\n"two\nlines",1,3\n')
    site.drop("r/b-skipped.csv", "QTY,ITEM,ID\n(units, name, number)\n4,gear,2\n")
    site.load("table=LOADS.ORDERS files='r/a-*.csv'")
    site.load("table=LOADS.ORDERS files='r/b-*.csv' skip=2")
    assert [r[:3] for r in site.rows()] == [(1, "two\nlines", 3), (2, "gear", 4)]


def test_a_file_another_load_run_holds_is_left_to_it(site: Site) -> None:
    path = site.drop("c/orders.csv", HEADER + "1,widget,3,\n")
    with path.open("rb") as other:  # a second run of the job, or another job whose glob matches, loading it now
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        assert site.load("table=LOADS.ORDERS files=c/*.csv").message == "0 row(s) from 0 file(s)"  # type: ignore[attr-defined]
        assert site.rows() == [] and path.exists()
    assert site.load("table=LOADS.ORDERS files=c/*.csv").message == "1 row(s) from 1 file(s); c/orders.csv: 1"  # type: ignore[attr-defined]


def test_a_second_file_of_the_same_name_is_archived_beside_the_first(site: Site) -> None:
    site.drop("d/orders.csv", HEADER + "1,widget,3,\n")
    site.load("table=LOADS.ORDERS files=d/*.csv")
    site.drop("d/orders.csv", HEADER + "2,nut,4,\n", age=120)  # the next day's upload under the same name
    site.load("table=LOADS.ORDERS files=d/*.csv")
    assert [r[:3] for r in site.rows()] == [(1, "widget", 3), (2, "nut", 4)]  # a new file, not the loaded one
    archive = site.paths.data_archive / "d"
    assert sorted(p.name for p in archive.iterdir()) == ["orders.csv", "orders.csv.1"]
    assert (archive / "orders.csv.1").read_text().endswith("2,nut,4,\n")


def test_an_upload_in_the_sftp_tree_on_another_file_system_is_loaded_and_moved_out(site: Site) -> None:
    upload = site.redftp / "env" / "tst1" / "alice" / "upload"
    upload.mkdir(parents=True)
    (site.paths.data_input / "alice").symlink_to(upload)  # as redftp_useradd links a user's folder
    assert upload.stat().st_dev != site.paths.data.stat().st_dev  # a rename would fail with EXDEV
    site.drop("alice/orders.csv", HEADER + "1,widget,3,\n")
    report = site.load("table=LOADS.ORDERS files=alice/*.csv")
    assert report.message == "1 row(s) from 1 file(s); alice/orders.csv: 1"  # type: ignore[attr-defined]
    assert not list(upload.iterdir())  # moved out of the chroot (copied across file systems, then removed)
    archive = site.paths.data_archive / "alice"
    assert [p.name for p in archive.iterdir()] == ["orders.csv"]  # no partial copy left
    assert (archive / "orders.csv").read_text() == HEADER + "1,widget,3,\n"


def test_a_file_reached_through_a_link_leading_out_of_its_folder_is_skipped_and_the_others_load(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """CFISRV refuses such a path (550), which reads like CFISRV being away: before, the run failed there and every
    file sorted after it waited behind it for good. Now it is skipped with a WARNING and left where it is: the file
    reached is carol's, hers to load through her own folder."""
    tree = site.redftp / "env" / "tst1"
    for user in ("alice", "carol"):
        (tree / user / "upload").mkdir(parents=True)
        (site.paths.data_input / user).symlink_to(tree / user / "upload")
    (tree / "alice" / "upload" / "to-carol").symlink_to(tree / "carol")  # from alice's folder into carol's
    site.drop("carol/private.csv", HEADER + "1,carol's,1,\n")
    site.drop("alice/zz/day/orders.csv", HEADER + "2,alice's,2,\n")
    caplog.set_level(logging.WARNING, logger="redpss.sched")
    report = site.load("table=LOADS.ORDERS files=alice/*/*/*.csv")
    assert report.message == (  # type: ignore[attr-defined]
        "1 row(s) from 1 file(s); alice/zz/day/orders.csv: 1; 1 file(s) skipped, reached through a link CFISRV does "
        "not follow: alice/to-carol/upload/private.csv"
    )
    assert [r[:2] for r in site.rows()] == [(2, "alice's")]
    assert (tree / "carol" / "upload" / "private.csv").exists()  # not moved: not alice's
    assert not list(site.paths.data_error.iterdir())
    assert any(
        "input/alice/to-carol/upload/private.csv skipped" in r.getMessage() and "data/input/alice" in r.getMessage()
        for r in caplog.records
    )
