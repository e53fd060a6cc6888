"""Exasol data types as devdb declares, stores and returns them.

DuckDB keeps the numeric, date and boolean types exactly as Exasol declares them (INTEGER becomes DECIMAL(18,0),
as in Exasol), so those need no bookkeeping. DuckDB drops what Exasol reports for text (VARCHAR size, CHAR,
character set): the shadow catalog (catalog.py) keeps the declared text and this module parses and renders it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from redpss.devdb.errors import Unsupported

MAX_VARCHAR = 2_000_000
MAX_PRECISION = 36
MAX_JSON_INTEGER_PRECISION = 18  # wider DECIMALs travel as strings: JSON readers may parse numbers as doubles
_SCALE_TESTS = 4  # scales tried by modulo before trimming the text of a wider scale
TIMESTAMP_SIZE = 16  # Exasol 8 (TIMESTAMP is TIMESTAMP(3)); Exasol 7 reported 8
# Exasol's TIMESTAMP is TIMESTAMP(3): DuckDB's millisecond timestamp stores it, so every way a value enters a column
# (INSERT, UPDATE, IMPORT, CREATE TABLE AS, a CAST or literal) drops what is below a millisecond, by DuckDB's rounding
DUCK_TIMESTAMP = "TIMESTAMP_MS"
_DUCK_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_TEXT_FORM = re.compile(
    r"^(VARCHAR|CHAR)\((\d+)\) (UTF8|ASCII)$|^DECIMAL\((\d+),(\d+)\)$|^(DOUBLE|DATE|TIMESTAMP|BOOLEAN)$"
)


@dataclass(frozen=True)
class ExaType:
    """One Exasol column type: kind is DECIMAL, DOUBLE, VARCHAR, CHAR, DATE, TIMESTAMP or BOOLEAN."""

    kind: str
    precision: int = 0
    scale: int = 0
    size: int = 0
    charset: str = "UTF8"

    def text(self) -> str:
        """The declaration as Exasol writes it; also the form stored in the shadow catalog."""
        if self.kind in ("VARCHAR", "CHAR"):
            return f"{self.kind}({self.size}) {self.charset}"
        if self.kind == "DECIMAL":
            return f"DECIMAL({self.precision},{self.scale})"
        return self.kind

    @classmethod
    def from_text(cls, text: str) -> ExaType:
        match = _TEXT_FORM.match(text)
        if match is None:
            raise ValueError(f"not a stored devdb type: {text!r}")
        if match.group(1):
            return cls(match.group(1), size=int(match.group(2)), charset=match.group(3))
        if match.group(4):
            return cls("DECIMAL", precision=int(match.group(4)), scale=int(match.group(5)))
        return cls(match.group(6))

    def data_type(self) -> dict[str, Any]:
        """The `dataType` object of a result column, as Exasol sends it."""
        if self.kind == "DECIMAL":
            return {"type": "DECIMAL", "precision": self.precision, "scale": self.scale}
        if self.kind in ("VARCHAR", "CHAR"):
            return {"type": self.kind, "size": self.size, "characterSet": self.charset}
        if self.kind == "DATE":
            return {"type": "DATE", "size": 4}
        if self.kind == "TIMESTAMP":
            return {"type": "TIMESTAMP", "size": TIMESTAMP_SIZE, "withLocalTimeZone": False}
        if self.kind == "DOUBLE":
            return {"type": "DOUBLE"}
        return {"type": self.kind}

    def duckdb_type(self) -> str:
        """The DuckDB column type that stores values of this type without changing them."""
        if self.kind in ("VARCHAR", "CHAR"):
            return "VARCHAR"
        if self.kind == "DECIMAL":
            return f"DECIMAL({self.precision},{self.scale})"
        if self.kind == "TIMESTAMP":
            return DUCK_TIMESTAMP
        return self.kind

    def decimal_text(self, column: str) -> str:
        """DuckDB SQL for a DECIMAL value as Exasol writes it: no trailing fractional zeros, a leading 0 before '.'.

        DuckDB prints DECIMAL(10,5) 0.7 as '0.70000' and DECIMAL(5,5) 0.5 as '.50000'; Exasol sends '0.7' and
        '0.5' (and '1' for 1.00000). Up to precision 18 (64-bit decimals) the value is printed at the smallest
        scale that holds it, found by exact modulo tests: faster than trimming text, and one integer digit more
        keeps the leading zero. Wider decimals, where modulo is slow, trim the text instead.
        """
        text = f"CAST({column} AS VARCHAR)"
        if not self.scale:
            return text
        if self.precision <= MAX_JSON_INTEGER_PRECISION:
            return self._decimal_text_by_scale(column)
        trimmed = f"rtrim(rtrim({text}, '0'), '.')"
        if self.precision > self.scale:
            return trimmed
        return f"CASE WHEN {column} = 0 THEN '0' ELSE regexp_replace({trimmed}, '^(-?)[.]', '\\10.') END"

    def _decimal_text_by_scale(self, column: str) -> str:
        integer_digits = self.precision - self.scale
        branches = []
        for scale in range(min(self.scale, _SCALE_TESTS)):
            step = "1" if scale == 0 else "0." + "0" * (scale - 1) + "1"
            printed = f"CAST(CAST({column} AS DECIMAL({integer_digits + scale + 1},{scale})) AS VARCHAR)"
            branches.append(f"WHEN {column} % {step} = 0 THEN {printed}")
        full = f"CAST(CAST({column} AS DECIMAL({self.precision + 1},{self.scale})) AS VARCHAR)"
        rest = f"rtrim({full}, '0')" if self.scale > _SCALE_TESTS else full
        return f"CASE {' '.join(branches)} ELSE {rest} END"

    def wire_expression(self, column: str) -> str:  # noqa: PLR0911 - one per type
        """DuckDB SQL that turns `column` into the JSON value Exasol sends (computed by DuckDB, not in Python)."""
        if self.kind == "DECIMAL":
            if self.scale or self.precision > MAX_JSON_INTEGER_PRECISION:
                return self.decimal_text(column)
            return f"CAST({column} AS BIGINT)"
        if self.kind == "VARCHAR":
            return f"NULLIF(CAST({column} AS VARCHAR), '')"
        if self.kind == "CHAR":
            return f"rpad(NULLIF(CAST({column} AS VARCHAR), ''), {self.size}, ' ')"
        if self.kind == "DATE":
            return f"strftime(CAST({column} AS DATE), '%Y-%m-%d')"
        if self.kind == "TIMESTAMP":
            # to milliseconds (a computed value may have microseconds), then back: DuckDB's strftime of a
            # TIMESTAMP_MS goes through nanoseconds and fails after 2262
            return f"strftime(CAST(CAST({column} AS {DUCK_TIMESTAMP}) AS TIMESTAMP), '%Y-%m-%d %H:%M:%S.%f')"
        if self.kind == "DOUBLE":
            return f"CAST({column} AS DOUBLE)"
        return column


DEFAULT_VARCHAR = ExaType("VARCHAR", size=MAX_VARCHAR)
_INT_PRECISION = {
    exp.DataType.Type.TINYINT: 3,
    exp.DataType.Type.SMALLINT: 9,
    exp.DataType.Type.INT: 18,
    exp.DataType.Type.BIGINT: 36,
}


def _int_arg(node: exp.DataType, index: int, default: int) -> int:
    params = node.expressions
    if len(params) <= index:
        return default
    value = params[index]
    inner = value.this if isinstance(value, exp.DataTypeParam) else value
    try:
        return int(inner.name if isinstance(inner, exp.Expression) else str(inner))
    except ValueError as exc:
        raise Unsupported(f"the type parameter {value.sql()!r}") from exc


def from_declared(node: exp.DataType) -> ExaType:  # noqa: PLR0911 - one per type
    """The Exasol type of a declaration parsed by sqlglot's exasol dialect; unknown types are refused by name."""
    kind = node.this
    types = exp.DataType.Type
    if kind in _INT_PRECISION:
        return ExaType("DECIMAL", precision=_INT_PRECISION[kind], scale=0)
    if kind == types.DECIMAL:
        precision = _int_arg(node, 0, 18)
        scale = _int_arg(node, 1, 0)
        if not 1 <= precision <= MAX_PRECISION or not 0 <= scale <= precision:
            raise Unsupported(f"DECIMAL({precision},{scale})", "precision 1..36, scale 0..precision")
        return ExaType("DECIMAL", precision=precision, scale=scale)
    if kind in (types.DOUBLE, types.FLOAT):
        return ExaType("DOUBLE")
    if kind in (types.VARCHAR, types.NVARCHAR):
        size = _int_arg(node, 0, -1)
        if size < 1:
            raise Unsupported("VARCHAR without a size", "Exasol requires VARCHAR(n)")
        return ExaType("VARCHAR", size=min(size, MAX_VARCHAR))
    if kind in (types.CHAR, types.NCHAR):
        return ExaType("CHAR", size=_int_arg(node, 0, 1))
    if kind == types.TEXT:
        return DEFAULT_VARCHAR
    if kind == types.DATE:
        return ExaType("DATE")
    if kind == types.TIMESTAMP:
        return ExaType("TIMESTAMP")
    if kind == types.BOOLEAN:
        return ExaType("BOOLEAN")
    raise Unsupported(
        f"the data type {node.sql(dialect='exasol')}",
        "supported: DECIMAL and its integer aliases, DOUBLE, VARCHAR, CHAR, DATE, TIMESTAMP, BOOLEAN",
    )


