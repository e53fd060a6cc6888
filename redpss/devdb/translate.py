"""Exasol SQL to DuckDB SQL with sqlglot, refusing what would change meaning.

sqlglot transpiles with unsupported_level=RAISE, and on top of that this module:
- upper-cases unquoted identifiers and quotes every identifier for DuckDB, so names come back as Exasol names them;
- maps declared types to DuckDB types that keep the values (INTEGER -> DECIMAL(18,0), VARCHAR(n) -> VARCHAR) and
  hands the declared Exasol types to the shadow catalog; a CREATE TABLE's text columns refuse values longer than
  their size, as Exasol's do;
- gives Exasol meaning to SYSDATE, SYSTIMESTAMP, CURRENT_TIMESTAMP, CURRENT_USER/SCHEMA/SESSION and FROM DUAL;
- names a result column USER or CURRENT_USER as written (dialect.py), also in a derived table;
- pads a CAST to CHAR(n) with blanks to n characters, as a CHAR(n) column's value is (chars.py);
- keeps ADD_DAYS/WEEKS/MONTHS/YEARS of a DATE a DATE, and SECONDS/MINUTES/HOURS_BETWEEN fractional (functions.py);
- makes '' a NULL (Exasol has no empty string), also the empty text a function makes (TRIM('  ')), and
  `a || b` skip NULLs (as Exasol's concatenation does);
- names unaliased result expressions after their Exasol text (COUNT(*) rather than DuckDB's count_star());
- turns a call of a scalar script, SCHEMA.NAME(...), into a call of its DuckDB function (udf_calls.py).
Only statement kinds listed here are passed on; anything else is refused by name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from redpss.devdb.dialect import ExasolAsRead
from redpss.devdb.errors import DevDbError, Unsupported
from redpss.devdb.functions import (
    add_call,
    as_exasol_text,
    between_call,
    char_padded,
    second_with_fraction,
    widen_timestamp_arguments,
)
from redpss.devdb.systables import KEYWORDS, SYSTEM_SCHEMA, SYSTEM_TABLES
from redpss.devdb.tokens import ascii_columns, strip_charset_suffixes
from redpss.devdb.types import MAX_PRECISION, ExaType, from_declared
from redpss.devdb.udf_calls import rewrite_script_calls, script_columns

DEFAULT_SCHEMA = "main"


class Kind(enum.Enum):
    QUERY = "query"
    DML = "dml"
    DDL = "ddl"


@dataclass(frozen=True)
class ObjectName:
    schema: str
    name: str


@dataclass
class Translated:
    """A statement ready for DuckDB plus what the session must know to answer and to keep the catalog right."""

    kind: Kind
    sql: str
    ast: exp.Expr
    created: ObjectName | None = None  # table or view created by this statement
    declared: dict[str, ExaType] = field(default_factory=dict)  # CREATE TABLE column types, in order
    query: exp.Expr | None = None  # the defining query of CREATE VIEW / CREATE TABLE AS
    dropped: ObjectName | None = None
    dropped_schema: str | None = None
    added_columns: dict[str, ExaType] = field(default_factory=dict)  # ALTER TABLE ... ADD COLUMN
    sources: list[Source] = field(default_factory=list)  # where each result column comes from (QUERY, views)
    references: list[ObjectName] = field(default_factory=list)  # existing tables/views named (names.verify)
    written: dict[ObjectName, str] = field(default_factory=dict)  # each reference as the statement names it
    used_columns: set[str] = field(default_factory=set)  # column names the statement refers to
    defined_names: set[str] = field(default_factory=set)  # names it defines itself (aliases, new columns)
    opens_schema: str | None = None  # CREATE SCHEMA: the schema the session opens afterwards
    drop_if_exists: bool = False
    script_calls: list[tuple[str, str]] = field(default_factory=list)  # (schema, name) of scalar scripts called
    script_columns: list[tuple[int, str, str]] = field(default_factory=list)  # result columns that are such calls


@dataclass(frozen=True)
class ColumnRef:
    """A result column that is a plain column of a table or view (table None: look in every FROM table)."""

    tables: tuple[ObjectName, ...]
    column: str


@dataclass(frozen=True)
class StarRef:
    """`*` or `t.*`: the columns of these tables, in order."""

    tables: tuple[ObjectName, ...]


Source = ExaType | ColumnRef | StarRef | None


@dataclass(frozen=True)
class SessionInfo:
    """What SQL functions such as CURRENT_USER need to know about the calling session."""

    user: str
    schema: str | None
    session_id: int


RESERVED_WORDS = frozenset(KEYWORDS)


def object_name(table: exp.Table, schema: str | None) -> ObjectName:
    return ObjectName(table.db or schema or DEFAULT_SCHEMA, table.name)


def translate(sql: str, info: SessionInfo) -> Translated:
    """Translate one Exasol statement; DevDbError (or Unsupported) says why it cannot run."""
    cleaned = strip_charset_suffixes(sql)
    try:
        tree = sqlglot.parse_one(cleaned, read=ExasolAsRead, error_level=ErrorLevel.RAISE)
    except ParseError as exc:
        raise DevDbError(f"syntax error: {_first_error(exc)}") from exc
    if isinstance(tree, exp.Command):
        raise Unsupported(f"the statement {_leading_words(sql)}")
    _refuse_reserved_names(tree)
    tree = normalize_identifiers(tree, dialect="exasol")
    _qualify_system_tables(tree)
    result = _classify(tree, info)
    result.references = _references(tree, result, info)
    result.used_columns, result.defined_names = _column_names(tree)
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier):
            written = f"{table.db}.{table.name}" if table.db else table.name
            result.written.setdefault(object_name(table, info.schema), written)
    if result.declared:
        ascii_names = ascii_columns(sql)
        for name, exa_type in list(result.declared.items()):
            if name in ascii_names and exa_type.kind in ("VARCHAR", "CHAR"):
                result.declared[name] = ExaType(exa_type.kind, size=exa_type.size, charset="ASCII")
    if result.kind == Kind.QUERY:
        result.sources = projection_sources(tree, info)
        _name_expressions(tree)
    elif result.query is not None:
        result.sources = projection_sources(result.query, info)
    if result.kind == Kind.QUERY:
        result.script_columns = script_columns(tree)
    result.script_calls = rewrite_script_calls(tree, info.session_id)
    _rewrite(tree, info)
    try:
        result.sql = tree.sql(dialect="duckdb", identify=True, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise Unsupported(str(exc).strip() or "this statement", f"in: {_leading_words(sql)}") from exc
    result.ast = tree
    return result


def _qualify_system_tables(tree: exp.Expr) -> None:
    """Unqualified EXA_* system table names mean SYS.EXA_*, as in Exasol (unless a CTE of that name exists)."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.name in ctes or table.db not in ("", SYSTEM_SCHEMA):
            continue
        if table.name in SYSTEM_TABLES:
            table.set("db", exp.to_identifier(SYSTEM_SCHEMA, quoted=True))
        elif table.name.startswith("EXA_") and table.db == SYSTEM_SCHEMA:
            raise Unsupported(f"the system table {table.name}", f"devdb has {', '.join(sorted(SYSTEM_TABLES))}")


