"""The DuckDB file shared by every session, and the lock that serializes writers.

DuckDB allows one writer per row at a time and fails the second with "Conflict on update"; Exasol would instead
make it wait. Every session therefore takes `write_lock` before its first write and keeps it until its
transaction ends, so concurrent writers queue instead of failing.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from redpss.devdb import catalog, functions, systables

DB_FILE = "devdb.duckdb"


@dataclass(frozen=True)
class SessionHandle:
    """What KILL needs of a live session: end its connection, or abort its running statement."""

    user: str
    drop: Callable[[], None]
    cancel: Callable[[str], None]


class SessionDirectory:
    """The live sessions by id, for KILL SESSION and KILL STATEMENT IN SESSION, mirrored for EXA_*_SESSIONS.

    The mirror is a table in an in-memory database attached to the DuckDB instance (systables.LIVE_SESSIONS):
    sessions are not data, so they never reach the database file, and the SYS views read them like any table.
    """

    def __init__(self, cursor: Any) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, SessionHandle] = {}
        self._cursor = cursor

    def add(self, session_id: int, handle: SessionHandle) -> None:
        with self._lock:
            self._sessions[session_id] = handle
            self._cursor.execute(
                f"INSERT INTO {systables.LIVE_SESSIONS} VALUES (?, ?, CAST(now() AS TIMESTAMP))",  # noqa: S608
                [session_id, handle.user],
            )

    def remove(self, session_id: int) -> None:
        with self._lock:
            if self._sessions.pop(session_id, None) is not None:
                self._cursor.execute(f"DELETE FROM {systables.LIVE_SESSIONS} WHERE SESSION_ID = ?", [session_id])  # noqa: S608

    def find(self, session_id: int) -> SessionHandle | None:
        with self._lock:
            return self._sessions.get(session_id)

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._sessions)


class Database:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / DB_FILE
        self.tmp_dir = data_dir / "tmp"
        self.tmp_dir.mkdir(exist_ok=True)
        self._con: Any = duckdb.connect(str(self.path))
        self.write_lock = threading.Lock()
        self.writers_waiting = 0  # sessions waiting for the write lock (waiting_for_write)
        self._waiting_count = threading.Lock()
        # changes whenever a session starts DDL and when such a transaction ends: a session's remembered name checks
        # (Session._verify) hold only while it is unchanged
        self._generations = itertools.count(1)
        self.catalog_generation = 0
        setup = self._con.cursor()
        try:
            catalog.setup(setup)
            systables.setup(setup)
            functions.setup(setup)
        finally:
            setup.close()
        self.sessions = SessionDirectory(self._con.cursor())

    @contextlib.contextmanager
    def waiting_for_write(self) -> Iterator[None]:
        """Count a session as waiting for the write lock while the block runs."""
        with self._waiting_count:
            self.writers_waiting += 1
        try:
            yield
        finally:
            with self._waiting_count:
                self.writers_waiting -= 1

    def catalog_changed(self) -> None:
        self.catalog_generation = next(self._generations)

    def cursor(self) -> Any:
        """A new DuckDB connection to the same database, for one session (its own transaction)."""
        return self._con.cursor()

    def close(self) -> None:
        try:
            self._con.execute("CHECKPOINT")
        finally:
            self._con.close()
