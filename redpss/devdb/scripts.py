"""Stand-ins for Exasol scripts: EXECUTE SCRIPT schema.name(args) calls a registered Python function.

devdb never runs Lua scripting programs (CREATE SCRIPT ... AS <lua> is refused; PYTHON3 SCALAR scripts do run,
see udf.py). Instead a test or the demo registers a Python callable under the script's qualified name; it
receives a ScriptContext (SQL in the caller's session and
transaction, cancellation) and the literal arguments, and returns the row count EXECUTE SCRIPT reports.
A separate devdb process loads such registrations with `--scripts MODULE` (the module calls register_script).

Built in: REDPSS_DEVDB.SLEEP(seconds) waits, honouring abortQuery and the query timeout, and returns 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from redpss.devdb.errors import DevDbError


class ScriptContext(Protocol):
    """What a script stand-in may do."""

    def execute(self, sql: str) -> int | list[tuple[Any, ...]]:
        """Run Exasol SQL in the caller's session: a row count, or the rows (values as sent on the wire)."""

    def check_cancelled(self) -> None:
        """Raise the abort/timeout error if the caller's statement was aborted or timed out."""

    def sleep(self, seconds: float) -> None:
        """Wait, returning early with the abort/timeout error when the statement is cancelled."""


ScriptFunction = Callable[..., int | None]
_registry: dict[str, ScriptFunction] = {}
_lock = threading.Lock()


def _key(qualified_name: str) -> str:
    parts = qualified_name.split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"script names are SCHEMA.NAME, got {qualified_name!r}")
    return ".".join(part.upper() for part in parts)


def register_script(qualified_name: str, function: ScriptFunction) -> None:
    """Make `EXECUTE SCRIPT SCHEMA.NAME(...)` call function(context, *args); names are case-insensitive."""
    with _lock:
        _registry[_key(qualified_name)] = function


def unregister_script(qualified_name: str) -> None:
    with _lock:
        _registry.pop(_key(qualified_name), None)


def find_script(schema: str | None, name: str) -> ScriptFunction:
    if schema is None:
        raise DevDbError(f"script {name} needs a schema: write EXECUTE SCRIPT SCHEMA.{name}(...) or OPEN SCHEMA first")
    with _lock:
        function = _registry.get(f"{schema}.{name}")
    if function is None:
        raise DevDbError(
            f"script {schema}.{name} not found: devdb runs only scripts registered with "
            "redpss.devdb.scripts.register_script (or loaded with --scripts MODULE)"
        )
    return function


def _sleep(context: ScriptContext, seconds: Any = 0) -> int:
    context.sleep(float(seconds))
    return 0


register_script("REDPSS_DEVDB.SLEEP", _sleep)
