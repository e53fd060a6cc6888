"""The API's OpenAPI 3.1 document: served at /openapi.json and kept in docs/openapi.json.

`python -m redpss.rest.openapi docs/openapi.json` writes it; a test fails when the file differs, and the
property-based test (tests/rest/test_fuzz.py) drives the running API from this document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from redpss import __version__
from redpss.rest.routekeys import MAX_ID

JSON = "application/json"
OPERATE = "operate"  # the tag of operations that need the operator role
ANY: dict[str, Any] = {}  # a database value: number, text, time (ISO 8601 text), boolean or null


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


ERRORS = {"default": {"description": "an error (see the code)", "content": {JSON: {"schema": _ref("Error")}}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


KEY_PARAMETERS = [
    {
        "name": "schema",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,127}$"},
        "description": "the application schema",
    },
    {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
        "description": "the id",
    },
]
ACTIVE_PARAMETER = _query(
    "active", {"type": "boolean"}, "the state wanted; sent twice it stays so (without it, the state is switched)"
)
TIME = {"type": "string", "format": "date-time"}
NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,127}$"}
PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "rows per page"),
    _query("offset", {"type": "integer", "minimum": 0, "maximum": 1000000000, "default": 0}, "rows to skip"),
]


def _operation(
    summary: str,
    responses: dict[str, Any],
    *,
    auth: bool = True,
    parameters: list[dict[str, Any]] | None = None,
    tag: str = "read",
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {**responses, **ERRORS}}
    if parameters:
        operation["parameters"] = parameters
    operation["security"] = [{"basic": []}] if auth else []
    return operation


def _rows(*required: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "object", "required": list(required), "properties": dict.fromkeys(required, ANY)},
    }


def _paged(key: str, *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["limit", "offset", key],
        "properties": {"limit": {"type": "integer"}, "offset": {"type": "integer"}, key: _rows(*required)},
    }


def _paths() -> dict[str, Any]:
    job_row = _rows("SCHEMA_NAME", "JOB_ID", "JOB_NAME", "POOL", "JOB_TYPE", "ACTIVE")
    watcher_row = _rows("SCHEMA_NAME", "WATCHER_ID", "WATCHER_NAME", "CONDITION_TYPE", "TARGET_JOB_ID", "ACTIVE")
    return {
        "/health": {
            "get": _operation(
                "whether JMON and SCHED serve (for load balancers; 503 when one is down)",
                {
                    **_ok(_ref("Health"), "both serve"),
                    "503": {"description": "JMON or SCHED is down", "content": {JSON: {"schema": _ref("Health")}}},
                },
                auth=False,
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics (no credentials on a loopback listener, else the reader role)",
                {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            )
        },
        "/openapi.json": {
            "get": _operation("this document", _ok({"type": "object"}, "the OpenAPI document"), auth=False)
        },
        "/api/v1/status": {
            "get": _operation("the instance: daemons, suspended, last poll, spools", _ok(_ref("Status"), "status"))
        },
        "/api/v1/jobs": {"get": _operation("every job of every registered schema", _ok(job_row, "jobs"))},
        "/api/v1/jobs/{schema}/{id}": {
            "get": _operation("one job, every column", _ok({"type": "object"}, "the job"), parameters=KEY_PARAMETERS)
        },
        "/api/v1/jobs/{schema}/{id}/toggle": {
            "post": _operation(
                "set a job active or inactive (without `active`: switch it)",
                _ok(_ref("Toggled"), "new state"),
                parameters=[*KEY_PARAMETERS, ACTIVE_PARAMETER],
                tag=OPERATE,
            )
        },
        "/api/v1/jobs/{schema}/{id}/start": {
            "post": _operation(
                "start a job now",
                _ok(_ref("Started"), "handed to SCHED", "202"),
                parameters=[
                    *KEY_PARAMETERS,
                    _query("force", {"type": "boolean", "default": False}, "start even while suspended"),
                    _query(
                        "scheduled_only", {"type": "boolean", "default": False}, "only a job JMON schedules (active)"
                    ),
                ],
                tag=OPERATE,
            )
        },
        "/api/v1/watchers": {
            "get": _operation("every watcher of every registered schema", _ok(watcher_row, "watchers"))
        },
        "/api/v1/watchers/{schema}/{id}": {
            "get": _operation(
                "one watcher, every column", _ok({"type": "object"}, "the watcher"), parameters=KEY_PARAMETERS
            )
        },
        "/api/v1/watchers/{schema}/{id}/toggle": {
            "post": _operation(
                "set a watcher active or inactive (without `active`: switch it)",
                _ok(_ref("Toggled"), "new state"),
                parameters=[*KEY_PARAMETERS, ACTIVE_PARAMETER],
                tag=OPERATE,
            )
        },
        "/api/v1/watchers/{schema}/{id}/reset-errors": {
            "post": _operation(
                "reset the executor error of one watcher",
                _ok(_ref("Reset"), "reset"),
                parameters=KEY_PARAMETERS,
                tag=OPERATE,
            )
        },
        "/api/v1/watcher-errors": {
            "get": _operation(
                "executor errors not reset yet",
                _ok(_rows("SCHEMA_NAME", "WATCHER_ID", "ERROR_AT", "ERROR_MESSAGE"), "errors"),
            )
        },
        "/api/v1/watcher-errors/reset": {
            "post": _operation("reset every watcher's executor error", _ok(_ref("Reset"), "reset"), tag=OPERATE)
        },
        "/api/v1/runs": {
            "get": _operation(
                "runs of jobs, newest first",
                _ok(_paged("runs", "SCHEMA_NAME", "RUN_ID", "JOB_ID", "STATUS"), "a page of runs"),
                parameters=[
                    _query("schema", NAME, "only this schema"),
                    _query("job_id", {"type": "integer", "minimum": 0, "maximum": MAX_ID}, "only this job id"),
                    _query("status", NAME, "only this status (OK, FAILED, TIMEOUT, ...)"),
                    _query("since", TIME, "started at or after"),
                    _query("until", TIME, "started before"),
                    *PAGE,
                ],
            )
        },
        "/api/v1/load": {
            "get": _operation(
                "JMON's load statistics per pool, oldest first",
                _ok(_paged("load", "LOG_TIME", "POOL", "BUSY", "QUEUED"), "a page of the series"),
                parameters=[
                    _query("pool", NAME, "only this pool"),
                    _query("since", TIME, "logged at or after"),
                    _query("until", TIME, "logged before"),
                    *PAGE,
                ],
            )
        },
        "/api/v1/log-messages": {
            "get": _operation(
                "the database's log messages (REDSYS.ALL_LOG_MESSAGES), newest first",
                _ok(_paged("messages", "SCHEMA_NAME", "LOG_TIME", "LOG_LEVEL", "MESSAGE"), "a page of messages"),
                parameters=[
                    _query("schema", NAME, "only this schema"),
                    _query("level", NAME, "only this level (ERROR, ALERT)"),
                    _query("job_id", {"type": "integer", "minimum": 0, "maximum": MAX_ID}, "only this job id"),
                    _query("since", TIME, "logged at or after"),
                    _query("until", TIME, "logged before"),
                    *PAGE,
                ],
            )
        },
        "/api/v1/suspend": {
            "post": _operation(
                "suspend: no new runs start, running ones finish", _ok(_ref("Suspended"), "suspended"), tag=OPERATE
            )
        },
        "/api/v1/resume": {
            "post": _operation("resume: runs start as scheduled", _ok(_ref("Suspended"), "resumed"), tag=OPERATE)
        },
        "/api/v1/reload": {
            "post": _operation(
                "have JMON re-read the definitions",
                _ok(
                    {
                        "type": "object",
                        "required": ["definitions", "invalid"],
                        "properties": {"definitions": ANY, "invalid": {"type": "integer"}},
                    },
                    "reloaded",
                ),
                tag=OPERATE,
            )
        },
    }


def _schemas() -> dict[str, Any]:
    boolean, integer, text = {"type": "boolean"}, {"type": "integer"}, {"type": "string"}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "code", "message"],
                    "properties": {"status": integer, "code": text, "message": text},
                }
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "instance", "daemons"],
            "properties": {
                "status": {"enum": ["ok", "down"]},
                "instance": text,
                "daemons": {"type": "object", "additionalProperties": boolean},
            },
        },
        "Status": {
            "type": "object",
            "required": ["instance", "suspended", "last_poll_ok", "daemons", "spool", "pools"],
            "properties": {
                "instance": text,
                "suspended": boolean,
                "last_poll_ok": {"type": ["number", "null"]},
                "daemons": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["running", "detail"],
                        "properties": {"running": boolean, "detail": text},
                    },
                },
                "spool": {"type": "object", "additionalProperties": integer},
                "pools": {"type": "array", "items": {"type": "object", "required": ["pool", "size", "busy", "queued"]}},
            },
        },
        "Toggled": {
            "type": "object",
            "required": ["kind", "schema", "id", "name", "active", "applied"],
            "properties": {
                "kind": {"enum": ["JOB", "WATCHER"]},
                "schema": text,
                "id": integer,
                "name": text,
                "active": boolean,
                "applied": boolean,
            },
        },
        "Started": {
            "type": "object",
            "required": ["schema", "id", "name", "run_id", "state", "forced"],
            "properties": {
                "schema": text,
                "id": integer,
                "name": text,
                "run_id": {"type": ["string", "null"]},
                "state": text,
                "forced": boolean,
            },
        },
        "Reset": {
            "type": "object",
            "required": ["reset", "applied"],
            "properties": {
                "reset": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["schema", "id"],
                        "properties": {"schema": text, "id": integer},
                    },
                },
                "applied": boolean,
            },
        },
        "Suspended": {
            "type": "object",
            "required": ["instance", "suspended"],
            "properties": {"instance": text, "suspended": boolean},
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RED-PSS REST API",
            "version": __version__,
            "description": "One instance's jobs, watchers, runs and logs over HTTPS. HTTP Basic with a database user; "
            "the role REDPSS_READER reads, REDPSS_OPERATOR also changes. Errors: {error: {status, code, message}}.",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas(), "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m redpss.rest.openapi FILE (e.g. docs/openapi.json)", file=sys.stderr)
        return 2
    Path(args[0]).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
