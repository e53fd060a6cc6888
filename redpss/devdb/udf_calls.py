"""Calls of scalar scripts in a statement: `REDSYS.PSS_LOG(a, b, c)` becomes a call of a DuckDB Python function.

sqlglot parses a schema-qualified call as Dot(Identifier schema, Anonymous name); no built-in function of Exasol is
written that way, so each such call names a script. translate.py hands the tree here before it rewrites the rest;
the call is replaced by a call of the DuckDB function that this session registers for the script (udf.py). The
DuckDB name carries the session's id, so the function it calls can belong to that session (its statement, its
cleanup) while DuckDB's catalog is shared by every session.
"""

from __future__ import annotations

from sqlglot import exp


def duckdb_function_name(session_id: int, schema: str, name: str) -> str:
    """The DuckDB function a session calls for script schema.name (lower case: DuckDB function names fold)."""
    return f"exa_udf_{session_id}_{len(schema)}_{schema}_{name}".lower()


def _script_of(node: exp.Expr) -> tuple[str, str] | None:
    """(schema, name) when the node is a script call, else None."""
    if not isinstance(node, exp.Dot):
        return None
    schema, call = node.this, node.expression
    if not isinstance(schema, exp.Identifier) or not isinstance(call, exp.Anonymous):
        return None
    function = call.this
    # an unquoted name arrives as a plain string, as written; a quoted one as an Identifier, kept exactly
    return schema.name, function.name if isinstance(function, exp.Identifier) else str(function).upper()


def rewrite_script_calls(tree: exp.Expr, session_id: int) -> list[tuple[str, str]]:
    """Replace each schema.name(...) call by its DuckDB function; the (schema, name) of the scripts called."""
    called: list[tuple[str, str]] = []
    for dot in list(tree.find_all(exp.Dot)):
        script = _script_of(dot)
        if script is None or dot is tree:
            continue
        if script not in called:
            called.append(script)
        arguments = dot.expression.expressions
        dot.replace(exp.Anonymous(this=duckdb_function_name(session_id, *script), expressions=arguments))
    return called


def script_columns(tree: exp.Expr) -> list[tuple[int, str, str]]:
    """(position, schema, name) of the result columns of a query that are a script call, plain or aliased: their
    type is the script's RETURNS type (the session fills it in once it has looked the script up)."""
    select = tree
    while isinstance(select, (exp.Union, exp.Except, exp.Intersect, exp.Subquery)):
        select = select.this
    if not isinstance(select, exp.Select):
        return []
    found = []
    for position, projection in enumerate(select.expressions):
        script = _script_of(projection.this if isinstance(projection, exp.Alias) else projection)
        if script is not None:
            found.append((position, *script))
    return found
