"""Commit markers: a SQL job run's outcome follows what the database kept, whatever died around its COMMIT.

A worker runs a SQL job with autocommit off and inserts the run's id into REDSYS.ADM_RUN_COMMIT in the same
transaction before it commits (`run_sql_job`), so the marker exists exactly when the job's work was committed.
When a run's outcome is unknown (its worker died, the connection dropped during the run or its COMMIT, SCHED
restarted with the run in flight) the master asks the marker (`CommitMarkers.decide`): present means OK
("committed; the worker ended before reporting"), absent means the outcome SCHED would have logged anyway.

The master asks with a DELETE that it then rolls back: a DELETE waits for the write lock of a transaction still
open on the table (Exasol's transaction conflict, devdb's write lock), so the answer never comes from a moment when
a dying worker's COMMIT is still under way; rolling it back makes asking idempotent, so a question interrupted by a
dropped connection is simply asked again. Markers of runs whose log row is spooled are deleted in batches
(`forget`, `purge`); one left behind by a killed SCHED goes after a day.

Questions are asked one at a time on a thread of the markers' own: while the database is away a question waits
without end, and runs waiting to be decided wait on the event loop for their turn, not as threads. Asked from
asyncio's shared thread pool, a handful of such waits (runs a killed SCHED left in flight) took every thread of it,
and everything else SCHED does there stopped with them.
"""

# SQL built here holds only run ids SCHED made, quoted by sqltext.sql_literal.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redpss.core.db import DatabaseError, DatabaseUnavailable, DbSession
from redpss.core.db.errors import DatabaseQueryError, map_exa_error
from redpss.core.db.sqltext import sql_literal
from redpss.sched.runs import OK, RunRequest, RunResult

log = logging.getLogger("redpss.sched.commit")

T = TypeVar("T")

TABLE = "REDSYS.ADM_RUN_COMMIT"
UNKNOWN = "unknown"  # RunResult.extra["commit"] of a run whose worker lost the database: the marker decides
UNREADABLE = "unreadable"  # RunResult.extra["commit"] when the marker could not be read: not known, never retried
KEEP_SECONDS = 86400  # a marker nobody deleted (SCHED killed after spooling the row) goes after a day
PURGE_BATCH = 500
ASK_AGAIN_FOR, ASK_AGAIN_PAUSE = 60.0, 1.0  # seconds an error that may pass is asked again for, and between asks
LOCK_WAIT = 10  # seconds SCHED's DELETE waits for an open transaction before it asks again (and checks for stop)


def is_sql_job(request: RunRequest) -> bool:
    return request.kind == "JOB" and request.job_type == "SQL"


def set_autocommit(session: DbSession, enabled: bool) -> None:
    """Switch the session's autocommit; a lost connection is closed (reopened on next use) and raised mapped."""
    connection = session.connection()
    if bool(connection.attr.get("autocommit", True)) != enabled:
        _change_session(session, lambda: connection.set_autocommit(enabled))


def _change_session(session: DbSession, change: Callable[[], object]) -> None:
    """Run `change` (a setting of the session's connection); on failure the error is raised mapped, and a lost
    connection is closed first, so that the next use opens a new one."""
    try:
        change()
    except Exception as exc:
        error = map_exa_error(exc, dsn=session.settings.dsn, user=session.settings.user)
        if isinstance(error, DatabaseUnavailable):
            session.close()
        raise error from exc


class CommitUnknown(DatabaseUnavailable):
    """The connection was lost while COMMIT was on its way: whether it took effect only the marker can say."""


def set_query_timeout(session: DbSession, seconds: int) -> None:
    """The session's statement timeout (0: none); a lost connection is closed and raised mapped."""
    connection = session.connection()
    if int(connection.attr.get("queryTimeout", 0) or 0) != seconds:
        _change_session(session, lambda: connection.set_query_timeout(seconds))


def _wait_limit(remaining: float | None) -> int:
    """Whole seconds a DELETE may wait for a lock: LOCK_WAIT, less when a deadline is closer (at least 1)."""
    return LOCK_WAIT if remaining is None else max(1, min(LOCK_WAIT, int(remaining)))


def run_sql_job(session: DbSession, run_id: str, command: str) -> int:
    """Run `command` and the run's commit marker in one transaction and commit it; the statement's row count.

    A connection lost before COMMIT was sent raises DatabaseUnavailable: nothing was committed (the database rolls
    back the transaction of a session that is gone). Lost during COMMIT it raises CommitUnknown: the master decides
    by the marker. Any other error rolls the transaction back and is raised.
    """

    def work() -> int:
        rows = int(session.execute(command).rowcount())
        session.execute(f"INSERT INTO {TABLE} (RUN_ID, COMMITTED_AT) VALUES ({sql_literal(run_id)}, CURRENT_TIMESTAMP)")
        return rows

    return in_one_transaction(session, work, "the commit marker decides")


