"""Errors that reach the client as Exasol-style `exception` objects (`sqlCode` + `text`).

pyexasol turns sqlCode R0001 into ExaQueryTimeoutError and R0003 into ExaQueryAbortError, so those two codes are
fixed; the others follow Exasol's SQLSTATE-like classes closely enough for callers that branch on them.
"""

from __future__ import annotations

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
