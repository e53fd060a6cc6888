"""Scalar scripts kept in the DuckDB file beside the data: table REDPSS_DEVDB.SCRIPTS.

A CREATE SCRIPT writes its row in the caller's transaction (like CREATE CONNECTION in catalog.py), so a rolled-back
CREATE leaves nothing behind and scripts survive a restart with the data. DROP SCHEMA ... CASCADE drops the
schema's scripts with it. SYS.EXA_ALL_SCRIPTS (and the USER/DBA variants) show them with Exasol's columns.
"""

# DuckDB SQL is built here from constant names; values travel as parameters.
# ruff: noqa: S608

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redpss.devdb.errors import DevDbError
from redpss.devdb.types import ExaType
from redpss.devdb.udf_parse import LANGUAGE, Parameter

_SCRIPTS = '"REDPSS_DEVDB"."SCRIPTS"'  # catalog.META_SCHEMA (not imported: systables reads this module)
_SETUP = (
    f"CREATE TABLE IF NOT EXISTS {_SCRIPTS} (SCHEMA_NAME VARCHAR, SCRIPT_NAME VARCHAR, SCRIPT_LANGUAGE VARCHAR, "
    "PARAMETERS VARCHAR, RETURNS_TYPE VARCHAR, BODY VARCHAR, PRIMARY KEY (SCHEMA_NAME, SCRIPT_NAME))"
)


@dataclass(frozen=True)
class StoredScript:
    """A PYTHON3 SCALAR script as created: what its calls pass (parameters), return and run (body)."""

    schema: str
    name: str
    parameters: tuple[Parameter, ...]
    returns: ExaType
    body: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


_SCRIPTS_VIEW = f"""
SELECT SCHEMA_NAME AS SCRIPT_SCHEMA, SCRIPT_NAME, 'SYS' AS SCRIPT_OWNER,
  CAST(NULL AS DECIMAL(18,0)) AS SCRIPT_OBJECT_ID, 'UDF' AS SCRIPT_TYPE, SCRIPT_LANGUAGE,
  'SCALAR' AS SCRIPT_INPUT_TYPE, 'RETURNS' AS SCRIPT_RESULT_TYPE,
  BODY AS SCRIPT_TEXT, CAST(NULL AS VARCHAR) AS SCRIPT_COMMENT
FROM {_SCRIPTS}
"""


def setup(cursor: Any) -> None:
    cursor.execute(_SETUP)


def system_views() -> dict[str, str]:
    """EXA_ALL/USER/DBA_SCRIPTS (SCRIPT_TEXT is the code after AS: devdb keeps no other text of the statement)."""
    return {f"EXA_{family}_SCRIPTS": _SCRIPTS_VIEW for family in ("ALL", "USER", "DBA")}


def save(cursor: Any, script: StoredScript, *, replace: bool) -> None:
    if find(cursor, script.schema, script.name) is not None and not replace:
        raise DevDbError(
            f"script {script.qualified} already exists (use CREATE OR REPLACE {LANGUAGE} SCALAR SCRIPT)", "42500"
        )
    cursor.execute(f"DELETE FROM {_SCRIPTS} WHERE SCHEMA_NAME = ? AND SCRIPT_NAME = ?", [script.schema, script.name])
    parameters = json.dumps([[p.name, p.type.text()] for p in script.parameters])
    cursor.execute(
        f"INSERT INTO {_SCRIPTS} VALUES (?, ?, ?, ?, ?, ?)",
        [script.schema, script.name, LANGUAGE, parameters, script.returns.text(), script.body],
    )


def drop(cursor: Any, schema: str, name: str) -> bool:
    found = find(cursor, schema, name) is not None
    cursor.execute(f"DELETE FROM {_SCRIPTS} WHERE SCHEMA_NAME = ? AND SCRIPT_NAME = ?", [schema, name])
    return found


def forget_schema(cursor: Any, schema: str) -> None:
    cursor.execute(f"DELETE FROM {_SCRIPTS} WHERE SCHEMA_NAME = ?", [schema])


def find(cursor: Any, schema: str, name: str) -> StoredScript | None:
    rows = cursor.execute(
        f"SELECT PARAMETERS, RETURNS_TYPE, BODY FROM {_SCRIPTS} WHERE SCHEMA_NAME = ? AND SCRIPT_NAME = ?",
        [schema, name],
    ).fetchall()
    if not rows:
        return None
    row = rows[0]
    parameters = tuple(Parameter(str(n), ExaType.from_text(str(t))) for n, t in json.loads(row[0]))
    return StoredScript(schema, name, parameters, ExaType.from_text(str(row[1])), str(row[2]))
