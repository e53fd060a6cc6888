"""Exasol functions whose DuckDB translation would change the result type, as DuckDB macros.

sqlglot turns ADD_DAYS(d, n) into `d + INTERVAL n DAY`; DuckDB makes that a TIMESTAMP even for a DATE (and cuts
a fractional n), while Exasol returns a DATE for a DATE and rounds n first. The macros here are overloaded by the
type of their first argument (DuckDB picks the overload at bind time), so ADD_DAYS, ADD_WEEKS, ADD_MONTHS and
ADD_YEARS keep DATE for a DATE and TIMESTAMP for a TIMESTAMP. They live in the in-memory database attached for
what is not data (systables.LIVE_DATABASE): every session's connection sees them, the database file never holds them.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from redpss.devdb.systables import LIVE_DATABASE

_SCHEMA = f'"{LIVE_DATABASE}"."main"'
_STEPS = {  # unit of ADD_*: the DuckDB interval of n units
    "DAY": "to_days({n})",
    "WEEK": "to_days(7 * {n})",
    "MONTH": "to_months({n})",
    "YEAR": "to_years({n})",
}


_MICROSECOND_TIMESTAMP = "exa_timestamp_us"
# DuckDB functions that bind a TIMESTAMP_MS argument to their TIMESTAMP_NS overload, which fails after 2262-04-11
# ("Could not convert Timestamp to higher precision"): their argument goes through _MICROSECOND_TIMESTAMP first
_NANOSECOND_PRONE = (exp.Hour, exp.Minute, exp.Second, exp.Extract)


def _macro_name(unit: str) -> str:
    return f"exa_add_{unit.lower()}s"


def setup(cursor: Any) -> None:
    """Create the macros; run at every start (after systables.setup has attached the live database)."""
    for unit, step in _STEPS.items():
        amount = step.format(n="CAST(round(n) AS INTEGER)")
        cursor.execute(
            f"CREATE OR REPLACE MACRO {_SCHEMA}.{_macro_name(unit)}"
            f"(a DATE, n) AS CAST(a + {amount} AS DATE), (a TIMESTAMP, n) AS a + {amount}"
        )
    cursor.execute(
        f"CREATE OR REPLACE MACRO {_SCHEMA}.{_MICROSECOND_TIMESTAMP}(a TIMESTAMP_MS) AS CAST(a AS TIMESTAMP), (a) AS a"
    )


def widen_timestamp_arguments(tree: exp.Expr) -> None:
    """Let HOUR, MINUTE, SECOND and EXTRACT read stored TIMESTAMP(3) values of any year (see _NANOSECOND_PRONE)."""
    for node in list(tree.find_all(*_NANOSECOND_PRONE)):
        key = "expression" if isinstance(node, exp.Extract) else "this"
        argument = node.args.get(key)
        if isinstance(argument, exp.Expr):
            call = sqlglot.parse_one(f"{_SCHEMA}.{_MICROSECOND_TIMESTAMP}(NULL)", read="duckdb")
            function = call.find(exp.Anonymous)
            if function is not None:
                function.set("expressions", [argument])
                node.set(key, call)


# SECONDS_, MINUTES_ and HOURS_BETWEEN are fractional in Exasol (62.345 seconds; 0.9667 minutes between 12:00:02
# and 12:01:00); DuckDB's date_diff counts the boundaries crossed (1 minute there), so they are the difference in
# microseconds divided by the unit. DAYS_BETWEEN (whole days between the dates) is date_diff's meaning already.
_FRACTIONAL_UNITS = {"SECOND": 1_000_000, "MINUTE": 60_000_000, "HOUR": 3_600_000_000}


def between_call(node: exp.DateDiff) -> exp.Expr | None:
    """SECONDS/MINUTES/HOURS_BETWEEN(a, b) as the fractional difference a - b in that unit; None for other units."""
    unit = node.args.get("unit")
    divisor = _FRACTIONAL_UNITS.get(unit.name.upper() if isinstance(unit, exp.Expr) else "")
    if divisor is None:
        return None
    call = sqlglot.parse_one(
        f"(epoch_us(CAST(NULL AS TIMESTAMP)) - epoch_us(CAST(NULL AS TIMESTAMP))) / {divisor}.0", read="duckdb"
    )
    later, earlier = (cast.this for cast in call.find_all(exp.Cast))
    later.replace(node.this)
    earlier.replace(node.expression)
    return call


def add_call(node: exp.DateAdd) -> exp.Expr | None:
    """ADD_DAYS/WEEKS/MONTHS/YEARS(d, n) as a call of its macro, or None for another unit (HOUR: TIMESTAMP anyway)."""
    unit = node.args.get("unit")
    name = unit.name.upper() if isinstance(unit, exp.Expr) else "DAY"
    if name not in _STEPS:
        return None
    call = sqlglot.parse_one(f"{_SCHEMA}.{_macro_name(name)}(NULL, NULL)", read="duckdb")
    function = call.find(exp.Anonymous)
    if function is None:  # pragma: no cover - the text above always parses to a call
        return None
    function.set("expressions", [node.this, node.expression])
    return call
