"""A long-lived database session that survives the database going away.

Daemons hold one DbSession per thread (a pyexasol connection is not thread-safe). When the database disappears, the
session reconnects with capped exponential backoff; the log says so once when it goes away and once when it is
back, never once per attempt, so a night-long outage is two lines, not thousands.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from redpss.core.db.errors import (
    DatabaseConfigMismatch,
    DatabaseError,
    DatabaseNameMismatch,
    DatabaseUnavailable,
    map_exa_error,
)
from redpss.core.db.settings import DbSettings

log = logging.getLogger("redpss.core.db")
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnect attempts: initial, doubling, never above cap."""

    initial: float = 0.5
    cap: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * 2, self.cap)

    def after(self, failures: int) -> float:
        """The pause after `failures` attempts in a row have failed (the first: `initial`)."""
        return min(self.initial * 2.0 ** min(max(failures - 1, 0), 32), self.cap)


class DbSession:
    def __init__(self, settings: DbSettings, *, backoff: Backoff | None = None) -> None:
        self.settings = settings
        self.backoff = backoff or Backoff()
        self._connection: Any = None
        self._down_since: float | None = None
        self._failed_attempts = 0
        self._outage_said = False  # the current outage was logged (by a caller that retries)
        self._retry_at = 0.0  # while the database is away: no attempt of wait_connected before this (monotonic)
        self.last_error: DatabaseError | None = None  # of the last failed attempt, while the database is away
        self.reconnects = 0  # how often the session came back after being lost

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    def connection(self) -> Any:
        """The open pyexasol connection, connecting once if needed; DatabaseError when that fails.

        After a refused login (or another database than exa_dbname) no new attempt is made before the backoff's
        pause has passed, whoever asks: each refused login counts against the account's failed-login limit in
        Exasol, and a daemon querying every few seconds (JMON's poll) locked the account out."""
        if self.connected:
            return self._connection
        refused = self.last_error
        if isinstance(refused, DatabaseConfigMismatch) and time.monotonic() < self._retry_at:
            raise refused.with_traceback(None)  # raised again and again: its traceback must not grow each time
        import pyexasol  # noqa: PLC0415 - lazy: see package docstring

        try:
            self._connection = pyexasol.connect(**self.settings.connect_options())
        except Exception as exc:
            self._connection = None
            # pyexasol keeps the socket of a refused login open; a daemon retrying would leak one per attempt.
            half_open = getattr(exc, "connection", None) or _connection_being_made(exc)
            if half_open is not None:
                with contextlib.suppress(Exception):
                    half_open.close(disconnect=False)
            error = map_exa_error(exc, dsn=self.settings.dsn, user=self.settings.user)
            self._note_failure(error)
            raise error from exc
        try:
            self._check_database_name()
        except DatabaseConfigMismatch as exc:
            self._note_failure(exc)
            raise
        self._note_success()
        return self._connection

    def _check_database_name(self) -> None:
        """Refuse a database other than exa_dbname: an instance must never work against another one's database."""
        expected = self.settings.dbname
        if not expected:
            return
        reported = str(self._connection.login_info.get("databaseName") or "")
        if reported.upper() != expected.upper():
            self._drop()
            raise DatabaseNameMismatch(
                f"the database at {self.settings.dsn} is {reported or '(unnamed)'!r}, but exa_dbname = {expected!r} "
                "in red_params.conf: this instance does not work against another database; "
                "check exa_connection and exa_dbname"
            )

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run one statement; a lost session raises DatabaseUnavailable and is reopened on the next call."""
        connection = self.connection()
        try:
            return connection.execute(sql, params)
        except Exception as exc:
            error = map_exa_error(exc, dsn=self.settings.dsn, user=self.settings.user, sql=sql)
            if isinstance(error, DatabaseUnavailable):
                self._drop()
            raise error from exc

    def fetchall(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.execute(sql, params).fetchall())

    def fetch_dicts(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        statement = self.execute(sql, params)
        names = list(statement.column_names())
        return [dict(zip(names, row, strict=True)) for row in statement.fetchall()]

    def commit(self) -> None:
        self.execute("COMMIT")

    def wait_connected(
        self, stop: threading.Event | None = None, timeout: float | None = None, *, refusal_is_final: bool = False
    ) -> bool:
        """Connect, retrying with backoff until connected (True), `stop` is set or `timeout` passes (False).

        With `refusal_is_final`, a refused login or a wrong database (DatabaseConfigMismatch) is raised at once
        instead of retried: waiting cannot fix a password, and a daemon starting should say so without delay.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.connected:
            # The pause after the last failure holds across calls: a caller that waits a few seconds per call (the
            # row writer, SCHED's commit check) does not restart the backoff each time, so an outage or a refused
            # password is tried every `backoff.cap` seconds, not every second (a refused login counts against the
            # account's failed-login limit in Exasol).
            now = time.monotonic()
            attempt_at = max(now, self._retry_at)
            if deadline is not None and attempt_at > deadline:
                self._pause(stop, deadline - now)
                return False
            if attempt_at > now and self._pause(stop, attempt_at - now):
                return False
            try:
                self.connection()  # notes the failure (and the backoff's next pause) or the success itself
            except DatabaseConfigMismatch as exc:
                if refusal_is_final:
                    raise
                self._say_failure(exc)
            except DatabaseError as exc:
                self._say_failure(exc)
            else:
                return True
            if stop is not None and stop.is_set():
                return False
        return True

    @staticmethod
    def _pause(stop: threading.Event | None, seconds: float) -> bool:
        """Wait `seconds` (pacing between reconnect attempts); True when `stop` was set meanwhile."""
        if stop is not None:
            return stop.wait(max(seconds, 0.0))
        time.sleep(max(seconds, 0.0))
        return False

    def run(self, work: Callable[[DbSession], T], stop: threading.Event | None = None) -> T | None:
        """Run idempotent `work` until it succeeds, reconnecting whenever the database was lost; None if stopped."""
        while stop is None or not stop.is_set():
            if not self.wait_connected(stop):
                return None
            try:
                return work(self)
            except DatabaseUnavailable as exc:
                if exc is not self.last_error:  # a session lost during `work` (a failed connect counted itself)
                    self._note_failure(exc)
                self._say_failure(exc)
        return None

    def _note_failure(self, exc: DatabaseError) -> None:
        """Count a failed attempt and set the backoff's next pause; said by `_say_failure`, only where a caller
        retries (a one-shot session, a REST login or a CLI, reports its own failure)."""
        self._failed_attempts += 1
        self._retry_at = time.monotonic() + self.backoff.after(self._failed_attempts)
        self.last_error = exc
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _say_failure(self, exc: DatabaseError) -> None:
        """The outage once, at WARNING (ERROR for a configuration that does not fit), each further attempt at
        DEBUG."""
        if not self._outage_said:
            self._outage_said = True
            level = logging.ERROR if isinstance(exc, DatabaseConfigMismatch) else logging.WARNING
            log.log(level, "%s; reconnecting with backoff (every %.0f s at most)", exc, self.backoff.cap)
        else:
            log.debug("reconnect attempt %d failed: %s", self._failed_attempts, exc)

    def _note_success(self) -> None:
        if self._down_since is not None:
            log.info(
                "database at %s is reachable again after %d failed attempt(s) in %.1f s",
                self.settings.dsn,
                self._failed_attempts,
                time.monotonic() - self._down_since,
            )
            self.reconnects += 1
        self._down_since = None
        self._outage_said = False
        self._failed_attempts = 0
        self._retry_at = 0.0
        self.last_error = None

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # the session is gone already; closing is only tidying up
                self._connection.close(disconnect=False)
        self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                self._drop()
        self._connection = None


def _connection_being_made(exc: BaseException) -> Any:
    """The pyexasol connection whose making raised `exc` when that is no error of pyexasol's own (which carries it):
    a password too long for the database's RSA key fails in the encryption, with the socket already open."""
    import pyexasol  # noqa: PLC0415 - lazy: see package docstring

    frame = exc.__traceback__
    while frame is not None:
        candidate = frame.tb_frame.f_locals.get("self")
        if isinstance(candidate, pyexasol.ExaConnection):
            return candidate
        frame = frame.tb_next
    return None
