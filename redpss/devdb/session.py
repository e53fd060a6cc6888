"""One client session: attributes, the transaction, statements, result sets and cancellation.

Transactions follow Exasol: with autocommit every statement commits on its own; without it the first statement
opens a transaction that COMMIT or ROLLBACK ends (COMMIT with none open is fine). Writers are serialized by the
database's write lock, held from the first write to the end of the transaction (see database.py). DuckDB
abandons a transaction after any error in it; devdb then reports every further statement and the COMMIT as
failed, never a COMMIT that silently keeps nothing.
"""

# DuckDB SQL is built here from identifiers devdb parsed and quoted itself; values travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb

from redpss.devdb import catalog, chars, commands, errors, names, users
from redpss.devdb.bulk_insert import translate_bulk_insert
from redpss.devdb.errors import DevDbError, QueryAborted, QueryTimeout, Unsupported
from redpss.devdb.results import INLINE_ROWS, ResultSet, open_stream
from redpss.devdb.scripts import find_script
from redpss.devdb.translate import DEFAULT_SCHEMA, Kind, ObjectName, SessionInfo, Translated, translate
from redpss.devdb.udf import SessionScripts, forget_schema
from redpss.devdb.udf_parse import CreateScript, DropScript

if TYPE_CHECKING:
    from redpss.devdb.database import Database
    from redpss.devdb.transfer import Transfers

LOCK_POLL = 0.05  # seconds between checks for abort/timeout while waiting for the write lock
INTERRUPT_AGAIN = 0.05  # seconds between interrupts of a cancelled statement, until it has ended
VERIFIED_KEPT = 256  # name checks a session remembers (a row writer uses a handful of statement shapes)


