"""How the API answers an operation's database errors: what the operator must fix or the caller may retry is 503,
and the configuration's details stay in the log."""

from __future__ import annotations

import logging

import pytest

from redpss.core.db.errors import (
    DatabaseAuthError,
    DatabaseError,
    DatabaseNameMismatch,
    DatabaseQueryError,
    DatabaseUnavailable,
)
from redpss.rest.errors import from_operation


@pytest.mark.parametrize(
    "error",
    [
        DatabaseAuthError("login refused: the database at db1:8563 refused the login of user REDSYS_API: bad"),
        DatabaseNameMismatch("the database at db1:8563 is DEV2, not DEV1 (exa_dbname)"),
        DatabaseUnavailable("the database at db1:8563 is not reachable: connection refused (user REDSYS_API)"),
    ],
)
def test_a_database_that_refuses_the_api_s_settings_is_503_and_the_details_go_to_the_log(
    error: DatabaseError, caplog: pytest.LogCaptureFixture
) -> None:
    """Was 500 `internal_error` (which the docs call a bug of the API) with the DSN and the user in the answer."""
    with caplog.at_level(logging.WARNING, logger="redpss.rest"):
        answer = from_operation(error)
    assert answer.status == 503
    assert "db1:8563" not in answer.message and "REDSYS_API" not in answer.message
    assert "db1:8563" in caplog.text


def test_a_statement_that_timed_out_or_collided_is_503_to_try_again_and_another_failure_500() -> None:
    timed_out = DatabaseQueryError("query timed out", timeout=True, reason="query timed out")
    collided = DatabaseQueryError("rollback", code="40001", reason="GlobalTransactionRollback")
    broken = DatabaseQueryError("object X not found", code="42000", reason="object X not found")
    assert [from_operation(e).status for e in (timed_out, collided, broken)] == [503, 503, 500]
    assert "try again" in from_operation(collided).message


def test_a_statement_that_failed_is_answered_with_the_database_s_words_not_the_statement() -> None:
    """The 500 carried the whole error: the statement and the DSN. The database's reason is what a caller can use;
    the rest is in the API's log."""
    broken = DatabaseQueryError(
        "statement failed [42000]: object X not found -- in: SELECT * FROM X (db1:8563)",
        code="42000",
        sql="SELECT * FROM X",
        reason="object X not found",
    )
    answer = from_operation(broken)
    assert (answer.status, answer.message) == (500, "the operation failed in the database (object X not found)")
