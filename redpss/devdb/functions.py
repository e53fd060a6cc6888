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


# ADD_HOURS and ADD_MINUTES: a DATE becomes a TIMESTAMP (as DuckDB's DATE + INTERVAL does), n is rounded first as for
# the day units (sqlglot's `+ INTERVAL 1.5 MINUTE` cut it to 1)
_TIME_STEPS = {"HOUR": "to_hours({n})", "MINUTE": "to_minutes({n})"}
_SECOND_WITH_FRACTION = "exa_second"


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
    for unit, step in _TIME_STEPS.items():
        amount = step.format(n="CAST(round(n) AS BIGINT)")
        cursor.execute(
            f"CREATE OR REPLACE MACRO {_SCHEMA}.{_macro_name(unit)}"
            f"(a DATE, n) AS CAST(a AS TIMESTAMP) + {amount}, (a TIMESTAMP, n) AS a + {amount}"
        )
    cursor.execute(
        f"CREATE OR REPLACE MACRO {_SCHEMA}.{_MICROSECOND_TIMESTAMP}(a TIMESTAMP_MS) AS CAST(a AS TIMESTAMP), (a) AS a"
    )
    cursor.execute(  # the seconds with their milliseconds, DECIMAL(5,3) (59.123), as Exasol's EXTRACT(SECOND ...)
        f"CREATE OR REPLACE MACRO {_SCHEMA}.{_SECOND_WITH_FRACTION}(a) AS "
        f"CAST(millisecond({_SCHEMA}.{_MICROSECOND_TIMESTAMP}(a)) / 1000 AS DECIMAL(5,3))"
    )
    cursor.execute(
        f"CREATE OR REPLACE MACRO {_SCHEMA}.{_TEXT}(a DATE) AS CAST(a AS VARCHAR), "
        f"(a TIMESTAMP) AS strftime(a, '{_TIMESTAMP_TEXT}'), (a) AS CAST(a AS VARCHAR)"
    )
    cursor.execute(
        f"CREATE OR REPLACE MACRO {_SCHEMA}.{_CHAR}(a, n) AS CASE WHEN length(a) < n THEN rpad(a, n, ' ') ELSE a END"
    )
    for name, body in _CALENDAR_BETWEEN.items():
        cursor.execute(f"CREATE OR REPLACE MACRO {_SCHEMA}.{name}_dates(a, b) AS {body}")
        dates = f"{_SCHEMA}.{name}_dates(CAST(a AS DATE), CAST(b AS DATE))"
        cursor.execute(f"CREATE OR REPLACE MACRO {_SCHEMA}.{name}(a, b) AS {dates}")


# A TIMESTAMP made text (CAST to CHAR/VARCHAR, TO_CHAR without a format, `||`) is written in Exasol's default
# NLS_TIMESTAMP_FORMAT, YYYY-MM-DD HH24:MI:SS.FF6 (six digits always, as rows are fetched), where DuckDB's cast drops
# a zero fraction and trailing zeros ('... 03:04:05', '... 03:04:05.12'). The macro is overloaded so that a DATE stays
# YYYY-MM-DD (NLS_DATE_FORMAT) and every other type is cast as before.
_TEXT = "exa_text"
_TIMESTAMP_TEXT = "%Y-%m-%d %H:%M:%S.%f"
_AS_GIVEN = (exp.Literal, exp.Null, exp.Placeholder, exp.Parameter)  # nothing to convert, or no type to choose by


def as_exasol_text(value: exp.Expr) -> None:
    """Replace `value`, in place, by the call that makes it text as Exasol does; literals and parameters stay."""
    if isinstance(value, _AS_GIVEN):
        return
    placeholder = exp.Null()
    value.replace(placeholder)
    placeholder.replace(macro_call(_TEXT, value))


# A CHAR(n) value is blank-padded to n characters (chars.py). A longer value is left whole rather than cut (rpad
# alone would cut it): in a column the CHECK refuses it as too long; how Exasol casts a longer text to CHAR(n) is
# not documented, so the padding decides nothing about it.
_CHAR = "exa_char"


def char_padded(value: exp.Expr, size: int) -> exp.Expr:
    """`value` padded with spaces to `size` characters, as a CHAR(size) holds it."""
    return macro_call(_CHAR, value, exp.Literal.number(size))


