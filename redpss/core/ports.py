"""Which ports an instance binds, and keeping instances on one server apart: a free block for a new instance,
and the check that refuses a config whose ports collide with another instance's (naming both).

An instance binds every `*_port` key of [redctl] and [rest] (except the SMTP relay's, which is a remote server),
the CFI passive range, and exa_connection's port where it runs the embedded database. A port of a disabled service
is not bound, so only enabled services collide; `redsysctl create` still gives every key its own port so that
enabling a service later cannot collide either.

Instances are laid out in blocks of BLOCK ports: the n-th block is the defaults plus n*BLOCK, so instance ports
read alike (7401, 7501, 7601: the scheduler of the first, second, third instance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redpss.core.config import Config
from redpss.core.config.ini import read_ini
from redpss.core.config.schema import SECTIONS, section_fields
from redpss.core.errors import InstanceError
from redpss.core.paths import InstancePaths, iter_instances

BLOCK = 100
LAST_PORT = 32767  # below Linux's default ephemeral range (ip_local_port_range starts at 32768)
EXASOL_DEFAULT_PORT = 8563
NOT_BOUND = frozenset({("redctl", "sendmail_smtp_port")})  # the relay RED-PSS connects to, not a listener
ENABLED_BY = {
    ("redctl", "cfi_port"): ("redctl", "cfi_enabled"),
    ("redctl", "cfi_explicit_port"): ("redctl", "cfi_enabled"),
    ("redctl", "cfi_pasv_port_start"): ("redctl", "cfi_enabled"),
    ("redctl", "mail2cmd_port"): ("redctl", "mail2cmd_enabled"),
    ("rest", "gu_port"): ("rest", "rest_enabled"),
}
PASSIVE_RANGE = (("redctl", "cfi_pasv_port_start"), ("redctl", "cfi_pasv_port_end"))

Lookup = Callable[[str, str], Any]


@dataclass(frozen=True)
class PortClaim:
    """Ports low..high (one port: low == high) claimed by one config key of one instance."""

    instance: str
    key: str  # as the operator reads it: "[redctl] sched_service_port"
    low: int
    high: int
    enabled: bool = True

    def overlaps(self, other: PortClaim) -> bool:
        return self.low <= other.high and other.low <= self.high

    def describe(self) -> str:
        return f"{self.key} = {self.low}" if self.low == self.high else f"{self.key} = {self.low}-{self.high}"


def port_keys() -> list[tuple[str, str]]:
    """(section, key) of every single-port key an instance listens on."""
    return [
        (section, field.name)
        for section in SECTIONS
        for field in section_fields(section)
        if field.name.endswith("_port") and (section, field.name) not in NOT_BOUND
    ]


def _claims(instance: str, value: Lookup) -> list[PortClaim]:
    claims = []
    for section, key in port_keys():
        switch = ENABLED_BY.get((section, key))
        port = int(value(section, key))
        enabled = port != 0 and (bool(value(*switch)) if switch else True)  # 0: a listener switched off
        claims.append(PortClaim(instance, f"[{section}] {key}", port, port, enabled))
    (section, start_key), (_, end_key) = PASSIVE_RANGE
    low, high = int(value(section, start_key)), int(value(section, end_key))
    switch = ENABLED_BY[PASSIVE_RANGE[0]]
    claims.append(PortClaim(instance, f"[{section}] {start_key}..{end_key}", low, high, bool(value(*switch))))
    if value("redctl", "devdb_enabled"):
        database = _dsn_port(str(value("DEFAULT", "exa_connection")))
        if database is not None:
            claims.append(PortClaim(instance, "[DEFAULT] exa_connection (the embedded database)", database, database))
    return claims


def _dsn_port(dsn: str) -> int | None:
    from redpss.core.net import first_address  # noqa: PLC0415 - keeps this module light for the CLIs

    address = first_address(dsn, default_port=EXASOL_DEFAULT_PORT)
    return None if address is None else address[1]


def config_claims(config: Config, instance: str) -> list[PortClaim]:
    """The ports a loaded config claims."""
    sections = {"DEFAULT": config.default, "redctl": config.redctl, "rest": config.rest}
    return _claims(instance, lambda section, key: getattr(sections[section], key))


def declared_claims(paths: InstancePaths) -> list[PortClaim] | None:
    """The ports another instance's config claims, read leniently: a config that does not load as a whole (a new
    one without its password yet) still claims its ports. None when the ports themselves cannot be read."""
    try:
        document = read_ini(paths.config_file.read_bytes())  # the reader load_config uses, problems ignored
    except OSError:
        return None
    defaults = {(section, field.name): field.default for section in SECTIONS for field in section_fields(section)}

    def value(section: str, key: str) -> Any:
        default = defaults[(section, key)]
        entry = document.sections.get(section, {}).get(key)
        raw = None if entry is None else entry.value
        if raw is None or not raw.strip():
            return default
        if isinstance(default, bool):
            return raw.strip().lower() in ("true", "yes", "1", "on")
        if isinstance(default, int):
            return int(raw.strip())
        return raw.strip()

    try:
        return _claims(paths.redenv, value)
    except ValueError:
        return None


def other_instances_claims(paths: InstancePaths) -> list[PortClaim]:
    """The claims of every instance under the same REDHOME but `paths`' own."""
    claims: list[PortClaim] = []
    for other in iter_instances(paths.redhome):
        if other.redenv != paths.redenv:
            claims.extend(declared_claims(other) or [])
    return claims