def in_one_transaction(session: DbSession, work: Callable[[], T], deciding: str) -> T:
    """Run `work` (statements on `session`) with autocommit off and COMMIT it; what `work` returned.

    Lost before COMMIT: DatabaseUnavailable, nothing committed. Lost during COMMIT: CommitUnknown, its message ending
    in `deciding` (what tells later whether the work took effect: SQL jobs' marker, LOAD jobs' file ledger). Any other
    error rolls back and is raised. Autocommit is on again afterwards, as the other job types expect.
    """
    set_autocommit(session, False)
    try:
        value = work()
    except DatabaseUnavailable:
        raise  # the session is closed already; reopened with autocommit for the next run
    except BaseException:
        _rollback(session)
        raise
    try:
        session.commit()
    except DatabaseUnavailable as exc:
        raise CommitUnknown(f"the connection was lost during COMMIT ({exc}); {deciding}") from exc
    except BaseException:
        _rollback(session)
        raise
    try:
        set_autocommit(session, True)  # watcher conditions and other job types run with autocommit
    except DatabaseError:
        session.close()  # committed already; the next run reconnects with the default autocommit
    return value


def _rollback(session: DbSession) -> None:
    try:
        session.execute("ROLLBACK")
        set_autocommit(session, True)
    except DatabaseError:
        session.close()  # the database rolls back a transaction whose connection is gone


