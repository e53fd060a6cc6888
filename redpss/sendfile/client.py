"""Asking SENDFILE for a file from another RED-PSS process (SCHED's SENDFILE jobs): the core's wire client and the
services registry only, so the caller loads neither pyarrow nor paramiko."""

from __future__ import annotations

import json
from typing import Any

from redpss.core.config import load_config
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import BlockingClient, WireError

ANSWER_MARGIN = 60.0  # seconds beyond the job's timeout before the run stops waiting for SENDFILE's answer
# the keys of SCHED's SENDFILE runs (run:<run id>); SENDFILE takes them only from RED-PSS's own clients
RUN_KEY_PREFIX = "run:"


class SendfileFailed(OSError):
    """SENDFILE refused or failed the request, or could not be reached; the text says which and why."""


def job_request(command: str, schema: str) -> dict[str, Any]:
    """A SENDFILE job's COMMAND (a JSON object of request fields) with the job's schema to report to."""
    try:
        fields = json.loads(command)
    except ValueError as exc:
        raise ValueError(
            f'a SENDFILE job\'s COMMAND is a JSON object such as {{"source": "APP1.V_ORDERS", "format": "CSV", '
            f'"sftp": "partner1"}}; this one does not parse: {exc}'
        ) from None
    if not isinstance(fields, dict):
        raise ValueError("a SENDFILE job's COMMAND is a JSON object of request fields (docs/sendfile.md)")
    return {"schema": schema, **fields}


def send_file(
    paths: InstancePaths, request: dict[str, Any], *, wait: bool = True, timeout: float = 3600.0
) -> dict[str, Any]:
    """Hand `request` to SENDFILE; with `wait`, return once the file is delivered (rows, bytes, delivered, message)."""
    config = load_config(paths.config_file)
    address = service_spec("sendfile").address(config, paths)
    assert isinstance(address, tuple)
    try:
        with BlockingClient(
            address, instance_secret(paths, create=False), "SENDFILE job", timeout + ANSWER_MARGIN
        ) as sendfile:
            return sendfile.request_durable("sendfile", wait=wait, **request)
    except WireError as exc:
        raise SendfileFailed(f"SENDFILE at {address[0]}:{address[1]}: {exc}") from None