def from_duckdb(type_name: str, column: str) -> ExaType:  # noqa: PLR0911 - one per type
    """The Exasol type reported for a DuckDB result column that the shadow catalog knows nothing about."""
    name = type_name.upper()
    decimal = _DUCK_DECIMAL.match(name)
    if decimal:
        return ExaType("DECIMAL", precision=min(int(decimal.group(1)), MAX_PRECISION), scale=int(decimal.group(2)))
    if name in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"):
        return ExaType("DECIMAL", precision=18, scale=0)
    if name in ("HUGEINT", "UBIGINT", "UHUGEINT"):
        return ExaType("DECIMAL", precision=MAX_PRECISION, scale=0)
    if name in ("DOUBLE", "FLOAT"):
        return ExaType("DOUBLE")
    if name == "VARCHAR":
        return DEFAULT_VARCHAR
    if name == "DATE":
        return ExaType("DATE")
    if name.startswith("TIMESTAMP"):
        return ExaType("TIMESTAMP")
    if name == "BOOLEAN":
        return ExaType("BOOLEAN")
    if name in {'"NULL"', "NULL"}:
        return DEFAULT_VARCHAR
    raise Unsupported(
        f"result column {column} of DuckDB type {type_name}",
        "cast it to DECIMAL, DOUBLE, VARCHAR, DATE, TIMESTAMP or BOOLEAN; "
        "for intervals use SECONDS_BETWEEN or DAYS_BETWEEN",
    )
