"""Runs PYTHON3 SCALAR scripts in devdb's process, as Exasol's script container would run them.

Per statement and script, the body runs once as a module with a global `exa` (exa.meta, exa.get_connection), then
`run(ctx)` once per row (ctx offers the arguments by parameter name and by position) and, when the statement's rows
are all computed, `cleanup()` if the body defines it: Exasol's life of one virtual machine. A failure in the body,
in run() or in cleanup() fails the statement with the script's name, the phase, the exception and the line of the
script (sqlCode 22002). Calls reach the script through a DuckDB Python function registered for this session
(udf_calls.py names it); DuckDB calls it from its own threads, so one lock serializes the calls of a statement.

The body runs inside devdb with devdb's rights: devdb is a development database, and a script is trusted code.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import CodeType
from typing import TYPE_CHECKING, Any

import duckdb

from redpss.devdb import catalog, udf_store
from redpss.devdb.errors import DATA_EXCEPTION, DevDbError
from redpss.devdb.names import NoSchema
from redpss.devdb.protocol import RELEASE_VERSION
from redpss.devdb.types import ExaType
from redpss.devdb.udf_calls import duckdb_function_name
from redpss.devdb.udf_parse import LANGUAGE, CreateScript, DropScript
from redpss.devdb.udf_store import StoredScript

if TYPE_CHECKING:
    from redpss.devdb.session import Session


class ScriptFailure(DevDbError):
    """A script's body, run() or cleanup() raised: Exasol reports such errors with 22002 (VM error)."""

    sql_code = DATA_EXCEPTION