class CommitMarkers:
    """The master's side: decide unknown outcomes by the marker, delete the markers of logged runs."""

    def __init__(self, session: DbSession) -> None:
        self.session = session
        self.stop = threading.Event()
        self._lock = threading.Lock()  # the session: held while the markers' thread uses it, taken by close()
        self._asking = asyncio.Lock()  # one question (or purge) at a time; the others wait on the event loop
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sched-commits")
        self._logged: set[str] = set()  # runs whose row is spooled: their markers can go
        self._deciding = 0
        self._last_age_purge = -1e9

    def committed(self, run_id: str, timeout: float | None = None) -> bool | None:
        """Whether `run_id` committed; waits for the database (None when stopped or after `timeout` seconds).
        MarkerUnreadable when the database answers but the marker cannot be read: nobody knows then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return None
        failing_since: float | None = None  # errors that may pass (a collision, an abort) are asked again a while
        try:
            while not self.stop.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if not self.session.wait_connected(self.stop, timeout=remaining):
                    return None
                try:
                    return self._probe(run_id, _wait_limit(remaining))
                except DatabaseUnavailable:
                    continue
                except DatabaseError as exc:
                    if isinstance(exc, DatabaseQueryError) and exc.timeout:
                        continue  # a transaction on the table is still open: ask again (stop and deadline checked)
                    if _lasting(exc) or (failing_since or time.monotonic()) < time.monotonic() - ASK_AGAIN_FOR:
                        raise MarkerUnreadable(str(exc)) from exc
                    if failing_since is None:
                        failing_since = time.monotonic()
                        log.warning("the commit marker of run %s: %s; asking again", run_id, exc)
                    self.stop.wait(ASK_AGAIN_PAUSE)
            return None
        finally:
            self._lock.release()

    @property
    def undecided(self) -> int:
        """Runs whose outcome waits for their marker to be read (asked now, or waiting for their turn)."""
        return self._deciding

    async def decide(self, request: RunRequest, result: RunResult, timeout: float | None = None) -> RunResult | None:
        """`result`, or OK when the SQL job committed after all; None when it cannot be known yet (stopping, or
        `timeout` seconds passed, waiting for the turn included)."""
        if not is_sql_job(request):
            return result
        self._deciding += 1  # counted before its turn: purge keeps old markers while any run is undecided
        try:
            found = await self._ask(request.run_id, timeout)
        except MarkerUnreadable as exc:
            log.error("cannot read the commit marker of run %s: %s", request.run_id, exc)
            return not_known(result, str(exc))
        finally:
            self._deciding -= 1
        return None if found is None else decided(request, result, found)

    async def _ask(self, run_id: str, timeout: float | None) -> bool | None:
        """`committed` on the markers' thread once the questions before it are answered; None after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                await self._asking.acquire()
        except TimeoutError:
            return None
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            asked = self._submit(self.committed, run_id, remaining)
            return None if asked is None else await asked
        finally:
            self._asking.release()

    def _submit(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T] | None:
        """`call` on the markers' thread; None once closed (close() may shut the thread down at any moment)."""
        if self.stop.is_set():
            return None
        try:
            return asyncio.wrap_future(self._thread.submit(call, *args))
        except RuntimeError:  # shut down between the look and the submit
            return None

    def _probe(self, run_id: str, wait: int) -> bool:
        set_query_timeout(self.session, wait)  # the DELETE waits for an open transaction at most this long
        set_autocommit(self.session, False)
        try:
            found = int(self.session.execute(f"DELETE FROM {TABLE} WHERE RUN_ID = {sql_literal(run_id)}").rowcount())
        finally:
            self._end(commit=False)
        return found > 0

    def _end(self, *, commit: bool) -> None:
        try:
            self.session.execute("COMMIT" if commit else "ROLLBACK")
        except DatabaseUnavailable:
            self.session.close()
            raise

    def pending_purge(self) -> bool:
        """Whether `purge` has something to do: logged runs' markers, or the hourly look for old ones."""
        return bool(self._logged) or time.monotonic() - self._last_age_purge > 3600

    def forget(self, run_id: str) -> None:
        """The run's log row is spooled: its marker is no longer needed."""
        self._logged.add(run_id)

    async def purge(self) -> None:
        """`purge_now` on the markers' thread; nothing when a question is being asked (the next purge catches up)."""
        if self._asking.locked():
            return
        async with self._asking:
            purging = self._submit(self.purge_now)
            if purging is not None:
                await purging

    def purge_now(self) -> None:
        """Delete the markers of logged runs and those older than a day; left for later when the database is away."""
        if self.stop.is_set() or not self._lock.acquire(blocking=False):
            return
        try:
            batch = sorted(self._logged)[:PURGE_BATCH]
            clauses = []
            if batch:
                clauses.append("RUN_ID IN (" + ", ".join(sql_literal(run_id) for run_id in batch) + ")")
            if self._deciding == 0:  # a run being decided keeps its marker at any age
                self._last_age_purge = time.monotonic()
                clauses.append(f"COMMITTED_AT < ADD_SECONDS(CURRENT_TIMESTAMP, -{KEEP_SECONDS})")
            if not clauses or not self.session.wait_connected(self.stop, timeout=0.01):
                return
            set_query_timeout(self.session, LOCK_WAIT)
            set_autocommit(self.session, False)
            self.session.execute(f"DELETE FROM {TABLE} WHERE " + " OR ".join(clauses))
            self._end(commit=True)
            self._logged.difference_update(batch)
        except DatabaseError as exc:
            log.debug("commit markers not purged yet: %s", exc)
        finally:
            self._lock.release()

    def close(self, timeout: float = 5.0) -> None:
        """Stop asking; close the session unless a DELETE still waits for the database (it ends with the process,
        within LOCK_WAIT seconds); questions not yet asked are dropped."""
        self.stop.set()
        if self._lock.acquire(timeout=timeout):
            try:
                self.session.close()
            finally:
                self._lock.release()
        self._thread.shutdown(wait=False, cancel_futures=True)


def _lasting(exc: DatabaseError) -> bool:
    """An error asking again will not change: SQL class 42, syntax or access (the table missing, no privilege)."""
    return isinstance(exc, DatabaseQueryError) and exc.code.startswith("42")


class MarkerUnreadable(Exception):
    """The database answered, but not with the marker (its table missing, no privilege): the outcome is unknown."""


def not_known(result: RunResult, why: str) -> RunResult:
    """`result` marked as of unknown outcome: whether the job's work was committed cannot be told, so the run is not
    retried (a retry of work that did commit would do it twice); the message says what the operator must check."""
    message = (
        f"{result.message}; whether its work was committed is NOT KNOWN: the commit marker cannot be read ({why}); "
        "not retried: check the job's target tables before running it again"
    )
    return dataclasses.replace(result, message=message, extra={**result.extra, "commit": UNREADABLE})


def decided(request: RunRequest, result: RunResult, committed: bool) -> RunResult:
    """The run's result once its marker was read: OK when it committed, else `result` saying nothing was."""
    if not committed:
        return dataclasses.replace(result, message=f"{result.message}; no commit marker: its work was rolled back")
    extra: dict[str, Any] = {**result.extra, "commit": "marker"}
    message = f"committed; the worker ended before reporting ({result.message})"
    return RunResult(request.run_id, OK, message, result.started_at, result.ended_at, result.worker, extra=extra)
