"""The one place RED-PSS opens database sessions: settings from the config, error mapping, reconnects.

pyexasol is imported lazily (it costs ~300 ms and 46 MiB), so CLIs that never touch the database stay fast.
"""

from redpss.core.db.errors import (
    DatabaseAuthError,
    DatabaseConfigMismatch,
    DatabaseDsnError,
    DatabaseError,
    DatabaseNameMismatch,
    DatabaseQueryError,
    DatabaseUnavailable,
)
from redpss.core.db.session import Backoff, DbSession
from redpss.core.db.settings import DbSettings, first_address

__all__ = [
    "Backoff",
    "DatabaseAuthError",
    "DatabaseConfigMismatch",
    "DatabaseDsnError",
    "DatabaseError",
    "DatabaseNameMismatch",
    "DatabaseQueryError",
    "DatabaseUnavailable",
    "DbSession",
    "DbSettings",
    "first_address",
]
