"""The reason given for a failed export or import through pyexasol's callbacks."""

from __future__ import annotations

import pyexasol  # tests/conftest.py switched its telemetry off first
from pyexasol.exceptions import ExaExportError

from redpss.core.db.errors import callback_cause, map_exa_error


def test_an_export_whose_statement_failed_is_explained_by_the_database_not_by_the_closed_pipe() -> None:
    """SENDFILE's export of a view that does not exist failed now and then with "I/O operation on closed file": the
    statement failed, pyexasol closed the pipe the callback read, and the error was raised from the callback's
    exception, whichever of its threads' exceptions came first."""
    closed = ValueError("I/O operation on closed file.")
    refused = pyexasol.ExaQueryError(None, "EXPORT ...", "42000", "object APP1.NO_SUCH_VIEW not found")  # type: ignore[no-untyped-call]
    for order in ((closed, None, refused), (refused, None, closed)):
        error = ExaExportError(connection=None, exceptions=order)
        try:
            raise error from order[0]
        except ExaExportError as raised:
            cause = callback_cause(raised)
        assert cause is refused
        text = str(map_exa_error(cause, dsn="127.0.0.1:8563", user="sys"))
        assert "NO_SUCH_VIEW" in text and "[42000]" in text


def test_a_callback_that_failed_alone_is_its_own_reason() -> None:
    full = OSError(28, "No space left on device")
    error = ExaExportError(connection=None, exceptions=(full, None, None))
    assert callback_cause(error) is full
    plain = RuntimeError("not pyexasol's")
    assert callback_cause(plain) is plain
