"""Errors that reach the client as Exasol-style `exception` objects (`sqlCode` + `text`).

pyexasol turns sqlCode R0001 into ExaQueryTimeoutError and R0003 into ExaQueryAbortError, so those two codes are
fixed; the others follow Exasol's SQLSTATE-like classes closely enough for callers that branch on them.
"""

from __future__ import annotations

import re

SYNTAX_OR_ACCESS = "42000"
FEATURE_NOT_SUPPORTED = "0A000"
DATA_EXCEPTION = "22002"
CONSTRAINT_VIOLATION = "27001"
TRANSACTION_ROLLBACK = "40001"
AUTH_FAILED = "08004"
CONNECTION_EXCEPTION = "08000"
QUERY_TIMEOUT = "R0001"
QUERY_ABORTED = "R0003"
INTERNAL = "00000"


class DevDbError(Exception):
    """An error the client sees; `sql_code` and `text` go into the reply's exception object."""

    sql_code: str = SYNTAX_OR_ACCESS

    def __init__(self, text: str, sql_code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        if sql_code is not None:
            self.sql_code = sql_code


class Unsupported(DevDbError):
    """A construct devdb deliberately does not implement; the text names it so the caller knows what to change."""

    sql_code = FEATURE_NOT_SUPPORTED

    def __init__(self, construct: str, hint: str = "") -> None:
        text = f"devdb does not support {construct}"
        super().__init__(f"{text} ({hint})" if hint else text)


class QueryTimeout(DevDbError):
    sql_code = QUERY_TIMEOUT

    def __init__(self, seconds: int) -> None:
        super().__init__(f"Query terminated because timeout has been reached (queryTimeout = {seconds} s)")


class QueryAborted(DevDbError):
    sql_code = QUERY_ABORTED

    def __init__(self) -> None:
        super().__init__("Query terminated by user request (abortQuery)")


class AuthFailed(DevDbError):
    sql_code = AUTH_FAILED

    def __init__(self) -> None:
        super().__init__("Connection exception - authentication failed.")


NUMERIC_OUT_OF_RANGE = "22003"
STRING_TRUNCATION = "22001"
INVALID_CAST = "22018"

# DuckDB messages of common errors, reworded as Exasol words them, with Exasol's SQL codes
_NOT_FOUND = "object {0} not found"
_EXASOL_WORDING: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r'^Catalog Error: Table with name "?([^"!]+?)"? does not exist'), _NOT_FOUND, SYNTAX_OR_ACCESS),
    (re.compile(r'^Binder Error: Referenced column "([^"]+)" not found'), _NOT_FOUND, SYNTAX_OR_ACCESS),
    (
        re.compile(r'^Binder Error: Table "[^"]+" does not have a column (?:with name|named) "([^"]+)"'),
        _NOT_FOUND,
        SYNTAX_OR_ACCESS,
    ),
    (re.compile(r'^Catalog Error: Schema with name "?([^"!]+?)"? does not exist'), _NOT_FOUND, SYNTAX_OR_ACCESS),
    (re.compile(r'^Catalog Error: \w+ with name "?([^"!]+?)"? already exists'), "object {0} already exists", "42500"),
    (
        re.compile(r'^Conversion Error: Could not convert string "(.*)" to '),
        "data exception - invalid character value for cast; Value: '{0}'",
        INVALID_CAST,
    ),
    (
        re.compile(r"^Conversion Error: Could not cast value (\S+) to "),
        "data exception - numeric value out of range; Value: {0}",
        NUMERIC_OUT_OF_RANGE,
    ),
    (
        re.compile(r"^Constraint Error: NOT NULL constraint failed: (\w+)\.(\w+)"),
        "constraint violation - not null (column {1} in table {0})",
        CONSTRAINT_VIOLATION,
    ),
    (
        re.compile(r"^Constraint Error: .*(?:PRIMARY KEY|UNIQUE).*duplicate key (.*)"),
        "constraint violation - primary key (duplicate key {0})",
        CONSTRAINT_VIOLATION,
    ),
    (re.compile(r"^Invalid Input Error: Division by zero"), "data exception - division by zero", "22012"),
    # a refusal raised by error() in one of devdb's macros (functions.py)
    (re.compile(r"^Invalid Input Error: (devdb does not support .*)"), "{0}", FEATURE_NOT_SUPPORTED),
    (  # the CHECK translate.py gives every VARCHAR(n)/CHAR(n) column of a CREATE TABLE
        re.compile(
            r'^Constraint Error: CHECK constraint failed on table "?([^"]+?)"? with expression '
            r'CHECK\(\(length\("?(.+?)"?\) <= (\d+)\)\)'
        ),
        "data exception - string data, right truncation (a value for column {1} of table {0} is longer than its "
        "{2} characters)",
        STRING_TRUNCATION,
    ),
)


def exasol_wording(text: str) -> DevDbError | None:
    """The error Exasol gives for a DuckDB error message of a common kind, or None to keep DuckDB's text."""
    for pattern, template, code in _EXASOL_WORDING:
        match = pattern.search(text)
        if match:
            return DevDbError(template.format(*match.groups()), code)
    return None
