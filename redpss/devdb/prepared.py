"""Prepared statements (createPreparedStatement, executePreparedStatement, closePreparedStatement).

pyexasol's ext.insert_multi and its DB-API driver's executemany prepare `INSERT INTO t VALUES (?, ?)` and send the
rows column-major; meta.sql_columns prepares a query to read its result columns. devdb keeps the statement text and
runs it through the session like any other statement, with each `?` replaced by the row's value as an Exasol literal
(so the translation, name checks, transactions and cancellation are the ones every statement gets). Rows of a
batch run in one transaction, in statements of up to BATCH_ROWS rows for an INSERT ... VALUES, one statement per
row otherwise; with autocommit the batch commits once, as Exasol's single executePreparedStatement does.
Parameter types are the target columns' for INSERT ... VALUES and VARCHAR(2000000) elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from redpss.devdb import catalog
from redpss.devdb.dialect import ExasolAsRead
from redpss.devdb.errors import DATA_EXCEPTION, DevDbError
from redpss.devdb.names import require_object
from redpss.devdb.tokens import strip_charset_suffixes
from redpss.devdb.translate import DEFAULT_SCHEMA, ObjectName, object_name
from redpss.devdb.types import DEFAULT_VARCHAR, ExaType

if TYPE_CHECKING:
    from redpss.devdb.session import Session

BATCH_ROWS = 1000
_QUERIES = (exp.Select, exp.Union, exp.Except, exp.Intersect, exp.Subquery)


@dataclass
class Prepared:
    sql: str
    tree: exp.Expr
    parameters: list[ExaType]
    is_query: bool
    insert_values: bool  # INSERT ... VALUES (?, ...): rows are sent as one multi-row VALUES list


@dataclass
class _Registry:
    statements: dict[int, Prepared] = field(default_factory=dict)
    numbers: Any = field(default_factory=lambda: itertools.count(1))


_registries: weakref.WeakKeyDictionary[Session, _Registry] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _registry(session: Session) -> _Registry:
    with _lock:
        return _registries.setdefault(session, _Registry())


def create(session: Session, sql: str) -> dict[str, Any]:
    """The responseData of createPreparedStatement."""
    sql = sql.strip().rstrip(";")
    try:
        tree = sqlglot.parse_one(strip_charset_suffixes(sql), read=ExasolAsRead, error_level=ErrorLevel.RAISE)
    except ParseError as exc:
        raise DevDbError(f"syntax error in the prepared statement: {str(exc).splitlines()[0]}") from exc
    placeholders = list(tree.find_all(exp.Placeholder))
    statement = Prepared(sql, tree, [], isinstance(tree, _QUERIES), False)
    statement.parameters = [DEFAULT_VARCHAR] * len(placeholders)
    if isinstance(tree, exp.Insert) and isinstance(tree.expression, exp.Values):
        statement.insert_values = len(tree.expression.expressions) == 1
        statement.parameters = _insert_parameter_types(session, tree, placeholders)
    registry = _registry(session)
    handle = next(registry.numbers)
    result = _query_header(session, statement) if statement.is_query else {"resultType": "rowCount", "rowCount": 0}
    registry.statements[handle] = statement
    data: dict[str, Any] = {"statementHandle": handle, "numResults": 1, "results": [result]}
    if placeholders:
        data["parameterData"] = {
            "numColumns": len(placeholders),
            "columns": [{"name": "", "dataType": t.data_type()} for t in statement.parameters],
        }
    return data


def execute(session: Session, request: dict[str, Any]) -> dict[str, Any]:
    """The responseData of executePreparedStatement."""
    statement = _find(session, request.get("statementHandle"))
    columns = request.get("data") or []
    if not isinstance(columns, list) or not all(isinstance(c, list) for c in columns):
        raise DevDbError("executePreparedStatement: data must be a list of columns (column-major)", DATA_EXCEPTION)
    count = len(statement.parameters)
    if len(columns) != count:
        raise DevDbError(
            f"executePreparedStatement: the statement has {count} parameters but data has {len(columns)} columns",
            DATA_EXCEPTION,
        )
    if len({len(column) for column in columns}) > 1:
        raise DevDbError("executePreparedStatement: the columns of data differ in length", DATA_EXCEPTION)
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else [[]]
    if not rows:
        return {"numResults": 1, "results": [{"resultType": "rowCount", "rowCount": 0}]}
    if statement.is_query or len(rows) == 1:
        if len(rows) != 1:
            raise DevDbError("a prepared query runs with one row of parameters", DATA_EXCEPTION)
        return {"numResults": 1, "results": [session.execute(_bind(statement, [rows[0]]))]}
    return {"numResults": 1, "results": [{"resultType": "rowCount", "rowCount": _run_batch(session, statement, rows)}]}


def close(session: Session, handle: Any) -> None:
    _registry(session).statements.pop(_number(handle), None)


def _find(session: Session, handle: Any) -> Prepared:
    statement = _registry(session).statements.get(_number(handle))
    if statement is None:
        raise DevDbError(f"prepared statement handle {handle!r} is not open (closePreparedStatement closed it?)")
    return statement


def _number(handle: Any) -> int:
    if isinstance(handle, bool) or not isinstance(handle, int):
        raise DevDbError(f"statementHandle must be a number, got {handle!r}", DATA_EXCEPTION)
    return handle


def _insert_parameter_types(session: Session, tree: exp.Insert, placeholders: list[exp.Placeholder]) -> list[ExaType]:
    target = tree.this
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table):
        return [DEFAULT_VARCHAR] * len(placeholders)
    normalized = normalize_identifiers(table.copy(), dialect="exasol")
    obj = object_name(normalized, session.schema)
    require_object(session.cursor, obj)
    declared = _declared_types(session, obj)
    names = list(declared)
    if isinstance(target, exp.Schema):
        names = [normalize_identifiers(column.copy(), dialect="exasol").name for column in target.expressions]
    row = tree.expression.expressions[0] if tree.expression.expressions else None
    values = row.expressions if isinstance(row, exp.Tuple) else []
    types: list[ExaType] = []
    for index, value in enumerate(values):
        if isinstance(value, exp.Placeholder):
            name = names[index] if index < len(names) else ""
            types.append(declared.get(name, DEFAULT_VARCHAR))
    return types if len(types) == len(placeholders) else [DEFAULT_VARCHAR] * len(placeholders)


def _declared_types(session: Session, obj: ObjectName) -> dict[str, ExaType]:
    declared = catalog.lookup(session.cursor, obj)
    if declared:
        return declared
    table = f'"{obj.schema or DEFAULT_SCHEMA}"."{obj.name}"'
    described = [(str(r[0]), str(r[1])) for r in session.cursor.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]  # noqa: S608
    return dict(zip([n for n, _ in described], catalog.result_types(session.cursor, described, []), strict=True))


def _query_header(session: Session, statement: Prepared) -> dict[str, Any]:
    """The result columns of a prepared query: the query run with NULL parameters and no rows."""
    probe = statement.tree.copy()
    for placeholder in list(probe.find_all(exp.Placeholder)):
        placeholder.replace(exp.Null())
    if isinstance(probe, exp.Select):
        probe = probe.limit(0)
    else:
        probe = exp.select("*").from_(exp.Subquery(this=probe, alias=exp.TableAlias(this=exp.to_identifier("q"))))
        probe = probe.where(exp.false())
    result = session.execute(probe.sql(dialect=ExasolAsRead))
    body = result.get("resultSet", {})
    body.update({"numRows": 0, "numRowsInMessage": 0, "data": [[] for _ in body.get("columns", [])]})
    body.pop("resultSetHandle", None)
    return result


def _run_batch(session: Session, statement: Prepared, rows: list[list[Any]]) -> int:
    chunks = (
        [rows[start : start + BATCH_ROWS] for start in range(0, len(rows), BATCH_ROWS)]
        if statement.insert_values
        else [[row] for row in rows]
    )
    own_transaction = session.autocommit
    session.autocommit = False
    total = 0
    try:
        for chunk in chunks:
            result = session.execute(_bind(statement, chunk))
            total += int(result.get("rowCount", 0))
        if own_transaction:
            session.execute("COMMIT")
    except BaseException:
        if own_transaction:
            with contextlib.suppress(DevDbError):
                session.execute("ROLLBACK")
        raise
    finally:
        session.autocommit = own_transaction
    return total


def _bind(statement: Prepared, rows: list[list[Any]]) -> str:
    """Exasol SQL of the statement with the rows' values in place of the placeholders."""
    tree = statement.tree.copy()
    if statement.insert_values and len(rows) > 1:
        template = tree.expression.expressions[0]
        tuples = []
        for row in rows:
            filled = template.copy()
            _fill(filled, row, statement.parameters)
            tuples.append(filled)
        tree.expression.set("expressions", tuples)
    else:
        _fill(tree, rows[0], statement.parameters)
    return tree.sql(dialect=ExasolAsRead)  # read back by the same dialect (USER stays USER)


def _fill(node: exp.Expr, row: list[Any], types: list[ExaType]) -> None:
    placeholders = list(node.find_all(exp.Placeholder))
    for placeholder, value, exa_type in zip(placeholders, row, types, strict=True):
        placeholder.replace(_literal(value, exa_type))


def _literal(value: Any, exa_type: ExaType) -> exp.Expr:
    if value is None or value == "":
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)) and exa_type.kind in ("DECIMAL", "DOUBLE"):
        return exp.Literal.number(repr(value))
    if isinstance(value, (int, float, str)):
        return exp.Literal.string(str(value))
    raise DevDbError(f"a parameter value must be a string, number, boolean or null, got {value!r}", DATA_EXCEPTION)
