"""The one durable writer of rows for the database: spool first, then insert in batches from a thread.

Every daemon that produces rows for the database (SCHED's run log, JMON's statistics, the database log server)
hands them to a RowWriter. `append` returns once the rows are on disk (written and fsync'd to the spool; a writer
made with `fsync_appends=False`, DBLS's, only writes them, as durable as its log files), so a caller may
acknowledge them; a writer thread with its own session inserts them in batches. While the database is
away the rows wait in the spool, also across restarts. Rows the database refuses (a wrong column, a value too long)
go to the `.rejected` file beside the spool with the reason, so one bad row never holds up the others; a statement
that failed for a passing reason (timed out, aborted by KILL STATEMENT, a transaction collision) refuses nothing and
is sent again in the next round.

The spool is append-only: rows, and after each committed batch a line naming the rows that are done. It is
rewritten (atomically) only when it has grown much larger than what still waits, and emptied when nothing waits.
A last line cut short by a stop mid-write (never acknowledged) is cut off at start, before anything is appended.
Delivery is at-least-once: a crash between a commit and its "done" line writes that batch again at the next start.
For tables with key columns, a batch that may be such a second delivery (rows read back from the spool at start, or
a batch whose INSERT lost the database, so that it may have committed) first deletes the rows of the same keys; a
batch sent for the first time does not (that DELETE scans the table, each batch would cost more as the table grows).
A table without a natural key gets one from the writer (`row_ids`: table -> column): each row appended is given a
unique id there (random per writer, then its sequence number), kept in the spool, so a batch sent again replaces its
first copy as a keyed table's does (LOG_MESSAGES.MESSAGE_KEY). A database whose table lacks that column (RED-PSS
upgraded, `redctl db_install` not run yet) keeps the rows waiting in the spool, saying so, instead of refusing them.
Rows appended `if_absent` (what a restarted daemon writes for work whose own row it cannot know was written, such as
SCHED's INTERRUPTED row of a run a killed SCHED left) are written only where no row of the same keys exists yet, and
never replace one.

When the spool cannot be written (a full disk, no file descriptors left) nothing is dropped: the rows stay in
memory and still go to the database, the writer retries the spool every round and says so at ERROR once per
episode; `backlog()` shows it, so an operator sees that rows are held in memory only.

A caller that acknowledges its rows together with another write (DBLS: the log files, then LOG_MESSAGES) uses
`append_held`: the rows are on disk when it returns, or not kept at all, and the writer leaves them alone until
`release`; `cancel` withdraws them when the other write failed. So a refused request leaves nothing behind that a
resend would duplicate, and no acknowledgement covers rows held in memory only.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple, overload

from redpss.core.db.errors import DatabaseError, DatabaseQueryError
from redpss.core.db.session import DbSession
from redpss.core.db.sqltext import delete_matching, insert_statement, select_matching
from redpss.core.durable import fsync_folder

log = logging.getLogger("redpss.core.db.rowwriter")

BATCH_ROWS = 1000
FLUSH_INTERVAL = 0.5  # seconds between rounds when nothing wakes the writer
COMPACT_MIN_BYTES = 1 << 20  # the spool is rewritten only beyond this size ...
COMPACT_FACTOR = 4  # ... and when it is this many times larger than the rows still waiting
ASSUMED_LINE_BYTES = 300  # a row's spool line where its length is not known (a row held in memory only)
BEHIND_RETRY = 60.0  # seconds before the rows of a table lacking a key column (schema not upgraded) are tried again
REJECTED_FILE_LIMIT = 64 << 20  # bytes of the .rejected file before it is kept as .rejected.1 and a new one begun
# In a spool's folder: the time (epoch seconds) the database was replaced by a clone (redpss.clone). Every writer
# whose spool is in that folder (each daemon's, in the instance's tmp/) drops the rows appended before that time:
# they belong to the database that is gone (run log, statistics, LOG_MESSAGES rows of DBLS, SENDMAIL, SENDFILE).
CLONE_CUTOFF_FILE = "clone.cutoff"
# The writers of LOG_MESSAGES rows (DBLS, SENDMAIL, SENDFILE) give each row its id there (app migration 004)
LOG_MESSAGE_IDS = {"LOG_MESSAGES": "MESSAGE_KEY"}


class _SchemaBehind(DatabaseQueryError):
    """The table lacks a key column the writer fills: not the rows' fault, they wait (see the module's text)."""


@dataclass(frozen=True)
class Backlog:
    """What waits, for `redctl show` and STATUS=: rows not yet in the database, and why."""

    rows: int  # rows not yet in the database
    oldest: float | None  # when the oldest of them was appended (epoch seconds)
    memory_only: int  # of those, rows the spool could not take: lost if the process ends before it can
    rejected: int  # rows set aside in the .rejected file since start
    last_error: str  # the last database or spool problem, "" when none is current
    spool_error: str  # the current spool problem, "" when the spool works

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "oldest": self.oldest,
            "memory_only": self.memory_only,
            "rejected": self.rejected,
            "last_error": self.last_error,
            "spool_error": self.spool_error,
        }


class Busy(enum.Enum):
    """append_held's answer when told not to wait for the spool's lock."""

    BUSY = "busy"


BUSY = Busy.BUSY


@dataclass(frozen=True)
class _Entry:
    seq: int
    table: str
    row: Mapping[str, Any]
    appended_at: float
    if_absent: bool = False  # written only if no row of the same keys is in the table (see the module's text)

    def to_json(self) -> str:
        record = {"seq": self.seq, "at": self.appended_at, "table": self.table, "row": self.row}
        if self.if_absent:
            record["if_absent"] = True
        return json.dumps(record, default=str) + "\n"


class RowWriter:
    """Spool + batch writer for any number of tables; `append` never waits for the database."""

    def __init__(
        self,
        name: str,
        spool: Path,
        session: DbSession,
        *,
        batch_rows: int = BATCH_ROWS,
        flush_interval: float = FLUSH_INTERVAL,
        keys: Mapping[str, Sequence[str]] | None = None,
        row_ids: Mapping[str, str] | None = None,
        behind_retry: float = BEHIND_RETRY,
        fsync_appends: bool = True,
    ) -> None:
        self.name = name
        # False: an append is on disk once written (it survives this process, as DBLS's files do, not a power loss)
        # and is answered without an fsync, so a caller may append on its event loop (docs/decisions.md)
        self.fsync_appends = fsync_appends
        self.discard_before = spool.with_name(CLONE_CUTOFF_FILE)  # read at start and before every round
        self._cutoff_seen = 0
        self.spool = spool
        self.rejected_file = spool.with_suffix(".rejected")
        self.session = session
        self.batch_rows = batch_rows
        self.flush_interval = flush_interval
        self.behind_retry = behind_retry
        # table name (without schema) -> columns that identify a row: a batch sent again replaces its earlier copy
        self.keys = dict(keys or {})
        # table name (without schema) -> the column this writer fills with a unique id, which is then its key
        self.row_ids = dict(row_ids or {})
        self.keys.update({table: (column,) for table, column in self.row_ids.items()})
        self._id_prefix = secrets.token_hex(8)  # unique per writer, so ids stay unique across restarts
        self.written = 0
        self._lock = threading.Lock()
        self._pending: dict[int, _Entry] = {}  # in append order
        self._unspooled: set[int] = set()  # pending rows only in memory (the spool failed)
        self._maybe_sent: set[int] = set()  # pending rows whose earlier INSERT may have committed (see the docstring)
        self._held: set[int] = set()  # pending rows appended held: not written until released (append_held)
        # held row -> where its append lies in the spool (generation, start, end): a withdrawal erases it in place
        self._held_at: dict[int, _Region] = {}
        # table -> (monotonic time of the next try, why): tables lacking a key column the writer fills; their rows
        # wait, the other tables' go on
        self._behind: dict[str, tuple[float, str]] = {}
        self._seq = 0
        self._rejected = 0
        self._spool_error = ""
        self._db_error = ""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._fd: int | None = None  # the spool, open for appending
        self._generation = 0  # raised whenever the spool is replaced or emptied
        self._synced = (0, 0)  # (generation, size) known to be on disk
        # the length of each row's spool line (rows written, loaded or rewritten; pruned at each rewrite): the
        # spool is compacted when it is several times larger than the rows still waiting
        self._line_bytes: dict[int, int] = {}
        self.rewritten_bytes = 0  # what compactions of the spool wrote since start (their cost: for tests)
        self._thread: threading.Thread | None = None
        self._load()
        self._apply_cutoff()

    # -- the caller's side ----------------------------------------------------------------------------------------
    def append(self, table: str, rows: Iterable[Mapping[str, Any]], *, if_absent: bool = False) -> bool:
        """Queue `rows` for `table` (schema-qualified); True once they are on disk, False when they are held in
        memory only because the spool cannot be written (they are still written to the database). `if_absent`: a
        row is written only if the table has no row of its keys yet (the table must have keys)."""
        if if_absent and not self._keys_of(table):
            raise ValueError(f"{self.name}: rows for {table} cannot be written if absent: the table has no keys")
        with self._lock:
            entries = self._new_entries(table, rows, if_absent)
            if not entries:
                return True
            for entry in entries:
                self._pending[entry.seq] = entry
            # While the spool fails, rows wait in memory for the writer's retry, which rewrites the spool with every
            # waiting row: so the problem is said once, and once it works again nothing stays behind in memory.
            span = None if self._spool_error else self._append_to_spool(entries)
            if span is None:
                self._unspooled.update(entry.seq for entry in entries)
            generation = self._generation
        self._wake.set()
        if span is None:
            return False
        return not self.fsync_appends or self._sync(generation, span[1], [entry.seq for entry in entries])

    @overload
    def append_held(
        self, rows_by_table: Mapping[str, Iterable[Mapping[str, Any]]], *, wait: Literal[True] = True
    ) -> list[int] | None: ...
    @overload
    def append_held(
        self, rows_by_table: Mapping[str, Iterable[Mapping[str, Any]]], *, wait: bool
    ) -> list[int] | Busy | None: ...
    def append_held(
        self, rows_by_table: Mapping[str, Iterable[Mapping[str, Any]]], *, wait: bool = True
    ) -> list[int] | Busy | None:
        """Put the rows (table -> rows) on disk in one write, held back from the database until `release`: their
        sequence numbers, or None when they cannot be made durable now (a full disk, a failed write or fsync), and
        then nothing is kept. With `wait` False, BUSY instead of waiting while the writer's thread holds the spool
        (a rewrite: an fsync under the lock), for a caller on an event loop to try again from a thread."""
        if not self._lock.acquire(blocking=wait):
            return BUSY
        try:
            if self._spool_error or self._stop.is_set():  # stopping: the spool is closed, or about to be
                return None
            entries = [entry for table, rows in rows_by_table.items() for entry in self._new_entries(table, rows)]
            seqs = [entry.seq for entry in entries]
            if not entries:
                return seqs
            span = self._append_to_spool(entries)
            if span is None:
                return None  # cut back out of the spool, never in memory: nothing to undo
            start, end = span
            for entry in entries:
                self._pending[entry.seq] = entry
            self._held.update(seqs)
            generation = self._generation
            region = _Region(generation, start, end, frozenset(seqs))
            self._held_at.update(dict.fromkeys(seqs, region))
        finally:
            self._lock.release()
        if self.fsync_appends and not self._sync(generation, end, seqs):
            self.cancel(seqs)
            return None
        return seqs

    def _new_entries(self, table: str, rows: Iterable[Mapping[str, Any]], if_absent: bool = False) -> list[_Entry]:
        """The rows as entries with their sequence numbers, and their ids where the writer gives the table's rows
        one (a copy of each row: the caller's stays as it is). Lock held."""
        now = time.time()
        column = self.row_ids.get(_bare(table))
        entries = []
        for row in rows:
            self._seq += 1
            copy = dict(row)
            if column is not None:
                copy[column] = f"{self._id_prefix}-{self._seq}"
            entries.append(_Entry(self._seq, table, copy, now, if_absent))
        return entries

    def release(self, seqs: Iterable[int]) -> None:
        """Let held rows go to the database."""
        with self._lock:
            for seq in seqs:
                self._held.discard(seq)
                self._held_at.pop(seq, None)
        self._wake.set()

    def cancel(self, seqs: Iterable[int]) -> None:
        """Withdraw held rows (the write they belonged to failed): never written, and never back after a restart."""
        with self._lock:
            synced = self._withdraw([seq for seq in seqs if seq in self._held])
        if synced is not None:  # outside the lock, as _sync
            try:
                with contextlib.suppress(OSError):
                    os.fsync(synced)
            finally:
                os.close(synced)

    def _withdraw(self, seqs: list[int]) -> int | None:
        """Forget held rows and make that last in the spool; a descriptor for the caller to fsync, or None. Lock held.

        Their lines are overwritten in place by a note naming them as done, of the same length: that needs no room
        on the disk, and a withdrawal is usually for a write that failed on a full disk (DBLS's log files), which the
        spool may share, so a note appended to the spool would fail as well. Lines the spool no longer has where they
        were written (it was rewritten since) get a note appended, as written rows do.
        """
        if not seqs:
            return None
        regions = {self._held_at.pop(seq) for seq in seqs if seq in self._held_at}
        erased = {seq for region in regions if self._erase(region, seqs) for seq in region.seqs}
        self._held.difference_update(seqs)
        for seq in erased:
            self._pending.pop(seq, None)
            self._unspooled.discard(seq)
            self._maybe_sent.discard(seq)
        rest = [seq for seq in seqs if seq not in erased]
        self._mark_done(rest)
        if not rest or self._fd is None or self._spool_error:
            return None  # erased: fsync'd already; else a crash could bring them back (rare: a failed request)
        return os.dup(self._fd)

    def _erase(self, region: _Region, withdrawn: list[int]) -> bool:
        """Overwrite the lines of `region` with a note of the same length that they are done, and fsync it; False when
        that cannot be done (the spool was rewritten since, not all of the region is withdrawn, an I/O error)."""
        if region.generation != self._generation or self._fd is None or not region.seqs <= set(withdrawn):
            return False
        note = json.dumps({"done": sorted(region.seqs)}).encode()
        length = region.end - region.start
        if len(note) + 1 > length:
            return False
        try:
            fd = os.open(self.spool, os.O_WRONLY)  # not O_APPEND: Linux appends every pwrite on such a descriptor
            try:
                if not os.path.samestat(os.fstat(fd), os.fstat(self._fd)):
                    return False
                os.pwrite(fd, note + b" " * (length - len(note) - 1) + b"\n", region.start)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("%s: cannot withdraw %d row(s) in %s (%s); a note is appended instead", self.name,
                        len(region.seqs), self.spool, exc.strerror or exc)  # fmt: skip
            return False
        return True

    def _sync(self, generation: int, end: int, seqs: list[int]) -> bool:
        """fsync the spool unless an fsync since our write (or a rewrite, which fsyncs) covered it already.

        Each caller fsyncs its own duplicate of the descriptor, outside the lock: concurrent fsyncs of one file join
        the same journal commit in the kernel, so appends from many threads share the cost (group commit).
        """
        with self._lock:
            if self._synced >= (generation, end) or self._generation != generation:
                return True
            try:
                if self._spool_error or self._fd is None:  # an fsync of this spool failed: its data is not safe
                    raise OSError(errno.EIO, self._spool_error or "the spool was closed")
                fd = os.dup(self._fd)
            except OSError as exc:
                self._spool_failed(exc, f"{len(seqs)} row(s)")
                self._unspooled.update(seq for seq in seqs if seq in self._pending)
                return False
        try:
            target = (generation, os.fstat(fd).st_size)
            os.fsync(fd)
        except OSError as exc:
            with self._lock:
                self._spool_failed(exc, f"{len(seqs)} row(s)")
                self._unspooled.update(seq for seq in seqs if seq in self._pending)
            return False
        finally:
            os.close(fd)
        with self._lock:
            self._synced = max(self._synced, target)
        return True

    def backlog(self) -> Backlog:
        with self._lock:
            first = next(iter(self._pending.values()), None)
            return Backlog(
                rows=len(self._pending),
                oldest=first.appended_at if first else None,
                memory_only=len(self._unspooled),
                rejected=self._rejected,
                last_error=self._spool_error or self._db_error or next((why for _, why in self._behind.values()), ""),
                spool_error=self._spool_error,
            )

    @property
    def spool_failing(self) -> str:
        """The current spool problem ("" when the spool works): rows appended now would be held in memory only."""
        return self._spool_error

    def waiting(self) -> list[tuple[str, Mapping[str, Any]]]:
        """(table, row) of every row not yet in the database, oldest first."""
        with self._lock:
            return [(entry.table, entry.row) for entry in self._pending.values()]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-rows", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what can be written within `timeout`; the rest stays in the spool for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            # rows still held belong to requests never acknowledged (release comes before the answer): their
            # caller sends them again, so they must not come back at the next start (the fsync below covers a note)
            synced = self._withdraw(sorted(self._held))
        if synced is not None:
            os.close(synced)
        backlog = self.backlog()
        if backlog.memory_only:
            log.error(
                "%s: %d row(s) could not be spooled (%s) and are lost: %s",
                self.name,
                backlog.memory_only,
                backlog.spool_error,
                self._describe_unspooled(),
            )
        elif backlog.rows:
            log.warning("%s: %d row(s) stay in %s until the next start", self.name, backlog.rows, self.spool)
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)  # the "done" notes of the last batches
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
        self.session.close()

    @property
    def alive(self) -> bool:
        """The writer thread runs (False before start and after stop)."""
        return self._thread is not None and self._thread.is_alive()

    def flush_now(self) -> None:
        """Wake the writer thread for an immediate round (e.g. after a burst of appends)."""
        self._wake.set()

    # -- the spool ------------------------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.spool.exists():
            return
        self._cut_torn_tail()
        bad = 0
        done: set[int] = set()
        entries: list[_Entry] = []
        with self.spool.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    if "done" in record:
                        done.update(int(seq) for seq in record["done"])
                    else:
                        self._line_bytes[int(record["seq"])] = len(line.encode())
                        entries.append(
                            _Entry(
                                int(record["seq"]),
                                str(record["table"]),
                                dict(record["row"]),
                                float(record["at"]),
                                bool(record.get("if_absent", False)),
                            )
                        )
                except (ValueError, KeyError, TypeError):
                    bad += 1
        for entry in entries:
            if entry.seq not in done:
                self._pending[entry.seq] = entry
            self._seq = max(self._seq, entry.seq)
        # a withdrawn row's note outlives its line (erased in place): a new row taking its number would count as done
        self._seq = max(self._seq, *done, 0)
        self._maybe_sent = set(self._pending)  # a crash may have come between their commit and their "done" line
        if self._pending:
            log.info("%s: %d row(s) from the spool %s wait to be written", self.name, len(self._pending), self.spool)
        if bad:
            log.error("%s: %d unreadable line(s) in %s were skipped", self.name, bad, self.spool)

    def _cut_torn_tail(self) -> None:
        """Cut a last line without its line break (the process or the machine stopped mid-write): appends would
        otherwise continue that line, and the first row appended after this start would be unreadable at the next."""
        try:
            with self.spool.open("rb+") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size == 0:
                    return
                handle.seek(max(0, size - 1))
                if handle.read(1) == b"\n":
                    return
                keep = _end_of_last_line(handle, size)
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            log.error("%s: cannot cut the torn last line of %s: %s", self.name, self.spool, exc.strerror or exc)
            return
        log.warning(
            "%s: the last %d byte(s) of %s were a line cut short by a stop mid-write (never acknowledged); removed",
            self.name,
            size - keep,
            self.spool,
        )

    def _apply_cutoff(self) -> None:
        """Drop the rows appended before the time in `discard_before`, once per change of that file."""
        try:
            changed = self.discard_before.stat().st_mtime_ns
            if changed == self._cutoff_seen:
                return
            cutoff = float(self.discard_before.read_text())
        except (OSError, ValueError):
            return
        with self._lock:
            old = [seq for seq, entry in self._pending.items() if entry.appended_at < cutoff]
            for seq in old:
                del self._pending[seq]
                self._unspooled.discard(seq)
                self._maybe_sent.discard(seq)
                self._held.discard(seq)
            if old:
                self._rewrite_spool()
        self._cutoff_seen = changed
        if old:
            log.warning(
                "%s: %d row(s) from before the database was replaced by a clone discarded (%s)",
                self.name,
                len(old),
                self.discard_before,
            )

    def _append_to_spool(self, entries: Sequence[_Entry]) -> tuple[int, int] | None:
        """Append (the caller fsyncs); where the lines lie in the spool (start, end), None on failure. Lock held."""
        data, lengths = _spool_lines(entries)
        end = self._spool_write(data, what=f"{len(entries)} row(s)")
        if end is None:
            return None
        self._line_bytes.update(lengths)
        return end - len(data), end

    def _spool_write(self, data: bytes, what: str) -> int | None:
        """Append `data` without fsync; on failure the file is cut back to where it was, so no torn line stays."""
        try:
            if self._fd is None:
                self._fd = os.open(self.spool, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fd = self._fd
            size = os.fstat(fd).st_size
        except OSError as exc:
            self._spool_failed(exc, what)
            return None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            self._spool_failed(exc, what)
            return None
        return size + len(data)

    def _replaced(self) -> None:
        """The spool file was replaced or emptied: later appends open it anew; their fsync is a new one. Lock held."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # an fsync under way uses its own duplicate
            self._fd = None
        self._generation += 1

    def _spool_failed(self, exc: OSError, what: str) -> None:
        reason = f"{exc.strerror or exc} ({self.spool})"
        if not self._spool_error:
            log.error(
                "%s: cannot write the spool: %s; %s and whatever follows are held in memory and retried, "
                "still going to the database (free space or file descriptors to make them safe on disk)",
                self.name,
                reason,
                what,
            )
        self._spool_error = reason

    def _retry_spool(self) -> None:
        """Make held rows durable again by rewriting the spool; says so once it works. Lock held."""
        if not self._spool_error:
            return
        if not self._pending:
            # Nothing at risk; empty the spool of rows written meanwhile (needs no space, proves nothing: _round
            # probes the disk)
            with contextlib.suppress(OSError):
                os.truncate(self.spool, 0)
            self._replaced()
            return
        if self._rewrite_spool():
            log.warning(
                "%s: the spool can be written again; %d row(s) held in memory are on disk now",
                self.name,
                len(self._unspooled),
            )
            self._unspooled.clear()
            self._spool_error = ""

    def _probe_spool(self) -> bool:
        """Whether a page can be written and synced beside the spool now (a full disk, no descriptors: False)."""
        probe = self.spool.with_suffix(".probe")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                written = os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
            return written == 4096
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def _rewrite_spool(self) -> bool:
        """Replace the spool with the rows still waiting (atomic); False when that cannot be written. Lock held."""
        temporary = self.spool.with_suffix(".tmp")
        try:
            if not self._pending:
                with contextlib.suppress(FileNotFoundError):
                    os.truncate(self.spool, 0)
                self._replaced()
                self._line_bytes.clear()
                return True
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                lengths: dict[int, int] = {}
                with os.fdopen(fd, "wb", closefd=False) as handle:
                    for entry in self._pending.values():
                        line = entry.to_json().encode()
                        lengths[entry.seq] = len(line)
                        handle.write(line)
                os.fsync(fd)
                self.rewritten_bytes += os.fstat(fd).st_size
                self._line_bytes = lengths
            finally:
                os.close(fd)
            temporary.replace(self.spool)
            self._replaced()
            fsync_folder(self.spool.parent)  # the rename too: appends after it are fsync'd into the new file
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            self._spool_failed(exc, f"{len(self._pending)} row(s)")
            return False
        return True

    def _mark_done(self, seqs: list[int]) -> None:
        """Forget written rows and note it in the spool (or rewrite it when that pays). Lock held."""
        for seq in seqs:
            self._pending.pop(seq, None)
            self._unspooled.discard(seq)
            self._maybe_sent.discard(seq)
            self._held.discard(seq)
        if not seqs:
            return
        if self._spool_error:
            return  # the spool is rewritten as a whole once it works again
        if not self._pending or self._spool_oversized():
            self._rewrite_spool()
            return
        # not fsync'd: the next fsync'd append takes it along; lost, the batch is written again (at least once)
        self._spool_write((json.dumps({"done": seqs}) + "\n").encode(), what="a note of written rows")

    def _spool_oversized(self) -> bool:
        try:
            size = self.spool.stat().st_size
        except OSError:
            return False
        if size <= COMPACT_MIN_BYTES:
            return False
        # the rows' own lines: DBLS's rows carry messages of kilobytes, and an assumed 300 bytes each had the spool
        # rewritten whole after every batch of a backlog (gigabytes written while a long outage's rows drained)
        lengths = self._line_bytes
        waiting = sum(lengths.get(seq, ASSUMED_LINE_BYTES) for seq in self._pending)
        return size > COMPACT_FACTOR * waiting

    # -- the writer thread ----------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._round()
            except Exception:
                # The rows stay waiting; a thread that ended here would leave them unwritten without a word.
                log.exception("%s: writing rows failed unexpectedly; trying again in a moment", self.name)
                self._stop.wait(1.0)
            if self._stop.is_set():
                return

    def _round(self) -> None:
        self._apply_cutoff()
        with self._lock:
            self._retry_spool()
            nothing_held = bool(self._spool_error) and not self._pending
        # Appends skip the disk while the error stands, so with nothing held a probe tells when it can go: else, with
        # the database there to take every row at once, the spool stayed "failing" for good and every row was held
        # in memory only. Outside the lock: its fsync may be slow on the disk that failed, and appends wait for it.
        if nothing_held and self._probe_spool():
            with self._lock:
                if self._spool_error and not self._pending:
                    log.warning("%s: the spool can be written again", self.name)
                    self._unspooled.clear()
                    self._spool_error = ""
        while self._pending:
            if not self._write_batch():
                break
        if self._behind:  # a table whose rows went otherwise (a clone's cut-off, withdrawn) is no longer behind
            with self._lock:
                waiting = {entry.table for entry in self._pending.values()}
                for table in set(self._behind) - waiting:
                    del self._behind[table]

    def _write_batch(self) -> bool:
        """Insert up to `batch_rows` rows, one INSERT per table; False when the database is away or nothing could
        be dealt with (the next round tries again)."""
        now = time.monotonic()
        with self._lock:
            behind = {table for table, (retry_at, _) in self._behind.items() if retry_at > now}
            free = (e for e in self._pending.values() if e.seq not in self._held and e.table not in behind)
            batch = list(itertools.islice(free, self.batch_rows))
        if not batch:
            return False  # only held rows wait (their caller releases them), or rows of tables not upgraded yet
        if not self._connected():
            return False
        groups: dict[str, list[_Entry]] = {}
        for entry in batch:
            groups.setdefault(entry.table, []).append(entry)
        done: list[int] = []
        reachable = True
        for table, entries in groups.items():
            try:
                done += self._insert(table, entries)
                self._caught_up(table)
            except _SchemaBehind as exc:
                self._fell_behind(table, exc)
            except DatabaseError as exc:
                if not isinstance(exc, DatabaseQueryError):  # the connection may have died after COMMIT; a
                    self._maybe_sent.update(entry.seq for entry in entries)  # statement that failed did not commit
                self._database_away(exc)
                reachable = False
                break
        if done:
            with self._lock:
                self._mark_done(done)
            self.written += len(done)
            if reachable and self._db_error:
                log.info("%s: writing to the database again", self.name)
                self._db_error = ""
        return reachable and bool(done)

    def _fell_behind(self, table: str, exc: DatabaseError) -> None:
        """The table lacks a key column this writer fills: its rows wait BEHIND_RETRY seconds, the others go on."""
        with self._lock:
            new = table not in self._behind
            self._behind[table] = (time.monotonic() + self.behind_retry, str(exc))
            rows = sum(1 for entry in self._pending.values() if entry.table == table)
        if new:
            log.warning("%s: the database's schema is older than RED-PSS, %d row(s) for %s wait in the spool: %s",
                        self.name, rows, table, exc)  # fmt: skip

    def _caught_up(self, table: str) -> None:
        with self._lock:
            was_behind = self._behind.pop(table, None) is not None
        if was_behind:
            log.info("%s: writing the rows for %s again", self.name, table)

    def _connected(self) -> bool:
        """Connected now, or within a few seconds (short, so the spool is retried while the database is away); the
        session's backoff paces the attempts across these calls."""
        if self.session.wait_connected(self._stop, timeout=2.0 if self._stop.is_set() else 5.0):
            return True
        if self.session.last_error is not None:
            self._database_away(self.session.last_error)
        return False

    def _database_away(self, exc: DatabaseError) -> None:
        if not self._db_error:
            log.warning("%s: database unavailable, %d row(s) wait in the spool: %s", self.name, len(self._pending), exc)
        self._db_error = str(exc)

    def _insert(self, table: str, entries: list[_Entry]) -> list[int]:
        """Insert `entries`; rows the database refuses go to the .rejected file, found one by one when a batch
        fails. The sequence numbers of the rows dealt with; DatabaseError (not a refusal) when the database is away
        or the statement failed for a passing reason (timed out, aborted, a transaction collision)."""
        try:
            columns = self._keys_of(table)
            present = self._present(table, columns, entries)
            if present:
                log.info("%s: %d row(s) for %s not written: the table has a row of their keys already",
                         self.name, len(present), table)  # fmt: skip
            fresh = [e for e in entries if e.seq not in present]
            # delivery is at least once: rows of an earlier delivery of this batch go first (never a row written
            # only if absent: the row found there may be another's, which it must not replace)
            again = [e.row for e in fresh if e.seq in self._maybe_sent and not e.if_absent] if columns else []
            # a row without any of its key (one spooled before the writer gave ids) identifies no earlier copy:
            # matching NULL would delete every row others wrote without one. A key in part NULL (a skipped tick's
            # row has a run id but no attempt) does: NULL matches NULL in the rest of it
            again = [row for row in again if any(row.get(column) is not None for column in columns or ())]
            if columns and again:
                self.session.execute(delete_matching(table, columns, again))
            if fresh:
                self.session.execute(insert_statement(table, [dict(e.row) for e in fresh]))
            return [e.seq for e in entries]
        except DatabaseQueryError as exc:
            if exc.passing:
                raise  # not the rows' fault: the batch waits for the next round, as while the database is away
            missing = self._missing_key_column(table, exc)
            if missing:
                raise _SchemaBehind(
                    f"{table} has no column {missing} yet: run `redctl db_install` to upgrade the schema "
                    f"(the rows wait in {self.spool})",
                    code=exc.code,
                    sql=exc.sql,
                    reason=exc.reason,
                ) from None
            if len(entries) == 1 or _table_missing(table, exc):
                # a table that is not there refuses every row alike: set aside at once, not tried row by row
                # (a statement, an fsync and an ERROR line for each)
                return [e.seq for e in self._reject(table, entries, str(exc))]
        dealt: list[int] = []
        for entry in entries:  # a refused batch: find the refused rows, keep the others moving
            try:
                dealt += self._insert(table, [entry])
            except DatabaseError as exc:
                if not dealt:
                    raise
                if not isinstance(exc, DatabaseQueryError):
                    self._maybe_sent.add(entry.seq)  # as _write_batch marks a batch whose connection died
                break  # the rows inserted so far are done; this one and the rest wait for the next batch
        return dealt

    def _missing_key_column(self, table: str, exc: DatabaseQueryError) -> str:
        """The key column the database says the table lacks ("" if none): the schema predates the writer, which no
        row is to blame for, so the rows wait rather than going to the .rejected file."""
        for column in self._keys_of(table) or ():
            pattern = rf'\bobject (?:"?[^\s".]+"?\.)*"?{re.escape(column)}"? not found'
            if exc.missing_object and re.search(pattern, exc.reason, re.IGNORECASE):
                return column
        return ""

    def _keys_of(self, table: str) -> Sequence[str] | None:
        return self.keys.get(_bare(table))

    def _present(self, table: str, columns: Sequence[str] | None, entries: list[_Entry]) -> set[int]:
        """The sequence numbers of the `if_absent` entries whose keys the table holds already."""
        asked = [e for e in entries if e.if_absent]
        if not asked or not columns:
            return set()
        found = {
            tuple(map(_key_text, row))
            for row in self.session.fetchall(select_matching(table, columns, [e.row for e in asked]))
        }
        return {e.seq for e in asked if tuple(_key_text(e.row.get(c)) for c in columns) in found}

    def _reject(self, table: str, entries: list[_Entry], reason: str) -> list[_Entry]:
        """Set refused rows aside with the reason; the ones set aside (none when the file cannot be written)."""
        lines = "".join(
            json.dumps({"reason": reason, "table": table, "row": e.row, "at": e.appended_at}, default=str) + "\n"
            for e in entries
        )
        self._start_new_rejected_file_when_full()
        try:
            with self.rejected_file.open("a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            log.error(
                "%s: %d refused row(s) for %s stay waiting; cannot write %s: %s",
                self.name,
                len(entries),
                table,
                self.rejected_file,
                exc.strerror or exc,
            )
            return []
        self._rejected += len(entries)
        log.error(
            "%s: %d row(s) for %s refused by the database, kept in %s: %s",
            self.name,
            len(entries),
            table,
            self.rejected_file,
            reason,
        )
        return entries

    def _start_new_rejected_file_when_full(self) -> None:
        """At REJECTED_FILE_LIMIT bytes the .rejected file becomes .rejected.1 (the one before is deleted): rows a
        broken sender makes the database refuse must not fill the disk the spool needs."""
        try:
            if self.rejected_file.stat().st_size < REJECTED_FILE_LIMIT:
                return
            older = self.rejected_file.with_name(self.rejected_file.name + ".1")
            self.rejected_file.replace(older)
        except OSError:
            return
        log.warning("%s: %s reached %d MiB: kept as %s (the one before deleted), a new one begun",
                    self.name, self.rejected_file, REJECTED_FILE_LIMIT >> 20, older.name)  # fmt: skip

    def _describe_unspooled(self) -> str:
        with self._lock:
            held = [self._pending[seq] for seq in sorted(self._unspooled) if seq in self._pending]
        shown = "; ".join(f"{e.table} {json.dumps(e.row, default=str)}" for e in held[:20])
        return shown + (f"; ... and {len(held) - 20} more" if len(held) > 20 else "")


def _table_missing(table: str, exc: DatabaseQueryError) -> bool:
    """The database says `table` itself (not one of its columns) does not exist."""
    schema, _, name = table.rpartition(".")
    qualifier = rf'"?{re.escape(schema)}"?\.' if schema else ""  # a column of the table's name is no match
    pattern = rf'\bobject {qualifier}"?{re.escape(name)}"? not found'
    return exc.missing_object and re.search(pattern, exc.reason, re.IGNORECASE) is not None


class _Region(NamedTuple):
    """Where one append of held rows lies in the spool."""

    generation: int
    start: int
    end: int
    seqs: frozenset[int]


def _spool_lines(entries: Sequence[_Entry]) -> tuple[bytes, dict[int, int]]:
    """The entries' spool lines, and the length of each (by sequence number)."""
    lines = [entry.to_json().encode() for entry in entries]
    return b"".join(lines), {entry.seq: len(line) for entry, line in zip(entries, lines, strict=True)}


def _bare(table: str) -> str:
    """A table's name without its schema: what `keys` and `row_ids` are given by."""
    return table.rsplit(".", 1)[-1]


def _end_of_last_line(handle: IO[bytes], size: int, block: int = 1 << 16) -> int:
    """The offset just after the last line break before `size` in the open binary file (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _key_text(value: Any) -> str:
    """A key value as text, so that a value read back (a DECIMAL as int or Decimal, a text) compares equal to the
    one appended (an int, a str)."""
    if value is None:
        return ""
    number = str(value)
    return number[:-2] if number.endswith(".0") and number[:-2].lstrip("-").isdigit() else number