_DUCKDB_CATALOG_SCHEMAS = ("INFORMATION_SCHEMA", "PG_CATALOG")  # DuckDB's own, read by some tests as they are


def _references(tree: exp.Expr, result: Translated, info: SessionInfo) -> list[ObjectName]:
    """The existing tables and views a statement names (not CTEs, not what it creates, not DROP IF EXISTS)."""
    if result.dropped_schema is not None or result.opens_schema is not None:
        return []
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: list[ObjectName] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or (not table.db and table.name in ctes):
            continue
        if not table.db and table.name == "DUAL" and not table.this.quoted:
            continue
        if table.db.upper() in _DUCKDB_CATALOG_SCHEMAS:
            continue
        name = object_name(table, info.schema)
        if isinstance(tree, exp.Create) and name == result.created:
            continue
        if name == result.dropped and result.drop_if_exists:
            continue
        if name not in found:
            found.append(name)
    return found


def _column_names(tree: exp.Expr) -> tuple[set[str], set[str]]:
    """(column names the statement uses, names it defines: aliases, derived-table and new column names)."""
    used = {column.name for column in tree.find_all(exp.Column) if isinstance(column.this, exp.Identifier)}
    for schema in tree.find_all(exp.Schema):
        if isinstance(schema.parent, exp.Insert):
            used.update(identifier.name for identifier in schema.expressions if isinstance(identifier, exp.Identifier))
    defined = {alias.alias for alias in tree.find_all(exp.Alias)}
    for table_alias in tree.find_all(exp.TableAlias):
        defined.update(column.name for column in table_alias.columns)
    defined.update(column.name for column in tree.find_all(exp.ColumnDef))
    return used, defined