class Session:
    def __init__(self, session_id: int, user: str, database: Database, transfers: Transfers) -> None:
        self.id = session_id
        self.user = user
        self.database = database
        self.transfers = transfers
        self.cursor: Any = database.cursor()
        self.autocommit = True
        self.schema: str | None = None
        self.query_timeout = 0
        self._in_txn = False
        self._holds_write = False
        self._wrote = False
        self._failed: str | None = None
        self._catalog_touched = False  # this transaction ran DDL: its end changes the catalog for every session
        self._verified: dict[tuple[object, ...], int] = {}  # name checks passed, at which catalog generation
        self._char_sizes: dict[ObjectName, tuple[int, dict[str, int]]] = {}  # CHAR columns, at which generation
        self._in_script = False
        self._results: dict[int, ResultSet] = {}
        self._next_handle = 1
        self._state = threading.Lock()
        self._running = False
        self._cancel = threading.Event()
        self._ended = threading.Event()  # the running statement's own: set when it ends
        self._cancel_reason = ""
        self._cancel_hooks: list[Callable[[], None]] = []
        self._request = 0  # the number of the client's request being handled (0: none numbered)
        self._aborted_through = 0  # an abortQuery came after the client's requests up to this number
        self.scripts = SessionScripts(self)  # CREATE/DROP SCRIPT and the scalar scripts its statements call

    # ----------------------------------------------------------------- attributes
    def attributes(self) -> dict[str, Any]:
        return {
            "autocommit": self.autocommit,
            "currentSchema": self.schema or "",
            "queryTimeout": self.query_timeout,
            "openTransaction": self._in_txn,
            "compressionEnabled": False,
            "dateFormat": "YYYY-MM-DD",
            "timestampFormat": "YYYY-MM-DD HH24:MI:SS.FF6",
            "numericCharacters": ".,",
            "dateLanguage": "ENG",
            "defaultLikeEscapeCharacter": "\\",
            "timeZone": "UTC",
            "timeZoneBehavior": "INVALID SHIFT AMBIGUOUS ST",
            "snapshotTransactionsEnabled": False,
            "resultSetMaxRows": 0,
            "feedbackInterval": 1,
        }

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        if "queryTimeout" in attributes:
            self.query_timeout = max(0, int(attributes["queryTimeout"] or 0))
        if "currentSchema" in attributes:
            name = str(attributes["currentSchema"] or "")
            if name:
                self._open_schema(name)
            else:
                self._close_schema()
        if "autocommit" in attributes:
            enable = bool(attributes["autocommit"])
            if enable and not self.autocommit and self._in_txn:
                self._commit()  # Exasol commits the open transaction when autocommit is switched on
            self.autocommit = enable

    # ----------------------------------------------------------------- statements
    def execute(self, sql: str) -> dict[str, Any]:
        """Run one statement; the result object of an execute reply, or DevDbError."""
        self.transfers.tunnels.claim(sql)  # an IMPORT/EXPORT may wait for the write lock longer than a tunnel lives
        with self._state:
            self._running = True
            self._ended = threading.Event()
            self._cancel.clear()
            self._cancel_reason = ""
            if 0 < self._request <= self._aborted_through:  # the abort came before the statement could start
                self._cancel_reason = "abort"
                self._cancel.set()
        timer = None
        if self.query_timeout:
            timer = threading.Timer(self.query_timeout, self.cancel, args=("timeout",))
            timer.daemon = True
            timer.start()
        try:
            return self._statement(sql)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()
            with self._state:
                self._running = False
                self._ended.set()
                self._cancel_hooks.clear()

    def start_request(self, number: int) -> None:
        """The client's request `number` (counted by the connection) is handled next."""
        with self._state:
            self._request = number

    def abort_requests_through(self, number: int) -> None:
        """abortQuery read after the client's request `number`: the statements of that request and the ones
        before it are aborted, also those that have not started yet (devdb reads requests ahead of running them)."""
        with self._state:
            self._aborted_through = max(self._aborted_through, number)
        self.cancel("abort")

    def cancel(self, reason: str) -> None:
        """Abort the running statement (reason 'abort' or 'timeout'); nothing happens between statements."""
        with self._state:
            if not self._running or self._cancel.is_set():
                return
            self._cancel_reason = reason
            self._cancel.set()
            hooks = list(self._cancel_hooks)
            ended = self._ended
        self.cursor.interrupt()
        for hook in hooks:
            hook()
        threading.Thread(target=self._interrupt_until, args=(ended,), name="devdb-cancel", daemon=True).start()

    def _interrupt_until(self, ended: threading.Event) -> None:
        """Interrupt DuckDB again until the cancelled statement has ended. DuckDB forgets an interrupt that comes
        before its query starts, and a statement may still be translated, checked or waiting when it is cancelled:
        one interrupt then aborted nothing and the statement ran on. Under the lock that ends the statement, so an
        interrupt never reaches the next one (which DuckDB would not remember anyway, as it starts after it)."""
        while not ended.wait(INTERRUPT_AGAIN):
            with self._state:
                if ended.is_set():
                    return
                self.cursor.interrupt()

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Call hook (e.g. close a socket) if the running statement is cancelled."""
        with self._state:
            self._cancel_hooks.append(hook)
            cancelled = self._cancel.is_set()
        if cancelled:
            hook()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise QueryTimeout(self.query_timeout) if self._cancel_reason == "timeout" else QueryAborted()

    def wait_cancelled(self, seconds: float) -> None:
        """Sleep that ends early, with the cancel error, when the statement is aborted or times out."""
        self._cancel.wait(seconds)
        self.check_cancelled()

    def _statement(self, sql: str) -> dict[str, Any]:
        try:
            statement = translate_bulk_insert(sql, self.info())  # the row writer's many-row INSERTs, quickly
            if statement is None:
                command = commands.parse_command(sql)
                if command is not None:
                    return self._command(command)
                statement = translate(sql, self.info())
            if statement.kind == Kind.QUERY:
                self._verify(statement)  # a write checks its names once it holds the write lock (_write)
            return self._translated(statement)
        except duckdb.Error as exc:
            mapped = self.scripts.take_failure() or self._mapped(exc)
            self._note_failure(mapped.text)
            raise mapped from exc
        except DevDbError as exc:
            self._note_failure(exc.text)
            raise
        finally:
            self.scripts.abandon()  # a failed statement's scripts still get their cleanup()

    def _verify(self, statement: Translated) -> None:
        """names.verify, remembered for DML while no session has run DDL since: its catalog queries cost as much as
        a small INSERT (the row writers send dozens per second)."""
        if statement.kind != Kind.DML:
            names.verify(self.cursor, statement)
            return
        key = (tuple(statement.references), frozenset(statement.used_columns), frozenset(statement.defined_names))
        generation = self.database.catalog_generation  # read first: DDL starting meanwhile makes this entry stale
        if self._verified.get(key) == generation:
            return
        names.verify(self.cursor, statement)
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[key] = generation

    def run_nested(self, sql: str) -> int | list[tuple[Any, ...]]:
        """A statement issued by a script stand-in, inside the caller's statement and transaction."""
        self.check_cancelled()
        result = self._statement(sql)
        if result["resultType"] == "rowCount":
            return int(result["rowCount"])
        body = result["resultSet"]
        if "data" in body:
            return list(zip(*body["data"], strict=True))
        handle = int(body["resultSetHandle"])
        result_set = self._results.pop(handle)
        try:
            return list(zip(*result_set.all_rows(), strict=True))
        finally:
            result_set.close()

    def info(self) -> SessionInfo:
        return SessionInfo(self.user, self.schema, self.id)

    def _command(self, command: commands.Command) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 - one per command
        if isinstance(command, (commands.Commit, commands.Rollback)):
            if self._in_script:
                raise Unsupported("COMMIT or ROLLBACK inside a script stand-in")
            if isinstance(command, commands.Commit):
                self._commit()
            else:
                self._rollback()
            return _row_count(0)
        if isinstance(command, commands.OpenSchema):
            self._open_schema(command.name)
            return _row_count(0)
        if isinstance(command, commands.CloseSchema):
            self._close_schema()
            return _row_count(0)
        if isinstance(command, commands.ExecuteScript):
            return _row_count(self._script(command))
        if isinstance(command, commands.Kill):
            return _row_count(command.run(self.database.sessions, self.id))
        if isinstance(command, commands.CreateConnection):
            connection = catalog.ConnectionObject(command.name, command.address, command.user, command.password)
            return _row_count(self._write(lambda: self._save_connection(connection, command.replace)))
        if isinstance(command, commands.DropConnection):
            return _row_count(self._write(lambda: self._drop_connection(command)))
        if isinstance(command, commands.Import):
            return _row_count(self._write(lambda: self.transfers.run_import(self, command)))
        if isinstance(command, (CreateScript, DropScript)):
            return _row_count(self._write(lambda: self.scripts.apply(command)))
        if isinstance(command, users.UserCommand):
            return _row_count(self._write(lambda: users.run(self.cursor, self.user, command)))
        self._read_txn()
        return _row_count(self.transfers.run_export(self, command))

    def _save_connection(self, connection: catalog.ConnectionObject, replace: bool) -> int:
        catalog.save_connection(self.cursor, connection, replace=replace)
        return 0

    def _drop_connection(self, command: commands.DropConnection) -> int:
        if not catalog.drop_connection(self.cursor, command.name) and not command.if_exists:
            raise DevDbError(f"connection {command.name} not found")
        return 0

    def _translated(self, statement: Translated) -> dict[str, Any]:
        if statement.script_calls:
            returns = self.scripts.prepare(statement.script_calls)
            for position, schema, name in statement.script_columns:  # a call's result has its RETURNS type
                statement.sources[position] = returns[schema, name]
        if statement.kind == Kind.QUERY:
            self._read_txn()
            return self._query(statement)
        if statement.kind == Kind.DML:
            return _row_count(self._write(lambda: self._dml(statement), statement))
        return _row_count(self._write(lambda: self._ddl(statement), statement))

    def _query(self, statement: Translated) -> dict[str, Any]:
        # Scripts called by a query run while all its rows are computed at once, then their cleanup() runs
        result_set = self.query_result(statement.sql, statement.sources, whole=bool(statement.script_calls))
        self.scripts.finish()
        if result_set.num_rows < INLINE_ROWS:
            return {"resultType": "resultSet", "resultSet": result_set.header(inline=True)}
        result_set.handle = self._next_handle
        self._next_handle += 1
        self._results[result_set.handle] = result_set
        return {"resultType": "resultSet", "resultSet": result_set.header(inline=False)}

    def query_result(self, sql: str, sources: list[Any], *, whole: bool = False) -> ResultSet:
        """The result of a query: in memory when small (or inside a transaction), else streamed (results.py)."""
        described = [(str(row[0]), str(row[1])) for row in self.cursor.execute(f"DESCRIBE {sql}").fetchall()]
        types = catalog.result_types(self.cursor, described, sources)
        names = [name for name, _ in described]
        aliases = ", ".join(f'"c{i}"' for i in range(len(described)))
        wire = ", ".join(t.wire_expression(f'"q"."c{i}"') for i, t in enumerate(types))
        query = f'SELECT {wire} FROM ({sql}) AS "q"({aliases})'
        self.check_cancelled()
        if self._in_txn or whole:
            # A stream needs a cursor of its own, which would not see this transaction's uncommitted changes.
            table = self.cursor.sql(query).to_arrow_table()
            self.check_cancelled()
            return ResultSet(names, types, table)
        head = self.cursor.sql(f"{query} LIMIT {INLINE_ROWS}").to_arrow_table()
        self.check_cancelled()
        if head.num_rows < INLINE_ROWS:
            return ResultSet(names, types, head)
        del head
        stream_cursor = self.database.cursor()
        self.on_cancel(stream_cursor.interrupt)
        if self.schema:
            stream_cursor.execute(f'USE "{self.schema}"')
        total, stream = open_stream(stream_cursor, query)
        result_set = ResultSet(names, types, None, stream=stream, total=total)
        try:
            self.check_cancelled()
        except DevDbError:
            result_set.close()
            raise
        return result_set

    def _dml(self, statement: Translated) -> int:
        self.cursor.execute(statement.sql)
        row = self.cursor.fetchone()
        self.scripts.finish()
        self.pad_chars(chars.written_table(statement.ast, self.schema))
        return int(row[0]) if row and row[0] is not None else 0

    def pad_chars(self, table: ObjectName | None) -> None:
        """Pad the CHAR values just written into `table` to their size, as Exasol stores them (chars.py). Which
        columns are CHAR is remembered until the catalog changes, as the name checks are: a catalog query per
        INSERT would cost the row writers about as much as those checks did."""
        if table is None:
            return
        generation = self.database.catalog_generation  # read first: DDL starting meanwhile makes this entry stale
        known = self._char_sizes.get(table)
        if known is None or known[0] != generation:
            if len(self._char_sizes) >= VERIFIED_KEPT:
                self._char_sizes.clear()
            known = self._char_sizes[table] = (generation, chars.char_sizes(self.cursor, table))
        chars.pad_stored(self.cursor, table, known[1])

    def _ddl(self, statement: Translated) -> int:
        self._catalog_touched = True
        self.database.catalog_changed()
        created = statement.created
        keep_existing = bool(statement.ast.args.get("exists")) and created is not None and self._exists(created)
        self.cursor.execute(statement.sql)
        if created is not None and not keep_existing:
            if statement.declared:
                catalog.record(self.cursor, created, statement.declared)
            elif statement.query is not None:
                select_all = f'SELECT * FROM "{created.schema}"."{created.name}"'
                described = [(str(r[0]), str(r[1])) for r in self.cursor.execute(f"DESCRIBE {select_all}").fetchall()]
                types = catalog.result_types(self.cursor, described, statement.sources)
                catalog.record(self.cursor, created, {name: t for (name, _), t in zip(described, types, strict=True)})
        if created is not None and statement.added_columns:
            catalog.add_columns(self.cursor, created, statement.added_columns)
        if created is not None and not keep_existing and _fills_table(statement):
            self.pad_chars(created)
        if statement.dropped is not None:
            catalog.forget(self.cursor, statement.dropped)
        if statement.dropped_schema is not None:
            catalog.forget_schema(self.cursor, statement.dropped_schema)
            forget_schema(self.cursor, statement.dropped_schema)
            if statement.dropped_schema == self.schema:
                self._close_schema()
        if statement.opens_schema is not None:
            self._open_schema(statement.opens_schema)  # Exasol opens a schema it creates
        return 0

    def _exists(self, obj: ObjectName) -> bool:
        row = self.cursor.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [obj.schema, obj.name],
        ).fetchone()
        return bool(row and row[0])

    def _script(self, command: commands.ExecuteScript) -> int:
        function = find_script(command.schema or self.schema, command.name)
        context = _ScriptContext(self)
        own_transaction = self.autocommit
        self._in_script = True
        self.autocommit = False
        try:
            count = function(context, *command.args)
            if own_transaction:
                self._commit()
        except BaseException:
            if own_transaction:
                self._rollback()
            raise
        finally:
            self.autocommit = own_transaction
            self._in_script = False
        return int(count or 0)

    # ----------------------------------------------------------------- result sets
    def fetch(self, handle: int, start: int, num_bytes: int) -> dict[str, Any]:
        result_set = self._results.get(handle)
        if result_set is None:
            raise DevDbError(f"result set handle {handle} is not open")
        return result_set.fetch(start, num_bytes)

    def close_results(self, handles: list[int]) -> None:
        for handle in handles:
            result_set = self._results.pop(int(handle), None)
            if result_set is not None:
                result_set.close()

    def open_result_sets(self) -> int:
        return len(self._results)

    # ----------------------------------------------------------------- transactions
    def _read_txn(self) -> None:
        self._check_failed()
        if not self.autocommit:
            self._ensure_txn()

    def _ensure_txn(self) -> None:
        if not self._in_txn:
            self.cursor.execute("BEGIN TRANSACTION")
            self._in_txn = True

    def _write(self, action: Callable[[], int], statement: Translated | None = None) -> int:
        """Run `action` holding the write lock. The names of `statement` are checked once the lock is held and the
        transaction sees every commit made while this session waited: checked before, a table another session
        dropped (or replaced by its case twin, which DuckDB would take for it) meanwhile would pass."""
        self._check_failed()
        newly_held = not self._holds_write
        self._acquire_write()
        if not self.autocommit:
            self._ensure_txn()
            if statement is not None:
                try:
                    self._verify(statement)
                except BaseException:
                    if newly_held and not self._wrote:  # a refused statement takes no lock for the transaction
                        self._release_write()
                    raise
            count = action()
            self._wrote = True
            return count
        try:
            self._ensure_txn()
            if statement is not None:
                self._verify(statement)
            count = action()
            self.check_cancelled()
            self.cursor.execute("COMMIT")
            self._in_txn = False
        except BaseException:
            self._rollback()
            raise
        finally:
            self._end_txn()
        return count

    def _acquire_write(self) -> None:
        if self._holds_write:
            return
        if not self.database.write_lock.acquire(blocking=False):
            with self.database.waiting_for_write():
                while not self.database.write_lock.acquire(timeout=LOCK_POLL):
                    self.check_cancelled()
        self._holds_write = True
        if self._in_txn and not self._wrote:
            # start afresh so this writer sees every commit made while it waited (nothing of its own is lost)
            self.cursor.execute("COMMIT")
            self.cursor.execute("BEGIN TRANSACTION")

    def _check_failed(self) -> None:
        if self._failed is not None:
            raise DevDbError(
                f"the transaction was rolled back after an earlier error ({self._failed}); "
                "send ROLLBACK (or COMMIT, which reports this) before the next statement",
                errors.TRANSACTION_ROLLBACK,
            )

    def _note_failure(self, text: str) -> None:
        """After an error inside a transaction, find out whether DuckDB abandoned it."""
        if not self._in_txn or self._failed is not None:
            return
        try:
            self.cursor.execute("SELECT 1").fetchall()
        except duckdb.Error:
            self._failed = (text.splitlines() or ["error"])[0]

    def _commit(self) -> None:
        failed = self._failed
        if failed is not None:
            self._rollback()
            raise DevDbError(
                f"COMMIT failed: the transaction had been rolled back after an earlier error ({failed}); "
                "none of its changes were kept",
                errors.TRANSACTION_ROLLBACK,
            )
        if self._in_txn:
            try:
                self.cursor.execute("COMMIT")
            except duckdb.Error as exc:
                self._rollback()
                raise self._mapped(exc) from exc
        self._end_txn()

    def _rollback(self) -> None:
        if self._in_txn:
            with contextlib.suppress(duckdb.Error):  # DuckDB may have dropped the transaction already
                self.cursor.execute("ROLLBACK")
        self._end_txn()

    def _end_txn(self) -> None:
        if self._catalog_touched:  # committed or rolled back: other sessions see the catalog as it now is
            self._catalog_touched = False
            self.database.catalog_changed()
        self._in_txn = False
        self._wrote = False
        self._failed = None
        if self._holds_write:
            self._release_write()

    def _release_write(self) -> None:
        self._holds_write = False
        self.database.write_lock.release()

    def _open_schema(self, name: str) -> None:
        row = self.cursor.execute(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", [name]
        ).fetchone()
        if not row or not row[0]:
            raise DevDbError(f"schema {name} not found")
        self.cursor.execute(f'USE "{name}"')
        self.schema = name

    def _close_schema(self) -> None:
        self.cursor.execute(f"USE {DEFAULT_SCHEMA}")
        self.schema = None

    def _mapped(self, exc: duckdb.Error) -> DevDbError:
        if self._cancel.is_set():
            return QueryTimeout(self.query_timeout) if self._cancel_reason == "timeout" else QueryAborted()
        text = str(exc).split("\n\nLINE ")[0].strip() or type(exc).__name__
        worded = errors.exasol_wording(text)
        if worded is not None:
            return worded
        code = errors.SYNTAX_OR_ACCESS
        if isinstance(exc, duckdb.ConstraintException):
            code = errors.CONSTRAINT_VIOLATION
        elif isinstance(exc, (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException)):
            code = errors.DATA_EXCEPTION
        elif isinstance(exc, duckdb.TransactionException):
            code = errors.TRANSACTION_ROLLBACK
        return DevDbError(text, code)

    def close(self) -> None:
        """End the session: an open transaction is rolled back, as Exasol does on disconnect."""
        self.database.sessions.remove(self.id)
        self._rollback()
        self.close_results(list(self._results))
        self.scripts.close()
        self.cursor.close()


def _fills_table(statement: Translated) -> bool:
    """CREATE TABLE AS and ALTER TABLE ADD COLUMN (whose DEFAULT fills the rows) write values into a table."""
    kind = (statement.ast.args.get("kind") or "").upper()
    return kind == "TABLE" and (statement.query is not None or bool(statement.added_columns))


def _row_count(count: int) -> dict[str, Any]:
    return {"resultType": "rowCount", "rowCount": count}


class _ScriptContext:
    """The ScriptContext handed to script stand-ins (see scripts.py)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def execute(self, sql: str) -> int | list[tuple[Any, ...]]:
        return self._session.run_nested(sql)

    def check_cancelled(self) -> None:
        self._session.check_cancelled()

    def sleep(self, seconds: float) -> None:
        self._session.wait_cancelled(seconds)