def port_collisions(config: Config, paths: InstancePaths) -> list[str]:
    """One problem per port of this config that another instance's config also claims (both enabled), naming the
    key and file on both sides; empty when the instance is apart from every other."""
    others = [c for c in other_instances_claims(paths) if c.enabled]
    problems = []
    for own in config_claims(config, paths.redenv):
        if not own.enabled:
            continue
        for theirs in others:
            if own.overlaps(theirs):
                other_file = InstancePaths(paths.redhome, theirs.instance).config_file
                problems.append(
                    f"{own.describe()} collides with instance {theirs.instance}'s {theirs.describe()} ({other_file}); "
                    "two instances on one server need their own ports (`redsysctl create` allocates a free block)"
                )
    return problems


def _shifted(claims: Iterable[PortClaim], offset: int, instance: str) -> list[PortClaim]:
    return [dataclasses.replace(c, instance=instance, low=c.low + offset, high=c.high + offset) for c in claims]


def allocate_ports(paths: InstancePaths, in_use: Iterable[int] = ()) -> dict[str, dict[str, str]]:
    """Config overrides (section -> key -> port) for a new instance: the first block of ports, counted from the
    defaults in steps of BLOCK, that overlaps no other instance's ports (enabled or not) and where nothing
    listens now. InstanceError when the port space below LAST_PORT is full."""
    defaults: dict[tuple[str, str], Any] = {
        (section, field.name): field.default for section in SECTIONS for field in section_fields(section)
    }
    template = [c for c in _claims(paths.redenv, lambda s, k: defaults[(s, k)]) if "exa_connection" not in c.key]
    taken = other_instances_claims(paths)
    busy = set(in_use)
    offset = 0
    while max(c.high for c in template) + offset <= LAST_PORT:
        candidate = _shifted(template, offset, paths.redenv)
        clash = any(c.overlaps(t) for c in candidate for t in taken)
        listening = any(c.low <= port <= c.high for c in candidate for port in busy)
        if not clash and not listening:
            overrides: dict[str, dict[str, str]] = {}
            for section, key in [*port_keys(), *PASSIVE_RANGE]:
                overrides.setdefault(section, {})[key] = str(int(defaults[(section, key)]) + offset)
            return overrides
        offset += BLOCK
    raise InstanceError(
        f"no free block of ports below {LAST_PORT} for instance {paths.redenv}: drop an instance no longer used"
    )
