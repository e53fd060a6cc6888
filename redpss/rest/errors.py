"""Every error of the API is JSON of one shape: {"error": {"status": 404, "code": "not_found", "message": "..."}}.

`code` is stable (clients branch on it), `message` is for people. Operations' errors map to statuses here, in one
place; nothing else in the API builds an error body.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from redpss.core.errors import RedpssError, UsageError
from redpss.ops.instance import Declined, NotRunning, OutcomeUnknown
from redpss.ops.keys import UnknownObject

log = logging.getLogger("redpss.rest")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",  # a console form whose body did not arrive in time
    409: "conflict",
    413: "too_large",
    429: "too_many_attempts",
    500: "internal_error",
    503: "unavailable",
    504: "no_answer",  # a daemon did not answer in time: what it did is not known
}


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message and extra headers."""

    def __init__(self, status: int, message: str, *, code: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, code: str = "", headers: dict[str, str] | None = None) -> Response:
    body = {"error": {"status": status, "code": code or CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.code, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own (no such route, method not allowed) in our shape."""
    assert isinstance(exc, HTTPException)
    message = {
        404: f"no resource {request.url.path}; see /openapi.json",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


def from_operation(exc: RedpssError) -> ApiError:
    """The answer to an operation's error: unknown object 404, bad input 400, declined as things stand 409, a daemon
    or database away (or a daemon's failed answer) 503, a daemon that did not answer in time, with the outcome not
    known, 504. A database that refuses the API's settings, or a statement that timed out or collided, is 503 as
    well: the operator fixes the configuration or the caller tries again; neither is a bug of the API, and the
    configuration's details (the DSN, the technical user) stay in the API's log."""
    from redpss.core.db.errors import (  # noqa: PLC0415
        DatabaseConfigMismatch,
        DatabaseError,
        DatabaseQueryError,
        DatabaseUnavailable,
    )
    from redpss.core.wire import Code, WireError  # noqa: PLC0415 - loaded by the operation already

    if isinstance(exc, DatabaseConfigMismatch):
        log.error("the database refuses the API's settings: %s", exc)
        return ApiError(503, "the API cannot use the database: its settings do not fit it (the API's log says why)")
    if isinstance(exc, DatabaseQueryError) and exc.passing:
        return ApiError(503, f"the database did not complete the query now ({exc.reason[:200]}); try again")
    if isinstance(exc, DatabaseUnavailable):
        log.warning("the database is not available to the API: %s", exc)
        return ApiError(503, "the database is not available now; try again (the API's log says why)")
    statuses: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
        (UnknownObject, 404),
        (UsageError, 400),
        (Declined, 409),
        (OutcomeUnknown, 504),
        # a daemon away or breaking off: the server's side, not a bug here
        ((NotRunning, WireError), 503),
    )
    internal = isinstance(exc, WireError) and exc.code == Code.INTERNAL  # a daemon's bug: 500, logged here too
    for kinds, status in statuses:
        if isinstance(exc, kinds) and not internal:
            return ApiError(status, str(exc))
    log.error("operation failed: %s", exc)
    if isinstance(exc, DatabaseError):  # its text holds the statement and the DSN: those stay in the log
        return ApiError(
            500,
            f"the operation failed in the database ({exc.reason[:200]})"
            if isinstance(exc, DatabaseQueryError)
            else "the operation failed in the database; the API's log has the details",
        )
    return ApiError(500, f"the operation failed: {exc}")


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback, answered in our shape without details."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; the API's log has the details")
