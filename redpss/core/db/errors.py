"""Database errors in words an operator understands, mapped from pyexasol's exceptions in one place."""

from __future__ import annotations

import re

from redpss.core.errors import RedpssError
from redpss.core.exitcodes import ExitCode

_SQL_SHOWN = 200  # characters of a failing statement shown in a message
# The password of CREATE CONNECTION / CREATE USER / ALTER USER statements; never shown in a message or log.
_IDENTIFIED_BY = re.compile(r"(IDENTIFIED\s+BY\s+)(?:'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with every IDENTIFIED BY '<password>' replaced by IDENTIFIED BY '***' (also a truncated one)."""
    return _IDENTIFIED_BY.sub(r"\1'***'", text)


class DatabaseError(RedpssError):
    """Root of the database errors."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or the session was lost; retrying later may succeed."""


class DatabaseConfigMismatch(DatabaseError):
    """The configuration does not fit the database it reached; the operator must fix it, retrying will not help."""

    exit_code = ExitCode.CONFIG


class DatabaseAuthError(DatabaseConfigMismatch):
    """The database refused the login: the configured user or password is wrong (retrying will not help)."""


class DatabaseDsnError(DatabaseConfigMismatch):
    """exa_connection cannot be used as a DSN. Not a refused login: nobody's password was tried, so an API must not
    count it against the caller's address as a failed login."""


class DatabaseNameMismatch(DatabaseConfigMismatch):
    """The database reached is not the one exa_dbname names: another instance's database, never to be used."""


_MISSING_OBJECT = re.compile(r"\bobject \S+ not found\b", re.IGNORECASE)


class DatabaseQueryError(DatabaseError):
    """A statement failed in the database; `code` is Exasol's SQL code (e.g. 42000), `timeout`/`aborted` say why."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        sql: str = "",
        timeout: bool = False,
        aborted: bool = False,
        reason: str = "",
    ):
        super().__init__(message)
        self.code = code
        self.sql = sql
        self.timeout = timeout
        self.aborted = aborted
        self.reason = reason or message  # the database's own words, without the statement

    @property
    def missing_object(self) -> bool:
        """The statement names a table, schema or column that does not exist (Exasol: "object X not found"): the
        one failure that tells something of what the database holds. Any other (a timeout, an abort, a missing
        privilege, a lost connection) tells nothing of it, and must not be taken for "not there"."""
        return not (self.timeout or self.aborted) and _MISSING_OBJECT.search(self.reason) is not None

    @property
    def passing(self) -> bool:
        """Not the statement's fault: it timed out, was aborted (KILL STATEMENT) or lost a transaction collision
        (SQL class 40, e.g. 40001 GlobalTransactionRollback), so the same statement may succeed when sent again."""
        return self.timeout or self.aborted or self.code.startswith("40")


def map_exa_error(exc: BaseException, *, dsn: str, user: str, sql: str = "") -> DatabaseError:
    """The project's error for a pyexasol (or socket) exception; the caller raises it `from exc`."""
    import pyexasol  # noqa: PLC0415 - lazy: see package docstring

    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, pyexasol.ExaAuthError):
        # pyexasol raises it for any error answer to the login. Exasol's codes for the ways a login is refused are
        # not documented where we could read them, so every one counts as refused: a wrong password must never
        # escape the REST API's count of failed logins (docs/decisions.md)
        return DatabaseAuthError(
            f"login refused: the database at {dsn} refused the login of user {user}: {text} "
            "(check exa_username and exa_password in red_params.conf)"
        )
    if isinstance(exc, ValueError) and text == "Encryption failed":
        # pyexasol encrypts the password with the database's RSA key before it sends the login: a password longer
        # than the key can carry is a login the database can never accept, refused like a wrong one
        return DatabaseAuthError(
            f"login refused: the password of user {user} is too long to be sent to the database at {dsn} "
            "(longer than its login encryption can carry)"
        )
    if isinstance(exc, pyexasol.ExaQueryError):
        sql = mask_secrets(sql)
        text = mask_secrets(text)
        shown = " ".join(sql.split())
        shown = shown if len(shown) <= _SQL_SHOWN else shown[:_SQL_SHOWN] + " ..."
        timeout = isinstance(exc, pyexasol.ExaQueryTimeoutError)
        aborted = isinstance(exc, pyexasol.ExaQueryAbortError)
        why = "timed out" if timeout else "was aborted" if aborted else "failed"
        return DatabaseQueryError(
            f"statement {why} [{exc.code}]: {text} -- in: {shown}",
            code=str(exc.code),
            sql=sql,
            timeout=timeout,
            aborted=aborted,
            reason=text,
        )
    if isinstance(exc, (pyexasol.ExaConnectionError, pyexasol.ExaCommunicationError, OSError)):
        return _connection_error(exc, dsn, text)
    if isinstance(exc, pyexasol.ExaRequestError):
        return DatabaseError(f"the database at {dsn} answered with an error [{exc.code}]: {text}")
    return DatabaseError(f"database error at {dsn}: {text}")


def callback_cause(exc: BaseException) -> BaseException:
    """Why a pyexasol export or import through a callback failed. Its error (ExaExportError, ExaImportError) holds the
    exceptions of the callback, the HTTP thread and the SQL thread, and which of them it is raised from is a race
    (pyexasol's documentation says so): when the statement fails, the callback finds its pipe closed under it and
    says only "I/O operation on closed file". The database's own answer is the reason, then any other error of
    pyexasol's, then the first; an exception of another kind, its cause."""
    import pyexasol  # noqa: PLC0415 - lazy: see package docstring

    held = getattr(exc, "exceptions", None)
    if isinstance(held, list) and held:
        for kind in (pyexasol.ExaQueryError, pyexasol.ExaError):
            found = next((each for each in held if isinstance(each, kind)), None)
            if found is not None:
                return found
        first: BaseException = held[0]
        return first
    return exc.__cause__ or exc


def _connection_error(exc: BaseException, dsn: str, text: str) -> DatabaseError:
    """No session: the DSN cannot be used (configuration), or the database cannot be reached (wait and retry)."""
    import pyexasol  # noqa: PLC0415 - lazy: see package docstring

    if isinstance(exc, pyexasol.ExaConnectionDsnError):
        cause = exc.__cause__
        if not isinstance(cause, OSError):
            return DatabaseDsnError(f"exa_connection = {dsn} is not a usable DSN: {text} (fix it in red_params.conf)")
        # pyexasol resolves the host names while it reads the DSN: a name service that does not answer is an outage
        # to wait out (retried; JMON restarted by systemd), not a configuration to fix
        text = f"cannot resolve its host name ({cause.strerror or cause}); check exa_connection and DNS or /etc/hosts"
    return DatabaseUnavailable(f"the database at {dsn} is not reachable: {text}")