def _first_error(exc: ParseError) -> str:
    if exc.errors:
        first = exc.errors[0]
        return f"{first.get('description')} at line {first.get('line')}, column {first.get('col')}"
    return str(exc).splitlines()[0]


def _leading_words(sql: str, count: int = 3) -> str:
    return " ".join(sql.split()[:count]).upper() + " ..."


_QUERY_TYPES = (exp.Select, exp.Union, exp.Except, exp.Intersect, exp.Subquery)
_DML_TYPES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)


def _classify(tree: exp.Expr, info: SessionInfo) -> Translated:
    if isinstance(tree, _QUERY_TYPES):
        return Translated(Kind.QUERY, "", tree)
    if isinstance(tree, _DML_TYPES):
        return Translated(Kind.DML, "", tree)
    if isinstance(tree, exp.Create):
        return _classify_create(tree, info)
    if isinstance(tree, exp.Drop):
        return _classify_drop(tree, info)
    if isinstance(tree, exp.TruncateTable):
        return Translated(Kind.DDL, "", tree)
    if isinstance(tree, exp.Alter) and (tree.args.get("kind") or "").upper() == "TABLE":
        result = Translated(Kind.DDL, "", tree)
        target = tree.this
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef) and isinstance(target, exp.Table):
                result.created = object_name(target, info.schema)
                result.added_columns[action.name] = _declared_type(action)
        return result
    raise Unsupported(f"the statement {type(tree).__name__.upper()}", f"in: {_leading_words(tree.sql('exasol'))}")


def _declared_type(column: exp.ColumnDef) -> ExaType:
    kind = column.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise Unsupported(f"column {column.name} without a data type")
    return from_declared(kind)


def _classify_create(tree: exp.Create, info: SessionInfo) -> Translated:
    kind = (tree.args.get("kind") or "").upper()
    if kind == "SCHEMA":
        target = tree.this
        name = target.db or target.name if isinstance(target, exp.Table) else target.name
        return Translated(Kind.DDL, "", tree, opens_schema=name)
    if kind not in ("TABLE", "VIEW"):
        raise Unsupported(f"CREATE {kind}")
    for constraint in tree.find_all(exp.GeneratedAsIdentityColumnConstraint, exp.AutoIncrementColumnConstraint):
        raise Unsupported("IDENTITY columns", f"found {constraint.sql('exasol')}: give the key explicitly")
    target = tree.this
    table = target.this if isinstance(target, exp.Schema) else target
    if not isinstance(table, exp.Table):
        raise Unsupported(f"CREATE {kind} of {target.sql('exasol')}")
    result = Translated(Kind.DDL, "", tree, created=object_name(table, info.schema))
    if isinstance(target, exp.Schema) and kind == "TABLE":
        for column in target.expressions:
            if isinstance(column, exp.ColumnDef):
                result.declared[column.name] = _declared_type(column)
    query = tree.expression
    if isinstance(query, _QUERY_TYPES):
        result.query = query
    if isinstance(target, exp.Schema) and kind == "VIEW":
        raise Unsupported("CREATE VIEW with a column list", "alias the columns in the view's SELECT instead")
    return result


