"""The SQL dialect devdb reads: sqlglot's Exasol, with Exasol's ordering of NULLs and USER kept apart from
CURRENT_USER.

Exasol sorts NULL as the largest value (ascending: last; descending: first, unless NULLS FIRST/LAST says otherwise).
sqlglot's Exasol dialect treats NULLs as last in both directions, as DuckDB does, so `ORDER BY x DESC` put NULLs last
and paging over a column with NULLs (ORDER BY ... DESC LIMIT n) answered other rows than Exasol.

USER and CURRENT_USER are the same function in Exasol, but a result column is named after the word written
(`SELECT USER, CURRENT_USER` has the columns USER and CURRENT_USER). sqlglot reads both as CURRENT_USER, so that
query had two columns of one name; here a USER is marked (CurrentUser with this=USER) and written back as USER.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.exasol import Exasol
from sqlglot.generators.exasol import ExasolGenerator
from sqlglot.parsers.exasol import ExasolParser
from sqlglot.tokenizer_core import TokenType

_USER = "USER"


def _user(parser: ExasolParser) -> exp.Expr:
    """USER or USER(): the current user, remembered as written."""
    parser._match_pair(TokenType.L_PAREN, TokenType.R_PAREN)
    return parser.expression(exp.CurrentUser(this=exp.var(_USER)))


def _current_user_sql(_generator: Any, node: exp.CurrentUser) -> str:
    marker = node.this
    return _USER if isinstance(marker, exp.Var) and marker.name == _USER else "CURRENT_USER"


class ExasolAsRead(Exasol):
    """Exasol as devdb reads it: NULL is the largest value in an ORDER BY; USER is written back as USER."""

    NULL_ORDERING = "nulls_are_large"

    class Parser(ExasolParser):
        NO_PAREN_FUNCTION_PARSERS = {**ExasolParser.NO_PAREN_FUNCTION_PARSERS, _USER: _user}

    class Generator(ExasolGenerator):
        TRANSFORMS = {**ExasolGenerator.TRANSFORMS, exp.CurrentUser: _current_user_sql}
