"""Asking an instance's daemons directly whether they serve: how `redctl status` works without systemd
(under `redctl start_trace`), where there are no units to ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from redpss.cli.redctl.clients import Instance, NotRunning
from redpss.core.net import tcp_reachable
from redpss.core.services import enabled_services
from redpss.core.wire import WireError
from redpss.devdb.instance import listen_address


@dataclass(frozen=True)
class Probe:
    program: str
    running: bool
    detail: str


def _ping(instance: Instance, daemon: str) -> Probe:
    try:
        client = instance.jmon() if daemon == "jmon" else instance.sched()
        with client:
            reply = client.request("ping")
    except (NotRunning, WireError) as exc:
        return Probe(f"redpss-{daemon}", False, str(exc).split(" (")[0])
    return Probe(f"redpss-{daemon}", True, f"answering (pid {reply.get('pid', '?')})")


def _listening(program: str, host: str, port: int) -> Probe:
    reachable, why = tcp_reachable(host, port, timeout=2)
    return Probe(
        program, reachable, f"listening on {host}:{port}" if reachable else f"not listening on {host}:{port} ({why})"
    )


def probe_instance(instance: Instance) -> list[Probe]:
    """One probe per daemon the config enables, in start order."""
    probes = []
    for spec in enabled_services(instance.config, "redctl"):
        if spec.name in ("jmon", "sched"):
            probes.append(_ping(instance, spec.name))
        elif spec.name == "devdb":
            probes.append(_listening(spec.program, *listen_address(instance.config)))
    return probes