def _classify_drop(tree: exp.Drop, info: SessionInfo) -> Translated:
    kind = (tree.args.get("kind") or "").upper()
    result = Translated(Kind.DDL, "", tree)
    tables = tree.args.get("tables") or []
    if len(tables) != 1 or not isinstance(tables[0], exp.Table):
        raise Unsupported(f"DROP {kind} of several objects")
    result.drop_if_exists = bool(tree.args.get("exists"))
    if kind == "SCHEMA":
        result.dropped_schema = tables[0].db or tables[0].name
    elif kind in ("TABLE", "VIEW"):
        result.dropped = object_name(tables[0], info.schema)
    else:
        raise Unsupported(f"DROP {kind}")
    return result


def literal_type(text: str) -> ExaType:
    """The type Exasol gives a numeric literal: the smallest DECIMAL holding its value exactly, else DOUBLE.

    `1.0` is DECIMAL(1,0), `0.50` DECIMAL(1,1), `123` DECIMAL(3,0); a literal with an exponent (`1E3`) or more
    than 36 significant digits is DOUBLE. DuckDB would keep the written scale (DECIMAL(2,1) for `1.0`).
    """
    if "e" in text.lower():
        return ExaType("DOUBLE")
    whole, _, fraction = text.partition(".")
    whole = whole.lstrip("0")
    fraction = fraction.rstrip("0")
    precision = max(1, len(whole) + len(fraction))
    if precision > MAX_PRECISION:
        return ExaType("DOUBLE")
    return ExaType("DECIMAL", precision=precision, scale=len(fraction))


def _type_literal_projections(select: exp.Select) -> None:
    """Give numeric literals in a select list their Exasol type (see literal_type)."""
    for projection in select.expressions:
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        literal = inner.this if isinstance(inner, exp.Neg) else inner
        if isinstance(literal, exp.Literal) and not literal.is_string:
            target = literal_type(literal.this)
            cast = exp.Cast(this=inner.copy(), to=exp.DataType.build(target.duckdb_type(), dialect="duckdb"))
            if projection is inner:
                projection.replace(cast)
            else:
                inner.replace(cast)


def _check_length(column_def: exp.ColumnDef, declared: ExaType) -> None:
    """Refuse a text longer than the column's declared size, as Exasol does: DuckDB's VARCHAR has no size, so
    CREATE TABLE gets `CHECK (length(column) <= n)` (characters, not bytes), whose failure errors.py words as
    Exasol's right truncation."""
    if declared.kind not in ("VARCHAR", "CHAR") or not declared.size:
        return
    # quoted: an unquoted NOW or CURRENT_DATE would become the function in the rewrites that follow
    length = exp.Length(this=exp.column(exp.to_identifier(column_def.name, quoted=True)))
    check = exp.CheckColumnConstraint(this=exp.LTE(this=length, expression=exp.Literal.number(declared.size)))
    constraints = column_def.args.get("constraints") or []
    column_def.set("constraints", [*constraints, exp.ColumnConstraint(kind=check)])


