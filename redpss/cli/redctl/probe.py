"""Asking an instance's daemons directly whether they serve: how `redctl status` works without systemd
(under `redctl start_trace`), where there are no units to ask. Addresses and the kind of probe come from the
services registry; no daemon module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redpss.cli.redctl.clients import Instance, NotRunning
from redpss.core.net import tcp_reachable
from redpss.core.services import Address, ServiceSpec, enabled_services

TCP_PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Probe:
    program: str
    running: bool
    detail: str


def _nobody_there(address: Address | None) -> str:
    """Why nothing can answer at `address` ("" when something listens): a stopped daemon is told without loading
    the wire protocol."""
    if address is None:
        return "no address in the config"
    if isinstance(address, Path):
        return "" if address.is_socket() else f"no control socket {address}"
    reachable, why = tcp_reachable(*address, timeout=TCP_PROBE_TIMEOUT)
    return "" if reachable else f"nothing listens on {address[0]}:{address[1]} ({why})"


def _ping(instance: Instance, spec: ServiceSpec) -> Probe:
    absent = _nobody_there(spec.address(instance.config, instance.paths))
    if absent:
        return Probe(spec.program, False, f"{spec.name.upper()} of instance {instance.paths.redenv} is not running")
    from redpss.core.wire import BlockingClient, WireError  # noqa: PLC0415 - the wire only when something listens

    try:
        client: BlockingClient = instance.connect(spec.name)
        with client:
            reply = client.request("ping")
    except (NotRunning, WireError) as exc:
        return Probe(spec.program, False, str(exc).split(" (")[0])
    return Probe(spec.program, True, f"answering (pid {reply.get('pid', '?')})")


def _listening(instance: Instance, spec: ServiceSpec) -> Probe:
    address = spec.address(instance.config, instance.paths)
    if not isinstance(address, tuple):
        return Probe(spec.program, False, f"no TCP address in {instance.paths.config_file}")
    host, port = address
    reachable, why = tcp_reachable(host, port, timeout=TCP_PROBE_TIMEOUT)
    detail = f"listening on {host}:{port}" if reachable else f"not listening on {host}:{port} ({why})"
    return Probe(spec.program, reachable, detail)


def probe_instance(instance: Instance) -> list[Probe]:
    """One probe per daemon the config enables, in start order."""
    probes = []
    for spec in enabled_services(instance.config, "redctl"):
        if spec.probe == "ping":
            probes.append(_ping(instance, spec))
        elif spec.probe == "tcp":
            probes.append(_listening(instance, spec))
    return probes
