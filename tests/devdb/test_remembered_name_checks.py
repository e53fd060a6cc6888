"""devdb remembers a session's passed name checks for DML (Session._verify) only while no session has changed the
catalog: after another session's DDL, a name that now means another table or column is refused as it was before.

DuckDB's catalog ignores case, Exasol's does not: an INSERT into APP.T after T was replaced by a quoted "t" (or a
column A by "a") must be refused, where a stale remembered check would let DuckDB write into the twin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pyexasol
import pytest

from redpss.devdb.testing import InProcessDevDb
from tests.support.wait import wait_for


@pytest.fixture
def two(devdb: InProcessDevDb) -> Iterator[tuple[Any, Any]]:
    with devdb.connect() as first, devdb.connect() as second:
        first.execute("CREATE SCHEMA remembered")
        try:
            yield first, second
        finally:
            first.execute("DROP SCHEMA remembered CASCADE")


REPLACEMENTS = {
    "a table by its lower-case twin": (
        ["DROP TABLE remembered.t", 'CREATE TABLE remembered."t" (a DECIMAL(9,0), b DECIMAL(9,0))'],
        'SELECT COUNT(*) FROM remembered."t"',
    ),
    "a column by its lower-case twin": (
        ["ALTER TABLE remembered.t DROP COLUMN a", 'ALTER TABLE remembered.t ADD COLUMN "a" DECIMAL(9,0)'],
        'SELECT COUNT("a") FROM remembered.t',
    ),
}


@pytest.mark.parametrize("replacement", sorted(REPLACEMENTS))
def test_another_sessions_ddl_makes_a_remembered_check_be_made_again(two: tuple[Any, Any], replacement: str) -> None:
    first, second = two
    ddl, count = REPLACEMENTS[replacement]
    first.execute("CREATE TABLE remembered.t (a DECIMAL(9,0), b DECIMAL(9,0))")
    for _ in range(2):  # the second INSERT of the same shape is answered from the remembered check
        first.execute("INSERT INTO remembered.t (a) VALUES (1), (2)")
    for statement in ddl:
        second.execute(statement)
    with pytest.raises(pyexasol.ExaQueryError, match="not found"):
        first.execute("INSERT INTO remembered.t (a) VALUES (3), (4)")
    assert first.execute(count).fetchval() == 0  # nothing went into the twin


def test_a_rolled_back_change_is_checked_again_and_passes(two: tuple[Any, Any]) -> None:
    first, second = two
    first.execute("CREATE TABLE remembered.t (a DECIMAL(9,0))")
    first.execute("INSERT INTO remembered.t (a) VALUES (1), (2)")
    second.set_autocommit(False)
    second.execute("DROP TABLE remembered.t")
    second.rollback()
    first.execute("INSERT INTO remembered.t (a) VALUES (3), (4)")
    assert first.execute("SELECT COUNT(*) FROM remembered.t").fetchval() == 4


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "in a transaction"])
def test_a_write_checks_its_names_once_it_holds_the_write_lock(
    devdb: InProcessDevDb, two: tuple[Any, Any], autocommit: bool
) -> None:
    """The INSERT arrives while another session's uncommitted DDL has replaced T by its case twin "t": T still exists
    in the INSERT's view then. Checked before waiting for the lock, it would pass and DuckDB, blind to case, would
    write into "t" once the DDL commits; checked once the lock is held, it is refused."""
    first, second = two
    first.execute("CREATE TABLE remembered.t (a DECIMAL(9,0))")
    first.execute("INSERT INTO remembered.t (a) VALUES (1)")  # remembered check of this shape, too
    first.set_autocommit(autocommit)
    second.set_autocommit(False)
    second.execute("DROP TABLE remembered.t")
    second.execute('CREATE TABLE remembered."t" (a DECIMAL(9,0))')  # holds the write lock until COMMIT
    outcome: dict[str, object] = {}

    def insert() -> None:
        try:
            first.execute("INSERT INTO remembered.t (a) VALUES (2)")
            outcome["inserted"] = True
        except pyexasol.ExaQueryError as exc:
            outcome["error"] = exc.message

    thread = threading.Thread(target=insert, name="inserter")
    thread.start()
    try:
        assert devdb.server is not None
        database = devdb.server.database
        assert database is not None
        wait_for(lambda: database.writers_waiting == 1, what="the INSERT waiting for the write lock")
    finally:
        second.commit()
        thread.join(30)
    assert "not found" in str(outcome.get("error")), outcome
    if not autocommit:
        first.rollback()
    first.set_autocommit(True)
    assert first.execute('SELECT COUNT(*) FROM remembered."t"').fetchval() == 0  # nothing went into the twin
    second.set_autocommit(True)
    second.execute("CREATE TABLE remembered.u (a DECIMAL(9,0))")  # the refused INSERT holds no lock