def _rewrite(tree: exp.Expr, info: SessionInfo) -> None:
    """Apply the Exasol meanings listed in the module docstring, in place."""
    for select in list(tree.find_all(exp.Select)):
        _drop_dual(select)
        _type_literal_projections(select)
    for column_def in tree.find_all(exp.ColumnDef):
        kind = column_def.args.get("kind")
        if isinstance(kind, exp.DataType):
            declared = from_declared(kind)
            kind.replace(exp.DataType.build(declared.duckdb_type(), dialect="duckdb"))
            if isinstance(tree, exp.Create):  # DuckDB cannot add a column with a CHECK (ALTER TABLE ADD)
                _check_length(column_def, declared)
    for cast in list(tree.find_all(exp.Cast)):
        _cast_to_duckdb_type(cast)
    for assignment_owner in (*tree.find_all(exp.Update), *tree.find_all(exp.When)):
        _unqualify_set_targets(assignment_owner)
    for division in list(tree.find_all(exp.Div)):
        _fail_on_zero_divisor(division)
    for user in list(tree.find_all(exp.CurrentUser)):  # also a derived table's column is USER or CURRENT_USER
        _keep_projection_name(user)
    for node in list(tree.walk()):
        replacement = _replacement(node, info)
        if replacement is not None and node is not tree:
            node.replace(replacement)
    for text in list(tree.find_all(*_TEXT_FUNCTIONS)):  # after the replacements: `a || b` is a Concat by now
        _empty_as_null(text)
    _escape_likes(tree)
    _timestamps_as_exasol_text(tree)
    widen_timestamp_arguments(tree)


def _cast_to_duckdb_type(cast: exp.Cast) -> None:
    """A CAST to the DuckDB type that keeps the declared type's values. A CAST to CHAR(n) is blank-padded to n
    characters, as a CHAR(n) column's value is (chars.py), and named while it still says CHAR(n); the cast moves
    into the padding call, so the rewrites that follow still find it."""
    target = cast.args.get("to")
    if not isinstance(target, exp.DataType):
        return
    declared = from_declared(target)
    if declared.kind == "CHAR":
        _keep_projection_name(cast)
    target.replace(exp.DataType.build(declared.duckdb_type(), dialect="duckdb"))
    if declared.kind == "CHAR":
        placeholder = exp.Null()
        cast.replace(placeholder)
        placeholder.replace(char_padded(cast, declared.size))


def _timestamps_as_exasol_text(tree: exp.Expr) -> None:
    """The values that CAST to CHAR/VARCHAR, TO_CHAR without a format and `||` make text, made text as Exasol does
    (functions.as_exasol_text); a result column keeps the name it had."""
    for node in list(tree.find_all(exp.Cast, exp.ToChar, exp.Concat)):
        if isinstance(node, exp.Cast) and not _is_text_type(node.args.get("to")):
            continue
        if isinstance(node, exp.ToChar) and node.args.get("format") is not None:
            continue
        _keep_projection_name(node)
        values = node.expressions if isinstance(node, exp.Concat) else [node.this]
        for value in list(values):
            if isinstance(value, exp.Expr):
                as_exasol_text(value)


def _is_text_type(target: object) -> bool:
    return isinstance(target, exp.DataType) and target.is_type(*exp.DataType.TEXT_TYPES)


def _keep_projection_name(node: exp.Expr) -> None:
    """Alias a projection by its text before it is rewritten further, so its column is named as before. The node
    itself moves into the alias (a copy there would leave the rewrite to the detached original)."""
    if isinstance(node.parent, exp.Select) and node.arg_key == "expressions":
        alias = exp.Alias(alias=exp.to_identifier(node.sql(dialect=ExasolAsRead), quoted=True))
        node.replace(alias)
        alias.set("this", node)


# Functions whose text result may be empty (TRIM('  '), SUBSTR('abc', 5), REPLACE('x', 'x', ''), REGEXP_SUBSTR
# without a match): in Exasol that is NULL, as a literal '' is. LTRIM/RTRIM are Trim, LPAD/RPAD Pad, INSERT Stuff,
# REGEXP_SUBSTR RegexpExtract, `||` a Concat.
_TEXT_FUNCTIONS = (
    exp.Concat,
    exp.Initcap,
    exp.Left,
    exp.Lower,
    exp.Overlay,
    exp.Pad,
    exp.RegexpExtract,
    exp.RegexpReplace,
    exp.Repeat,
    exp.Replace,
    exp.Reverse,
    exp.Right,
    exp.Space,
    exp.Stuff,
    exp.Substring,
    exp.Translate,
    exp.Trim,
    exp.Upper,
)
# Functions whose other arguments than the first mean something else as NULL than as '' in Exasol (REPLACE(a, 'x',
# NULL) deletes the matches, DuckDB's gives NULL): an empty text made there stays '', as the literal does
_TEXT_ARGUMENTS = (exp.Replace, exp.RegexpReplace, exp.Translate, exp.Pad, exp.Stuff, exp.Overlay)