def compile_body(script: StoredScript) -> CodeType:
    """The body as a code object; a syntax error names the script and the line."""
    try:
        return compile(script.body, _file_name(script), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise DevDbError(
            f"script {script.qualified}: syntax error in the {LANGUAGE} code at line {exc.lineno}: {exc.msg}"
        ) from None


def _file_name(script: StoredScript) -> str:
    return f"<script {script.qualified}>"


@dataclass(frozen=True)
class ConnectionInformation:
    """What exa.get_connection returns: the fields of a CONNECTION object."""

    address: str
    user: str | None
    password: str | None = field(repr=False)
    type: str = "PASSWORD"


@dataclass(frozen=True)
class Column:
    """An input or output column as exa.meta describes it: Python type, SQL type, precision, scale, length."""

    name: str
    type: type
    sql_type: str
    precision: int | None
    scale: int | None
    length: int | None

    @classmethod
    def of(cls, name: str, declared: ExaType) -> Column:
        if declared.kind == "DECIMAL":
            python: type = int if declared.scale == 0 else Decimal
            return cls(name, python, declared.text(), declared.precision, declared.scale, None)
        if declared.kind in ("VARCHAR", "CHAR"):
            return cls(name, str, declared.text(), None, None, declared.size)
        kinds = {"DOUBLE": float, "BOOLEAN": bool, "DATE": datetime.date, "TIMESTAMP": datetime.datetime}
        return cls(name, kinds.get(declared.kind, object), declared.text(), None, None, None)


@dataclass(frozen=True)
class Meta:
    """The part of Exasol's exa.meta that devdb can fill in (one node, one virtual machine)."""

    script_schema: str
    script_name: str
    script_code: str
    session_id: str
    current_user: str
    current_schema: str | None
    input_columns: tuple[Column, ...]
    output_columns: tuple[Column, ...]
    statement_id: int = 0
    script_language: str = f"Python {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    database_name: str = "DEVDB"
    database_version: str = RELEASE_VERSION
    input_type: str = "SCALAR"
    output_type: str = "RETURN"
    node_count: int = 1
    node_id: int = 0
    vm_id: str = "0"
    memory_limit: int = 0

    @property
    def scope_user(self) -> str:
        return self.current_user

    @property
    def input_column_count(self) -> int:
        return len(self.input_columns)

    @property
    def input_column_name(self) -> list[str]:
        return [column.name for column in self.input_columns]

    @property
    def output_column_count(self) -> int:
        return len(self.output_columns)


class Exa:
    """The `exa` global of a script: its metadata and the CONNECTION objects of the database."""

    def __init__(self, meta: Meta, connection: Callable[[str], catalog.ConnectionObject | None]) -> None:
        self.meta = meta
        self._connection = connection

    def get_connection(self, name: str) -> ConnectionInformation:
        found = self._connection(name) or self._connection(name.upper())
        if found is None:
            raise ValueError(f"connection {name} does not exist (CREATE CONNECTION {name.upper()} TO ... first)")
        return ConnectionInformation(found.address, found.user, found.password)

    def import_script(self, name: str) -> Any:
        raise ImportError(f"devdb does not support exa.import_script({name!r}): put the code into the script itself")


class Context:
    """The `ctx` of run(ctx): the row's arguments by parameter name (ctx.level) and by position (ctx[1])."""

    def __init__(self, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        self.__dict__.update(zip(names, values, strict=True))  # one call per row: no setattr loop
        self._values = values

    def __getitem__(self, index: int) -> Any:
        return self._values[index]


class ScriptInstance:
    """One script's module for one statement: loaded at the first row, cleaned up at the statement's end."""

    def __init__(self, script: StoredScript, code: CodeType, exa: Exa) -> None:
        self.script = script
        self.names = tuple(p.name for p in script.parameters)
        # positions of DECIMAL(p,0) parameters, whose Decimal values Exasol passes as int
        self.integral = tuple(
            i for i, p in enumerate(script.parameters) if p.type.kind == "DECIMAL" and not p.type.scale
        )
        self.namespace: dict[str, Any] = {"__name__": f"exa_script_{script.name}", "__builtins__": builtins, "exa": exa}
        self._guarded("loading the script", lambda: exec(code, self.namespace))  # noqa: S102 - the script's own code
        run = self.namespace.get("run")
        if not callable(run):
            raise ScriptFailure(
                f"script {script.qualified} defines no function run(ctx): a {LANGUAGE} SCALAR script needs one"
            )
        self._run: Callable[[Context], Any] = run

    def call(self, values: tuple[Any, ...]) -> Any:
        """run(ctx) for one row; this is the per-row path, so it does no more than Exasol's types need."""
        if self.integral or "" in values:
            values = _exasol_values(values, self.integral)
        try:
            return self._run(Context(self.names, values))
        except (Exception, SystemExit) as exc:  # any error of the script's code (sys.exit too) fails the statement
            raise self._failure("run()", exc) from exc

    def cleanup(self) -> None:
        cleanup = self.namespace.get("cleanup")
        if callable(cleanup):
            self._guarded("cleanup()", cleanup)

    def _guarded(self, phase: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (Exception, SystemExit) as exc:  # as in call()
            raise self._failure(phase, exc) from exc

    def _failure(self, phase: str, exc: BaseException) -> ScriptFailure:
        return ScriptFailure(f"script {self.script.qualified}: {phase} failed: {_described(exc, self.script)}")


def _exasol_values(values: tuple[Any, ...], integral: tuple[int, ...]) -> tuple[Any, ...]:
    """Exasol's Python types: DECIMAL(p,0) as int, '' as None (Exasol has no empty string)."""
    converted: list[Any] = [None if value == "" else value for value in values]
    for index in integral:
        value = converted[index]
        if isinstance(value, Decimal):
            converted[index] = int(value)
    return tuple(converted)


def _described(exc: BaseException, script: StoredScript) -> str:
    line = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == _file_name(script):
            line = trace.tb_lineno
        trace = trace.tb_next
    where = f" (line {line} of the script)" if line is not None else ""
    return f"{type(exc).__name__}: {exc}{where}"


class SessionScripts:
    """The scripts of one session: CREATE/DROP SCRIPT, the DuckDB functions behind calls, statement ends."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._registered: dict[str, tuple[StoredScript, CodeType]] = {}  # DuckDB function -> script it runs
        self._instances: dict[str, ScriptInstance] = {}  # of the running statement
        self._failure: ScriptFailure | None = None
        self._lock = threading.Lock()

    # -- CREATE / DROP ---------------------------------------------------------------------------------------------
    def apply(self, command: CreateScript | DropScript) -> int:
        """Run CREATE/DROP SCRIPT in the session's transaction (the caller holds the write lock)."""
        cursor = self._session.cursor
        schema = command.schema or self._session.schema
        if schema is None:
            raise NoSchema
        if isinstance(command, DropScript):
            if not udf_store.drop(cursor, schema, command.name) and not command.if_exists:
                raise DevDbError(f"script {schema}.{command.name} not found")
            return 0
        found = cursor.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", [schema])
        if not found.fetchall()[0][0]:
            raise DevDbError(f"schema {schema} not found")
        script = StoredScript(schema, command.name, command.parameters, command.returns, command.body)
        compile_body(script)
        udf_store.save(cursor, script, replace=command.replace)
        return 0

    # -- calls -----------------------------------------------------------------------------------------------------
    def prepare(self, calls: list[tuple[str, str]]) -> dict[tuple[str, str], ExaType]:
        """Make sure each called script's DuckDB function exists and runs the script as it is now; the RETURNS
        type of each."""
        returns: dict[tuple[str, str], ExaType] = {}
        for schema, name in calls:
            script = udf_store.find(self._session.cursor, schema, name)
            if script is None:
                raise DevDbError(
                    f"function or script {schema}.{name} not found "
                    f"(create it with CREATE {LANGUAGE} SCALAR SCRIPT {schema}.{name}(...) RETURNS ... AS)"
                )
            function = duckdb_function_name(self._session.id, schema, name)
            current = self._registered.get(function)
            exists = self._exists(function)
            if not exists or current is None or current[0] != script:
                self._register(function, script, replace=exists)
            returns[schema, name] = script.returns
        return returns

    def _exists(self, function: str) -> bool:
        """Whether the session sees the function: a ROLLBACK takes away what was registered in its transaction."""
        rows = self._session.cursor.execute(
            "SELECT COUNT(*) FROM duckdb_functions() WHERE function_name = ?", [function]
        ).fetchall()
        return bool(rows[0][0])

    def _register(self, function: str, script: StoredScript, *, replace: bool) -> None:
        code = compile_body(script)
        # On the session's own connection, inside its transaction if one is open: a function committed by another
        # connection after the transaction touched the catalog stays invisible to it. The connection holds the
        # Python function, and lives as long as the session.
        cursor = self._session.cursor
        if replace:
            cursor.remove_function(function)
        cursor.create_function(
            function,
            _with_arity(lambda *values: self._call(function, values), len(script.parameters)),
            [duckdb.sqltype(p.type.duckdb_type()) for p in script.parameters],
            duckdb.sqltype(script.returns.duckdb_type()),
            type="native",
            null_handling="special",
            side_effects=True,  # never folded into a constant, never called twice for a row
        )
        self._registered[function] = (script, code)

    def _call(self, function: str, values: tuple[Any, ...]) -> Any:
        with self._lock:
            try:
                instance = self._instances.get(function)
                if instance is None:
                    script, code = self._registered[function]
                    instance = ScriptInstance(script, code, self._exa(script))
                    self._instances[function] = instance
                return instance.call(values)
            except ScriptFailure as exc:
                self._failure = self._failure or exc
                raise

    def _exa(self, script: StoredScript) -> Exa:
        session = self._session
        columns = tuple(Column.of(p.name, p.type) for p in script.parameters)
        meta = Meta(
            script.schema,
            script.name,
            script.body,
            str(session.id),
            session.user,
            session.schema,
            columns,
            (Column.of("RETURN", script.returns),),
        )
        return Exa(meta, self._connection)

    def _connection(self, name: str) -> catalog.ConnectionObject | None:
        cursor = self._session.database.cursor()  # the session's own cursor is busy running the statement
        try:
            return catalog.find_connection(cursor, name)
        finally:
            cursor.close()

    # -- statement end ---------------------------------------------------------------------------------------------
    def finish(self) -> None:
        """The statement's rows are computed: cleanup() of each script it ran; a failure fails the statement."""
        instances, self._instances = self._instances, {}
        failure, self._failure = self._failure, None
        for instance in instances.values():
            try:
                instance.cleanup()
            except ScriptFailure as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def abandon(self) -> None:
        """The statement failed: still give each script its cleanup() (PSS_LOG sends what it buffered)."""
        with contextlib.suppress(DevDbError):
            self.finish()

    def take_failure(self) -> ScriptFailure | None:
        """The script error behind a DuckDB error of the running statement, if any (its text is clearer)."""
        failure, self._failure = self._failure, None
        return failure

    def close(self) -> None:
        """The session ends (its transaction is over): its DuckDB functions go, before its connection closes."""
        for function in self._registered:
            with contextlib.suppress(duckdb.Error):
                self._session.cursor.remove_function(function)
        self._registered.clear()


def _with_arity(call: Callable[..., Any], count: int) -> Callable[..., Any]:
    """DuckDB checks that the function's signature takes as many arguments as the script declares."""
    parameters = [inspect.Parameter(f"arg{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(count)]
    call.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return call


def forget_schema(cursor: Any, schema: str) -> None:
    """DROP SCHEMA drops the schema's scripts."""
    udf_store.forget_schema(cursor, schema)
