"""The SQL dialect devdb reads: sqlglot's Exasol, with Exasol's ordering of NULLs.

Exasol sorts NULL as the largest value (ascending: last; descending: first, unless NULLS FIRST/LAST says otherwise).
sqlglot's Exasol dialect treats NULLs as last in both directions, as DuckDB does, so `ORDER BY x DESC` put NULLs last
and paging over a column with NULLs (ORDER BY ... DESC LIMIT n) answered other rows than Exasol.
"""

from __future__ import annotations

from sqlglot.dialects.exasol import Exasol


class ExasolAsRead(Exasol):
    """Exasol as devdb reads it: NULL is the largest value in an ORDER BY."""

    NULL_ORDERING = "nulls_are_large"