def macro_call(name: str, *arguments: exp.Expr) -> exp.Expr:
    """A call of one of the macros here (in the live database's schema) with `arguments`."""
    call = sqlglot.parse_one(f"{_SCHEMA}.{name}()", read="duckdb")
    function = call.find(exp.Anonymous)
    assert function is not None  # the text above always parses to a call
    function.set("expressions", list(arguments))
    return call


def widen_timestamp_arguments(tree: exp.Expr) -> None:
    """Let HOUR, MINUTE, SECOND and EXTRACT read stored TIMESTAMP(3) values of any year (see _NANOSECOND_PRONE)."""
    for node in list(tree.find_all(*_NANOSECOND_PRONE)):
        key = "expression" if isinstance(node, exp.Extract) else "this"
        argument = node.args.get(key)
        if isinstance(argument, exp.Expr):
            node.set(key, macro_call(_MICROSECOND_TIMESTAMP, argument))


# SECONDS_, MINUTES_ and HOURS_BETWEEN are fractional in Exasol (62.345 seconds; 0.9667 minutes between 12:00:02
# and 12:01:00); DuckDB's date_diff counts the boundaries crossed (1 minute there), so they are the difference in
# microseconds divided by the unit. DAYS_BETWEEN (whole days between the dates) is date_diff's meaning already.
_FRACTIONAL_UNITS = {"SECOND": 1_000_000, "MINUTE": 60_000_000, "HOUR": 3_600_000_000}


# MONTHS_BETWEEN and YEARS_BETWEEN read only the dates (a timestamp's time is ignored) and are DOUBLE. MONTHS_BETWEEN
# as Exasol documents it: whole months by year and month, plus (day of a - day of b) / 31 unless the days are equal or
# both the last of their month (MONTHS_BETWEEN(DATE '2000-01-01', DATE '1999-12-15') = 0.548387096774194). For
# YEARS_BETWEEN Exasol documents only that equal months and days give a whole number, not how it counts the fraction
# otherwise: devdb gives the whole number and refuses the rest, naming MONTHS_BETWEEN / 12, rather than guess.
_MONTHS = "(year(a) - year(b)) * 12 + month(a) - month(b)"
YEARS_BETWEEN_REFUSED = (
    "devdb does not support YEARS_BETWEEN of dates on different days of the year (Exasol does not document how it "
    "counts the fraction; MONTHS_BETWEEN(a, b) / 12 is the documented count of months)"
)
_CALENDAR_BETWEEN = {  # macro name -> its body over two DATEs a and b
    "exa_months_between": (
        f"CASE WHEN day(a) = day(b) OR (a = last_day(a) AND b = last_day(b)) THEN CAST({_MONTHS} AS DOUBLE) "
        f"ELSE {_MONTHS} + (day(a) - day(b)) / 31.0 END"
    ),
    "exa_years_between": (
        "CASE WHEN a IS NULL OR b IS NULL THEN NULL "
        "WHEN month(a) = month(b) AND day(a) = day(b) THEN CAST(year(a) - year(b) AS DOUBLE) "
        f"ELSE error('{YEARS_BETWEEN_REFUSED}') END"
    ),
}


def between_call(node: exp.DateDiff) -> exp.Expr | None:
    """SECONDS/MINUTES/HOURS_BETWEEN(a, b) as the fractional difference a - b in that unit, MONTHS_ and
    YEARS_BETWEEN as calls of their macros; None for other units (DAYS_BETWEEN)."""
    unit = node.args.get("unit")
    unit_name = unit.name.upper() if isinstance(unit, exp.Expr) else ""
    if unit_name in ("MONTH", "YEAR"):
        return macro_call(f"exa_{unit_name.lower()}s_between", node.this, node.expression)
    divisor = _FRACTIONAL_UNITS.get(unit_name)
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
    """ADD_DAYS/WEEKS/MONTHS/YEARS/HOURS/MINUTES(d, n) as a call of its macro, or None for another unit (SECOND:
    Exasol keeps its fraction, milliseconds)."""
    unit = node.args.get("unit")
    name = unit.name.upper() if isinstance(unit, exp.Expr) else "DAY"
    if name not in _STEPS and name not in _TIME_STEPS:
        return None
    return macro_call(_macro_name(name), node.this, node.expression)


def second_with_fraction(value: exp.Expr) -> exp.Expr:
    """EXTRACT(SECOND FROM value) as Exasol answers it: with the milliseconds (DuckDB's are whole seconds)."""
    return macro_call(_SECOND_WITH_FRACTION, value)
