"""Asking an instance's daemons directly whether they serve: how `redctl status` works without systemd
(under `redctl start_trace`), where there are no units to ask. Addresses and the kind of probe come from the
services registry; no daemon module is imported.

The daemons that listen are pinged at the same time, one thread each, so a status costs the slowest answer rather
than the sum, and daemons that hang (stopped with SIGSTOP, overloaded) cost PING_TIMEOUT once, not once each.
"""

from __future__ import annotations

from pathlib import Path

from redpss.core.net import tcp_reachable
from redpss.core.record import Record
from redpss.core.services import Address, ServiceSpec, enabled_services
from redpss.ops.instance import Instance, NotRunning

TCP_PROBE_TIMEOUT = 2.0
PING_TIMEOUT = 5.0  # a daemon that takes longer to answer a ping is reported as not answering


class Probe(Record):
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
    """Ask a daemon that listens whether it serves (hello and ping with the instance secret)."""
    from redpss.core.wire import BlockingClient, WireError  # noqa: PLC0415 - the wire only when something listens

    try:
        client: BlockingClient = instance.connect(spec.name, timeout=PING_TIMEOUT)
        with client:
            reply = client.request("ping")
    except (NotRunning, WireError) as exc:
        return Probe(spec.program, False, str(exc).split(" (")[0])
    return Probe(spec.program, True, f"answering (pid {reply.get('pid', '?')})")


def _not_running(instance: Instance, spec: ServiceSpec) -> Probe:
    return Probe(spec.program, False, f"{spec.name.upper()} of instance {instance.paths.redenv} is not running")


def _listening(instance: Instance, spec: ServiceSpec) -> Probe:
    address = spec.address(instance.config, instance.paths)
    if not isinstance(address, tuple):
        return Probe(spec.program, False, f"no TCP address in {instance.paths.config_file}")
    host, port = address
    reachable, why = tcp_reachable(host, port, timeout=TCP_PROBE_TIMEOUT)
    detail = f"listening on {host}:{port}" if reachable else f"not listening on {host}:{port} ({why})"
    return Probe(spec.program, reachable, detail)


def _ping_all(instance: Instance, specs: list[ServiceSpec]) -> list[Probe]:
    """The pings of `specs`, at the same time when there are several (a thread each)."""
    if len(specs) < 2:
        return [_ping(instance, spec) for spec in specs]
    import threading  # noqa: PLC0415 - only when two daemons or more listen

    found: list[Probe | None] = [None] * len(specs)
    failures: list[BaseException] = []

    def ask(index: int) -> None:
        try:
            found[index] = _ping(instance, specs[index])
        except BaseException as exc:  # raised below, in the caller's thread, as a serial probe would have
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(i,), name=f"ping {s.name}") for i, s in enumerate(specs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [probe for probe in found if probe is not None]


def probe_instance(instance: Instance, only: frozenset[str] | None = None) -> list[Probe]:
    """One probe per daemon the config enables, in start order.

    Whether anything listens is asked first, one daemon after the other (a refused connect or a missing socket
    answers at once, so a stopped instance costs no thread); the daemons that listen are then pinged in parallel.
    `only`: the names of the daemons to ask (default: all).
    """
    specs = [
        s for s in enabled_services(instance.config, "redctl") if s.probe != "none" and (only is None or s.name in only)
    ]
    found: dict[str, Probe] = {}
    listening: list[ServiceSpec] = []
    for spec in specs:
        if spec.probe == "tcp":
            found[spec.name] = _listening(instance, spec)
        elif _nobody_there(spec.address(instance.config, instance.paths)):
            found[spec.name] = _not_running(instance, spec)
        else:
            listening.append(spec)
    found.update(zip((s.name for s in listening), _ping_all(instance, listening), strict=True))
    return [found[spec.name] for spec in specs]
