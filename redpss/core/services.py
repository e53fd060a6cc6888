"""Which daemons an instance runs: the one list that units, redctl, restctl, redinfo and start_trace read.

A daemon appears here when it lands; its unit is units/redpss-<name>@.service and its program redpss-<name>.
Optional daemons are started only when their config key enables them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from redpss.core.config import Config


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # e.g. "jmon": program redpss-jmon, unit redpss-jmon@<INSTANCE>.service
    description: str
    enabled: Callable[[Config], bool]
    module: str  # what `python -m` runs (redctl start_trace); takes --instance like the program
    # Seconds the daemon may drain on SIGTERM before it forces; its unit's TimeoutStopSec= is derived from it.
    drain_timeout: float = 30.0
    controlled_by: Literal["redctl", "restctl"] = "redctl"

    @property
    def program(self) -> str:
        return f"redpss-{self.name}"

    def unit(self, instance: str) -> str:
        return f"redpss-{self.name}@{instance}.service"


def _always(config: Config) -> bool:
    return True


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "devdb",
        "embedded database (Exasol protocol over DuckDB)",
        lambda c: c.redctl.devdb_enabled,
        "redpss.devdb",
        drain_timeout=15.0,
    ),
    # SCHED waits for running jobs; two minutes covers a load finishing, longer ones are handed back as INTERRUPTED.
    ServiceSpec("sched", "scheduler master and worker pools", _always, "redpss.sched.service", drain_timeout=120.0),
    ServiceSpec("jmon", "job monitor", _always, "redpss.jmon.service", drain_timeout=15.0),
)


def service_spec(name: str) -> ServiceSpec:
    """The spec of daemon `name`; KeyError for an unknown one."""
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def instance_target(instance: str) -> str:
    """The unit that groups all of an instance's daemons (stopping it stops them all)."""
    return f"redpss@{instance}.target"


def enabled_services(config: Config, controlled_by: str | None = None) -> list[ServiceSpec]:
    """The daemons this config runs, in start order (the database first when it is embedded)."""
    return [s for s in SERVICES if s.enabled(config) and (controlled_by is None or s.controlled_by == controlled_by)]


def journal_command(instance: str, units: Sequence[str] = ()) -> str:
    """The journalctl command an operator runs for an instance's daemons, one that works on systemd 239 and 252.

    Named units are listed one by one (works even before a unit ever logged). The whole instance is the glob WITH
    its .service suffix: journalctl does not add a suffix to a glob, so 'redpss-*@TST1' matches no unit and
    journalctl fails with "No data available".
    """
    if units:
        return "journalctl " + " ".join(f"-u {unit}" for unit in units)
    return f"journalctl -u 'redpss-*@{instance}.service'"