def _empty_as_null(text: exp.Expr) -> None:
    """Wrap `text` in NULLIF(text, ''), in place; the node itself moves into the wrapper, so text functions inside
    it, found in the same walk, are wrapped too. A result column keeps its name (the Exasol text, as a query's own
    columns are named), also in a derived table or a CREATE TABLE AS."""
    parent = text.parent
    if parent is None or (isinstance(parent, _TEXT_ARGUMENTS) and text.arg_key != "this"):
        return
    wrapper = exp.Nullif(expression=exp.Literal.string(""))
    named = isinstance(parent, exp.Select) and text.arg_key == "expressions"
    name = text.sql(dialect=ExasolAsRead) if named else ""
    text.replace(wrapper)
    wrapper.set("this", text)
    if named:
        wrapper.replace(exp.alias_(wrapper.copy(), exp.to_identifier(name, quoted=True)))


def _fail_on_zero_divisor(division: exp.Div) -> None:
    """Exasol fails a division by zero; DuckDB's `/` would return infinity (or NULL) instead."""
    divisor = division.expression
    guard = exp.Case(
        ifs=[exp.If(this=exp.EQ(this=divisor.copy(), expression=exp.Literal.number(0)), true=_DIVISION_BY_ZERO.copy())],
        default=divisor,
    )
    division.set("expression", guard)


_DIVISION_BY_ZERO = exp.Anonymous(this="error", expressions=[exp.Literal.string("Division by zero")])


def _drop_dual(select: exp.Select) -> None:
    source = select.args.get("from_") or select.args.get("from")
    if source is None or select.args.get("joins"):
        return
    table = source.this
    if isinstance(table, exp.Table) and not table.db and table.name.upper() == "DUAL" and not table.this.quoted:
        select.set("from_", None)
        select.set("from", None)


_NOW = "CAST(date_trunc('millisecond', CAST(get_current_timestamp() AS TIMESTAMP)) AS TIMESTAMP_MS)"  # TIMESTAMP(3)
_TODAY = "CAST(CAST(get_current_timestamp() AS TIMESTAMP) AS DATE)"


def _replacement(node: exp.Expr, info: SessionInfo) -> exp.Expr | None:  # noqa: PLR0911 - one per rewrite
    if isinstance(node, (exp.Systimestamp, exp.CurrentTimestamp)):
        return sqlglot.parse_one(_NOW, read="duckdb")
    if isinstance(node, exp.CurrentDate):
        return sqlglot.parse_one(_TODAY, read="duckdb")
    if isinstance(node, exp.CurrentUser):
        return exp.Literal.string(info.user)
    if isinstance(node, exp.CurrentSchema):
        return exp.Literal.string(info.schema) if info.schema else exp.Null()
    if (
        isinstance(node, exp.Column)
        and isinstance(node.this, exp.Identifier)
        and not node.table
        and not node.this.quoted
        and not _is_set_target(node)
    ):
        name = node.name.upper()
        if name in {"SYSDATE", "CURRENT_DATE"}:
            return sqlglot.parse_one(_TODAY, read="duckdb")
        if name in ("LOCALTIMESTAMP", "SYSTIMESTAMP", "CURRENT_TIMESTAMP", "NOW"):
            return sqlglot.parse_one(_NOW, read="duckdb")
        if name == "CURRENT_SESSION":
            return exp.Literal.number(info.session_id)
    if isinstance(node, (exp.DateAdd, exp.DateDiff, exp.Extract, exp.Greatest, exp.Least)):
        return _function_meaning(node)
    if isinstance(node, exp.DPipe):
        return exp.Concat(expressions=[node.this, node.expression], safe=True, coalesce=True)
    if isinstance(node, exp.Literal) and node.is_string and node.this == "" and _empty_means_null(node):
        return exp.Null()
    return None


