"""Asking SENDFILE for a file from another RED-PSS process (SCHED's SENDFILE jobs): the core's wire client and the
services registry only, so the caller loads neither pyarrow nor paramiko."""

from __future__ import annotations

from typing import Any

from redpss.core.config import Config
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.core.services import service_spec
from redpss.core.wire import BlockingClient, WireError


class SendfileFailed(OSError):
    """SENDFILE refused or failed the request, or could not be reached; the text says which and why."""


def send_file(
    config: Config, paths: InstancePaths, request: dict[str, Any], *, wait: bool = True, timeout: float = 3600.0
) -> dict[str, Any]:
    """Hand `request` to SENDFILE; with `wait`, return once the file is delivered (rows, bytes, delivered)."""
    address = service_spec("sendfile").address(config, paths)
    assert isinstance(address, tuple)
    try:
        with BlockingClient(address, instance_secret(paths, create=False), "SENDFILE job", timeout) as sendfile:
            return sendfile.request_durable("sendfile", wait=wait, **request)
    except WireError as exc:
        raise SendfileFailed(f"SENDFILE at {address[0]}:{address[1]}: {exc}") from None
