"""The durable row writer against the embedded database through the real pyexasol driver: rows are on disk before
`append` returns, wait while the database is away (also across a restart), arrive once, refused rows are set aside
with the reason, and a spool that cannot be written loses nothing while the process lives.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.config import Secret
from redpss.core.db import Backoff, DbSession, DbSettings
from redpss.core.db.rowwriter import BUSY, REJECTED_FILE_LIMIT, RowWriter
from redpss.core.net import free_port
from redpss.devdb.testing import InProcessDevDb
from tests.support.private_tmp import PrivateTmp
from tests.support.wait import wait_for

TABLE = "S1.T"


@pytest.fixture
def devdb(tmp_path: Path) -> Iterator[InProcessDevDb]:
    yield from devdb_with_table(tmp_path)


def devdb_with_table(tmp_path: Path) -> Iterator[InProcessDevDb]:
    """A devdb with the table TABLE the rows go to (also for other modules' row writer tests)."""
    server = InProcessDevDb(tmp_path / "devdb", port=free_port())
    server.start()
    with server.connect() as connection:
        connection.execute("CREATE SCHEMA S1")
        connection.execute("CREATE TABLE S1.T (ID DECIMAL(9,0), NAME VARCHAR(50))")
    yield server
    server.stop()


def session(devdb: InProcessDevDb) -> DbSession:
    settings = DbSettings(dsn=devdb.dsn, user="sys", password=Secret("exasol"), encryption=False)
    return DbSession(settings, backoff=Backoff(initial=0.05, cap=0.2))


def ids_in_table(devdb: InProcessDevDb) -> list[int]:
    with devdb.connect() as connection:
        return sorted(int(row[0]) for row in connection.execute("SELECT ID FROM S1.T").fetchall())


@pytest.fixture
def writers(devdb: InProcessDevDb) -> Iterator[list[RowWriter]]:
    """Writers made by a test; each is stopped at the end."""
    made: list[RowWriter] = []
    yield made
    for writer in made:
        writer.stop(timeout=5)


def make(writers: list[RowWriter], devdb: InProcessDevDb, spool: Path) -> RowWriter:
    writer = RowWriter("test rows", spool, session(devdb), flush_interval=0.05)
    writers.append(writer)
    return writer


def test_rows_are_on_disk_before_append_returns_and_survive_a_restart(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    spool = tmp_path / "rows.spool"
    first = make(writers, devdb, spool)  # never started: a process killed right after append
    assert first.append(TABLE, [{"ID": 1, "NAME": "one"}, {"ID": 2, "NAME": "two"}]) is True
    assert [json.loads(line)["row"]["ID"] for line in spool.read_text().splitlines()] == [1, 2]
    second = make(writers, devdb, spool)
    assert second.backlog().rows == 2
    second.start()
    wait_for(lambda: ids_in_table(devdb) == [1, 2], 20, what="both rows in S1.T")
    wait_for(lambda: spool.stat().st_size == 0, 10, what="an empty spool once everything is written")
    assert second.backlog().rows == 0 and second.written == 2


def test_a_line_cut_short_by_a_stop_mid_write_costs_no_later_row(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """A kill or a power loss in the middle of an append leaves a last line without its line break (those rows were
    never acknowledged). The rows appended after the next start must not continue that line, where the start after
    would find them unreadable: acknowledged rows lost."""
    spool = tmp_path / "rows.spool"
    make(writers, devdb, spool).append(TABLE, [{"ID": 1}])
    whole = spool.read_bytes()
    with spool.open("ab") as handle:
        handle.write(whole[: len(whole) // 2])  # the first half of a second record
    restarted = make(writers, devdb, spool)
    assert restarted.append(TABLE, [{"ID": 3}]) is True  # acknowledged
    again = make(writers, devdb, spool)
    assert [row["ID"] for _table, row in again.waiting()] == [1, 3]
    again.start()
    wait_for(lambda: ids_in_table(devdb) == [1, 3], 20, what="both acknowledged rows in S1.T")


def test_a_statement_aborted_by_the_database_is_sent_again_not_refused(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """A DBA's KILL STATEMENT (or a timeout, or a transaction collision) is no fault of the rows: they wait for the
    next round, as while the database is away, instead of going to the .rejected file."""
    holder = devdb.connect(autocommit=False)
    holder.execute("INSERT INTO S1.T VALUES (0, 'holds the write lock')")  # the writer's INSERT waits for it
    try:
        writer = make(writers, devdb, tmp_path / "rows.spool")
        writer.append(TABLE, [{"ID": 1}])
        writer.start()
        wait_for(lambda: writer.session.connected, 20, what="the writer connected")

        def aborted() -> bool:
            with devdb.connect() as dba:
                dba.execute(f"KILL STATEMENT IN SESSION {writer.session.connection().session_id()}")
            return "aborted" in writer.backlog().last_error

        wait_for(aborted, 20, what="the writer's INSERT aborted")
    finally:
        holder.rollback()
        holder.close()
    wait_for(lambda: ids_in_table(devdb) == [1], 20, what="the row, sent again")
    assert not writer.rejected_file.exists() and writer.backlog().rejected == 0


def test_rows_wait_while_the_database_is_away_and_arrive_once(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    writer = make(writers, devdb, tmp_path / "rows.spool")
    writer.start()
    writer.append(TABLE, [{"ID": 1}])
    wait_for(lambda: ids_in_table(devdb) == [1], 20, what="the first row")
    devdb.stop()
    writer.append(TABLE, [{"ID": i} for i in range(2, 6)])
    wait_for(lambda: writer.backlog().last_error, 20, what="the outage in the backlog")
    backlog = writer.backlog()
    assert backlog.rows == 4 and backlog.oldest is not None and "not reachable" in backlog.last_error
    devdb.start()
    wait_for(lambda: writer.backlog().rows == 0, 30, what="the backlog written")
    assert ids_in_table(devdb) == [1, 2, 3, 4, 5]
    assert writer.backlog().last_error == ""


def test_refused_rows_go_to_the_rejected_file_with_the_reason_and_the_others_arrive(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    writer = make(writers, devdb, tmp_path / "rows.spool")
    writer.append(TABLE, [{"ID": 1}, {"ID": 2, "NOT_A_COLUMN": "x"}, {"ID": 3}])
    writer.start()
    wait_for(lambda: writer.backlog().rows == 0, 20, what="every row dealt with")
    assert ids_in_table(devdb) == [1, 3]
    [rejected] = [json.loads(line) for line in writer.rejected_file.read_text().splitlines()]
    assert rejected["row"] == {"ID": 2, "NOT_A_COLUMN": "x"} and rejected["table"] == TABLE
    assert "NOT_A_COLUMN" in rejected["reason"]
    assert writer.backlog().rejected == 1


def test_rows_for_a_table_that_does_not_exist_are_set_aside_at_once(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch for a missing table (a schema never registered) was tried again row by row: a statement, an fsync
    of the .rejected file and an ERROR line per row, while the other schemas' rows waited."""
    caplog.set_level(logging.INFO, logger="redpss")
    writer = make(writers, devdb, tmp_path / "rows.spool")
    writer.append("S9.LOG_MESSAGES", [{"MESSAGE": f"line {n}"} for n in range(200)])
    writer.append(TABLE, [{"ID": 1}, {"ID": 2}])
    writer.start()
    wait_for(lambda: writer.backlog().rows == 0, 20, what="every row dealt with")
    assert ids_in_table(devdb) == [1, 2]
    assert writer.backlog().rejected == 200
    assert len(writer.rejected_file.read_text().splitlines()) == 200
    refused = [r for r in caplog.records if "refused by the database" in r.getMessage()]
    assert len(refused) == 1 and "200 row(s) for S9.LOG_MESSAGES" in refused[0].getMessage()


def test_a_full_rejected_file_is_kept_as_the_older_one_and_a_new_one_begun(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """The .rejected file grew for good: a sender whose rows the database refuses could fill the disk the spool
    needs."""
    writer = make(writers, devdb, tmp_path / "rows.spool")
    with writer.rejected_file.open("wb") as full:
        full.truncate(REJECTED_FILE_LIMIT)  # sparse: a file of the limit's size
    writer.append("S9.LOG_MESSAGES", [{"MESSAGE": "refused"}])
    writer.start()
    wait_for(lambda: writer.backlog().rows == 0, 20, what="the row dealt with")
    older = writer.rejected_file.with_name(writer.rejected_file.name + ".1")
    assert older.stat().st_size == REJECTED_FILE_LIMIT
    assert [json.loads(line)["row"] for line in writer.rejected_file.read_text().splitlines()] == [
        {"MESSAGE": "refused"}
    ]


def test_an_unwritable_spool_holds_rows_in_memory_says_so_once_and_recovers(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "rows.spool"
    writer = make(writers, devdb, spool)
    spool.symlink_to("/dev/full")  # from now on every write fails with ENOSPC, as on a full disk
    with caplog.at_level(logging.ERROR, logger="redpss.core.db.rowwriter"):
        assert writer.append(TABLE, [{"ID": 1}]) is False
        assert writer.append(TABLE, [{"ID": 2}]) is False
    errors = [r.getMessage() for r in caplog.records if "cannot write the spool" in r.getMessage()]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    backlog = writer.backlog()
    assert (backlog.rows, backlog.memory_only) == (2, 2) and "No space left" in backlog.spool_error
    writer.start()  # the writer's retry rewrites the spool as a new file, which works here
    wait_for(lambda: ids_in_table(devdb) == [1, 2], 20, what="both held rows in the database")
    wait_for(lambda: writer.backlog().spool_error == "", 10, what="the spool problem cleared")
    assert not spool.is_symlink()


def test_held_rows_wait_for_release_and_cancelled_ones_never_arrive_not_even_after_a_restart(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    spool = tmp_path / "rows.spool"
    writer = make(writers, devdb, spool)
    writer.start()
    kept = writer.append_held({TABLE: [{"ID": 1}, {"ID": 2}]})
    withdrawn = writer.append_held({TABLE: [{"ID": 3}]})
    assert kept and withdrawn
    assert [json.loads(line)["row"]["ID"] for line in spool.read_text().splitlines()] == [1, 2, 3]  # on disk
    writer.append(TABLE, [{"ID": 4}])  # a row not held goes on: held ones hold up nobody
    wait_for(lambda: ids_in_table(devdb) == [4], 20, what="the row not held in S1.T")
    assert writer.backlog().rows == 3
    writer.cancel(withdrawn)
    writer.release(kept)
    wait_for(lambda: ids_in_table(devdb) == [1, 2, 4], 20, what="the released rows in S1.T")
    writer.stop(timeout=5)
    again = make(writers, devdb, spool)  # a restart does not bring back the withdrawn row
    assert again.backlog().rows == 0
    again.start()
    again.append(TABLE, [{"ID": 5}])
    wait_for(lambda: ids_in_table(devdb) == [1, 2, 4, 5], 20, what="a later row, and not the withdrawn one")


def test_rows_that_cannot_be_held_on_disk_are_not_kept_at_all(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """append_held is for callers that refuse their request when the rows cannot be made safe: the rows must then
    not go to the database either, or the caller's resend would put them there twice."""
    spool = tmp_path / "rows.spool"
    writer = make(writers, devdb, spool)
    spool.symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    assert writer.append_held({TABLE: [{"ID": 1}]}) is None
    assert writer.append_held({TABLE: [{"ID": 2}]}) is None  # the spool is known to fail: refused at once
    assert writer.backlog().rows == 0
    spool.unlink()
    writer.start()  # the writer's probe finds the disk writable again
    wait_for(lambda: writer.backlog().spool_error == "", 10, what="the spool problem cleared")
    seqs = writer.append_held({TABLE: [{"ID": 3}]})
    assert seqs is not None
    writer.release(seqs)
    wait_for(lambda: ids_in_table(devdb) == [3], 20, what="only the row held once the spool works")


def test_rows_given_an_id_by_the_writer_arrive_once_when_a_batch_is_sent_again(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """A table without a natural key (LOG_MESSAGES): a batch that committed, but whose "done" note never reached the
    spool (a crash, or the COMMIT's answer lost with the connection), is read back and sent again at the next start.
    The ids the writer gave the rows let it replace the first copy instead of adding a second."""
    with devdb.connect() as connection:
        connection.execute("CREATE TABLE S1.M (MESSAGE VARCHAR(50), MESSAGE_KEY VARCHAR(64))")
    spool = tmp_path / "rows.spool"
    first = RowWriter("test rows", spool, session(devdb), row_ids={"M": "MESSAGE_KEY"})
    writers.append(first)  # never started: killed right after its append
    assert first.append("S1.M", [{"MESSAGE": "one"}, {"MESSAGE": "two"}, {"MESSAGE": "two"}])
    appended = [row for _, row in first.waiting()]
    keys = [row["MESSAGE_KEY"] for row in appended]
    assert len(set(keys)) == 3  # two equal messages are still two rows
    with devdb.connect() as connection:  # the first delivery, committed without its note in the spool
        for row in appended:
            connection.execute(
                "INSERT INTO S1.M VALUES ({message}, {key})", {"message": row["MESSAGE"], "key": row["MESSAGE_KEY"]}
            )
    again = RowWriter("test rows", spool, session(devdb), flush_interval=0.05, row_ids={"M": "MESSAGE_KEY"})
    writers.append(again)
    again.start()
    wait_for(lambda: again.backlog().rows == 0, 20, what="the batch sent again")
    with devdb.connect() as connection:
        rows = connection.execute("SELECT MESSAGE, MESSAGE_KEY FROM S1.M ORDER BY MESSAGE_KEY").fetchall()
    assert sorted(rows) == sorted((row["MESSAGE"], row["MESSAGE_KEY"]) for row in appended)
    again.append("S1.M", [{"MESSAGE": "later"}])  # ids stay unique after a restart
    wait_for(lambda: again.backlog().rows == 0, 20, what="a later row")
    with devdb.connect() as connection:
        later = connection.execute("SELECT MESSAGE_KEY FROM S1.M WHERE MESSAGE = 'later'").fetchall()
    assert len(later) == 1 and later[0][0] not in keys


def test_a_table_without_the_id_column_keeps_the_rows_waiting_until_the_schema_is_upgraded(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """RED-PSS upgraded before `redctl db_install` ran: the INSERT names a column the table lacks. That is no row's
    fault: the rows wait (they were set aside as refused before), and arrive once the column is there."""
    with devdb.connect() as connection:
        connection.execute("CREATE TABLE S1.M (MESSAGE VARCHAR(50))")
    writer = RowWriter("test rows", tmp_path / "rows.spool", session(devdb), flush_interval=0.05,
                       row_ids={"M": "MESSAGE_KEY"}, behind_retry=0.5)  # fmt: skip
    writers.append(writer)
    with caplog.at_level(logging.WARNING, logger="redpss.core.db.rowwriter"):
        writer.start()
        writer.append("S1.M", [{"MESSAGE": "one"}, {"MESSAGE": "two"}])
        wait_for(lambda: writer.backlog().last_error, 20, what="the writer's first attempt")
        writer.append(TABLE, [{"ID": 7}])  # another table's rows do not wait behind them
        wait_for(lambda: ids_in_table(devdb) == [7], 20, what="the other table's row")
    assert "S1.M has no column MESSAGE_KEY yet: run `redctl db_install`" in writer.backlog().last_error
    assert sum("schema is older than RED-PSS" in r.getMessage() for r in caplog.records) == 1  # said once
    assert writer.backlog().rows == 2 and writer.backlog().rejected == 0
    with devdb.connect() as connection:
        connection.execute("ALTER TABLE S1.M ADD COLUMN MESSAGE_KEY VARCHAR(64)")
    wait_for(lambda: writer.backlog().rows == 0, 20, what="the rows written once the column is there")
    with devdb.connect() as connection:
        assert sorted(connection.execute("SELECT MESSAGE FROM S1.M").fetchall()) == [("one",), ("two",)]
    assert not writer.rejected_file.exists()


def test_rows_spooled_without_their_id_by_an_older_version_delete_nothing_when_sent(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """After an upgrade, rows an older version spooled have no MESSAGE_KEY. Sent again at start, their "earlier copy"
    was looked for as MESSAGE_KEY IS NULL: every row written before the migration, or by anyone else, was deleted."""
    with devdb.connect() as connection:
        connection.execute("CREATE TABLE S1.M (MESSAGE VARCHAR(50), MESSAGE_KEY VARCHAR(64))")
        connection.execute("INSERT INTO S1.M (MESSAGE) VALUES ('history 1'), ('history 2')")
    spool = tmp_path / "rows.spool"
    older = RowWriter("test rows", spool, session(devdb))  # no ids: what the older version spooled
    writers.append(older)
    older.append("S1.M", [{"MESSAGE": "spooled"}])
    upgraded = RowWriter("test rows", spool, session(devdb), flush_interval=0.05, row_ids={"M": "MESSAGE_KEY"})
    writers.append(upgraded)
    upgraded.start()
    wait_for(lambda: upgraded.backlog().rows == 0, 20, what="the spooled row written")
    with devdb.connect() as connection:
        messages = sorted(row[0] for row in connection.execute("SELECT MESSAGE FROM S1.M").fetchall())
    assert messages == ["history 1", "history 2", "spooled"]


def test_rows_still_held_at_a_stop_do_not_come_back(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """A request cut off by a stop between its rows' spooling and their release was never acknowledged: its client
    sends it again, so the held rows must not be delivered by the next start as well."""
    spool = tmp_path / "rows.spool"
    writer = make(writers, devdb, spool)
    writer.start()
    assert writer.append_held({TABLE: [{"ID": 1}]})
    writer.append(TABLE, [{"ID": 2}])
    writer.stop(timeout=5)
    assert writer.append_held({TABLE: [{"ID": 3}]}) is None  # after the stop: nothing is taken
    again = make(writers, devdb, spool)
    again.start()
    wait_for(lambda: again.backlog().rows == 0, 20, what="the restarted writer idle")
    assert ids_in_table(devdb) == [2]


def test_appends_from_many_threads_are_all_on_disk_once(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    spool = tmp_path / "rows.spool"
    writer = make(writers, devdb, spool)
    results: list[bool] = []

    def append_many(first: int) -> None:
        for index in range(first, first + 50):
            results.append(writer.append(TABLE, [{"ID": index}]))

    threads = [threading.Thread(target=append_many, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 400  # each returned once its row was on disk (one fsync may cover several)
    on_disk = [json.loads(line)["row"]["ID"] for line in spool.read_text().splitlines()]
    assert sorted(on_disk) == sorted(n * 1000 + i for n in range(8) for i in range(50))
    writer.start()
    wait_for(lambda: len(ids_in_table(devdb)) == 400, 30, what="400 rows in S1.T")
    assert ids_in_table(devdb) == sorted(on_disk)


def test_rows_appended_if_absent_never_replace_or_repeat_a_row_of_their_keys(
    devdb: InProcessDevDb, writers: list[RowWriter], tmp_path: Path
) -> None:
    """What a restarted SCHED writes for a run a killed one left (INTERRUPTED) must not add a second row, nor replace
    the row the run got just before the kill; rows of keys not yet in the table are written. Also when they were
    read back from the spool (a restart before they reached the database)."""
    with devdb.connect() as connection:
        connection.execute("INSERT INTO S1.T VALUES (1, 'the run''s own row'), (2, 'another')")
    spool = tmp_path / "rows.spool"
    keyed = RowWriter("test rows", spool, session(devdb), flush_interval=0.05, keys={"T": ("ID",)})
    writers.append(keyed)  # never started: a SCHED killed right after its append
    assert keyed.append(TABLE, [{"ID": 1, "NAME": "interrupted"}, {"ID": 3, "NAME": "interrupted"}], if_absent=True)
    restarted = RowWriter("test rows", spool, session(devdb), flush_interval=0.05, keys={"T": ("ID",)})
    writers.append(restarted)
    restarted.append(TABLE, [{"ID": 2, "NAME": "interrupted"}], if_absent=True)
    restarted.start()
    wait_for(lambda: restarted.backlog().rows == 0, 20, what="every row dealt with")
    with devdb.connect() as connection:
        rows = connection.execute("SELECT ID, NAME FROM S1.T ORDER BY ID").fetchall()
    assert [(int(id_), name) for id_, name in rows] == [(1, "the run's own row"), (2, "another"), (3, "interrupted")]
    with pytest.raises(ValueError, match="has no keys"):
        make(writers, devdb, tmp_path / "other.spool").append(TABLE, [{"ID": 4}], if_absent=True)


@pytest.mark.root  # a tmpfs in a mount namespace of its own: a real full disk under the spool
def test_rows_withdrawn_while_the_disk_is_full_do_not_come_back_after_a_restart(tmp_path: Path) -> None:
    """DBLS withdraws a request's held rows when its log files cannot be written: a full disk, which the spool is
    often on too, so no note of the withdrawal can be appended. The rows then came back at the next start although
    the request was refused and sent again: twice in LOG_MESSAGES."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    private = PrivateTmp(folder, "1m")
    away = DbSettings(dsn=f"127.0.0.1:{free_port()}", user="sys", password=Secret("x"), encryption=False)
    try:
        spool = private.inside(folder / "rows.spool")
        writer = RowWriter("test rows", spool, DbSession(away, backoff=Backoff(initial=0.05, cap=0.2)))
        writer.append(TABLE, [{"ID": 1, "NAME": "acknowledged"}])
        held = writer.append_held({TABLE: [{"ID": 2, "NAME": "refused"}, {"ID": 3, "NAME": "refused"}]})
        assert held
        writer.append(TABLE, [{"ID": 4, "NAME": "acknowledged after"}])
        private.fill()
        assert writer.append(TABLE, [{"ID": 9, "NAME": "x" * 8000}]) is False  # the spool's disk is full
        writer.cancel(held)
        writer.stop(timeout=1)
        again = RowWriter("test rows", spool, DbSession(away))
        assert [row["ID"] for _, row in again.waiting()] == [1, 4]
        again.stop(timeout=0.1)
    finally:
        private.close()


def test_an_append_that_may_not_wait_says_busy_while_the_writers_thread_holds_the_spool(tmp_path: Path) -> None:
    """DBLS appends on its event loop and must not wait there while the writer's thread rewrites the spool (an
    fsync under the lock): it is told BUSY, with nothing done, and appends from a thread instead."""
    away = DbSettings(dsn=f"127.0.0.1:{free_port()}", user="sys", password=Secret("x"), encryption=False)
    writer = RowWriter("test", tmp_path / "rows.spool", DbSession(away), fsync_appends=False)  # never started
    with writer._lock:  # as the writer's thread holds it while it rewrites the spool
        assert writer.append_held({TABLE: [{"ID": 1}]}, wait=False) is BUSY
    assert writer.backlog().rows == 0
    try:
        seqs = writer.append_held({TABLE: [{"ID": 2}], "S2.T": [{"ID": 3}]}, wait=False)
        assert isinstance(seqs, list) and len(seqs) == 2  # two tables, one write
        assert writer.backlog().rows == 2
    finally:
        writer.stop(timeout=5)


def test_a_backlog_of_long_rows_drains_without_rewriting_the_spool_after_every_batch(tmp_path: Path) -> None:
    """The spool is compacted when it is several times larger than the rows still waiting; the rows' size was taken
    to be 300 bytes, so a backlog of DBLS's rows with messages of kilobytes had the whole spool rewritten (and
    fsync'd) after every batch: ~40 MB written here to drain 4 MB. The lengths of the waiting rows' own lines decide
    now (an average over the writer's life, most of it short rows as here first, did the same)."""
    server = InProcessDevDb(tmp_path / "devdb", port=free_port())
    server.start()
    try:
        with server.connect() as connection:
            connection.execute("CREATE SCHEMA S2")
            connection.execute("CREATE TABLE S2.LONG (ID DECIMAL(9,0), MESSAGE VARCHAR(4000))")
        spool = tmp_path / "long.spool"
        writer = RowWriter("long rows", spool, session(server), flush_interval=0.05, batch_rows=100)
        try:
            writer.start()
            writer.append("S2.LONG", [{"ID": -i, "MESSAGE": "short"} for i in range(1, 10_001)])
            wait_for(lambda: writer.backlog().rows == 0, 60, what="the short rows written")
            server.stop()  # the database away: a backlog of long rows builds up
            writer.append("S2.LONG", [{"ID": i, "MESSAGE": "x" * 2000} for i in range(2000)])
            backlog_bytes = spool.stat().st_size
            rewritten_before = writer.rewritten_bytes
            server.start()
            wait_for(lambda: writer.backlog().rows == 0, 60, what="the backlog written")
        finally:
            writer.stop(timeout=5)
        rewritten = writer.rewritten_bytes - rewritten_before
        assert rewritten < backlog_bytes / 2, (rewritten, backlog_bytes)
        with server.connect() as connection:
            assert connection.execute("SELECT COUNT(*) FROM S2.LONG").fetchall()[0][0] == 12_000
    finally:
        server.stop()