def _function_meaning(node: exp.Expr) -> exp.Expr | None:
    """Exasol's meaning of a function or operator whose DuckDB one differs (None: kept, or changed in place)."""
    if isinstance(node, exp.DateAdd):
        return add_call(node)
    if isinstance(node, exp.DateDiff):
        return between_call(node)
    if isinstance(node, exp.Extract) and node.this.name.upper() == "SECOND":
        return second_with_fraction(node.expression)  # EXTRACT(SECOND ...) keeps the milliseconds in Exasol
    if isinstance(node, (exp.Greatest, exp.Least)):
        node.set("ignore_nulls", False)  # Exasol: NULL when any argument is NULL (DuckDB skips NULLs)
    return None


def _escape_likes(tree: exp.Expr) -> None:
    r"""Exasol's DEFAULT_LIKE_ESCAPE_CHARACTER is a backslash (EXA_PARAMETERS says so): 'AB\_%' matches 'AB_1'.
    After the other rewrites, and the LIKE itself moved under its ESCAPE (a copy would leave them on the original)."""
    for like in list(tree.find_all(exp.Like)):
        if isinstance(like.parent, exp.Escape):
            continue
        escaped = exp.Escape(expression=exp.Literal.string("\\"))
        like.replace(escaped)
        escaped.set("this", like)


def _is_set_target(column: exp.Column) -> bool:
    """The column an UPDATE (or MERGE's WHEN MATCHED) assigns to: a column, even when named like SYSDATE or NOW."""
    assignment = column.parent
    return (
        isinstance(assignment, exp.EQ)
        and assignment.this is column
        and isinstance(assignment.parent, exp.Update | exp.When)
    )


def _empty_means_null(literal: exp.Literal) -> bool:
    """'' is NULL in Exasol; kept as '' only where a function needs a string argument (REPLACE(a, 'x', ''))."""
    parent = literal.parent
    if isinstance(parent, (exp.Cast, exp.Coalesce, exp.If, exp.Case, exp.Concat, exp.Nullif)):
        return True
    return not isinstance(parent, exp.Func)


def _unqualify_set_targets(owner: exp.Expr) -> None:
    """Exasol allows `UPDATE t SET t.col = ...`; DuckDB wants the bare column name. `SET col = DEFAULT` (the
    column's default) is the keyword, not a column named DEFAULT (which was "object DEFAULT not found")."""
    if isinstance(owner, exp.When):
        then = owner.args.get("then")
        assignments = then.expressions if isinstance(then, exp.Update) else []
    else:
        assignments = owner.expressions
    for assignment in assignments:
        if not isinstance(assignment, exp.EQ):
            continue
        if isinstance(assignment.this, exp.Column) and assignment.this.table:
            assignment.this.replace(exp.column(assignment.this.this.copy()))
        value = assignment.expression
        bare = isinstance(value, exp.Column) and not value.table and not value.this.quoted
        if bare and value.name.upper() == "DEFAULT":
            value.replace(exp.var("DEFAULT"))


_SPECIAL_WORDS = (
    "SYSDATE",
    "CURRENT_DATE",
    "LOCALTIMESTAMP",
    "SYSTIMESTAMP",
    "CURRENT_TIMESTAMP",
    "NOW",
    "CURRENT_SESSION",
)


# Reserved words that SQL uses as values without quotes (functions without parentheses, pseudo-columns): a bare
# column of this name is the word's meaning, not a name.
_BARE_VALUE_WORDS = frozenset(
    {
        *_SPECIAL_WORDS,
        "CURRENT_USER",
        "CURRENT_SCHEMA",
        "CURRENT_STATEMENT",
        "CURRENT_CLUSTER",
        "CURRENT_CLUSTER_UID",
        "USER",
        "DBTIMEZONE",
        "SESSIONTIMEZONE",
        "LEVEL",
        "ROWNUM",
        "ROWID",
        "CONNECT_BY_ISCYCLE",
        "CONNECT_BY_ISLEAF",
        "LOCALTIME",
        "DEFAULT",  # UPDATE t SET a = DEFAULT
    }
)


def _refuse_reserved_names(tree: exp.Expr) -> None:
    """Exasol refuses a reserved word as an unquoted name (`CREATE TABLE t (STATE ...)`, `SELECT x AS VALUE`): a
    syntax error there, which devdb answered with success, so SQL written against devdb failed on Exasol."""
    for identifier in tree.find_all(exp.Identifier):
        word = identifier.this.upper()
        if identifier.quoted or word not in RESERVED_WORDS:
            continue
        column = identifier.parent
        if isinstance(column, exp.Column) and not column.table and word in _BARE_VALUE_WORDS:
            continue
        raise DevDbError(
            f'syntax error, unexpected {word}_: {word} is a reserved word; as a name it must be quoted: "{word}"'
        )


def _leftmost_select(tree: exp.Expr) -> exp.Select | None:
    select = tree
    while isinstance(select, (exp.Union, exp.Except, exp.Intersect, exp.Subquery)):
        select = select.this
    return select if isinstance(select, exp.Select) else None


def _name_expressions(tree: exp.Expr) -> None:
    select = _leftmost_select(tree)
    if select is None:
        return
    names: list[exp.Expr] = []
    for projection in select.expressions:
        special = (
            isinstance(projection, exp.Column) and not projection.table and projection.name.upper() in _SPECIAL_WORDS
        )
        if isinstance(projection, (exp.Column, exp.Star, exp.Alias)) and not special:
            names.append(projection)
            continue
        text = projection.sql(dialect=ExasolAsRead)  # as written: USER stays USER, DESC gains no NULLS FIRST
        if isinstance(projection, (exp.Systimestamp, exp.CurrentTimestamp, exp.CurrentDate)) and text.endswith("()"):
            text = text[:-2]
        names.append(exp.alias_(projection.copy(), exp.to_identifier(text, quoted=True)))
    select.set("expressions", names)


def projection_sources(tree: exp.Expr, info: SessionInfo) -> list[Source]:
    """For each result column of a query, what the shadow catalog can say about its type (see Source)."""
    select = _leftmost_select(tree)
    if select is None:
        return []
    aliases: dict[str, ObjectName] = {}
    ordered: list[ObjectName] = []
    source = select.args.get("from_") or select.args.get("from")
    for item in [source.this] if source is not None else []:
        _collect_table(item, info, aliases, ordered)
    for join in select.args.get("joins") or []:
        _collect_table(join.this, info, aliases, ordered)
    result: list[Source] = []
    for projection in select.expressions:
        inner = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(inner, exp.Star):
            result.append(StarRef(tuple(ordered)))
        elif isinstance(inner, exp.Column) and isinstance(inner.this, exp.Star):
            table = aliases.get(inner.table)
            result.append(StarRef((table,)) if table else None)
        elif isinstance(inner, exp.Column):
            if inner.table:
                table = aliases.get(inner.table)
                result.append(ColumnRef((table,), inner.name) if table else None)
            else:
                result.append(ColumnRef(tuple(ordered), inner.name))
        elif isinstance(inner, exp.Cast) and isinstance(inner.args.get("to"), exp.DataType):
            try:
                result.append(from_declared(inner.args["to"]))
            except DevDbError:
                result.append(None)
        else:
            result.append(None)
    return result


def _collect_table(
    item: exp.Expr, info: SessionInfo, aliases: dict[str, ObjectName], ordered: list[ObjectName]
) -> None:
    if isinstance(item, exp.Table) and item.name:
        name = object_name(item, info.schema)
        aliases[item.alias_or_name] = name
        ordered.append(name)
