"""Which daemons an instance runs and how to reach them: the one list that units, redctl, restctl, redinfo and
start_trace read.

A daemon appears here when it lands; its unit is units/redpss-<name>@.service and its program redpss-<name>.
Optional daemons are started only when their config key enables them. Clients take a daemon's address and the way
to ask whether it serves from here (never from the daemon's own modules, which would drag its dependencies, such as
DuckDB, into every command-line tool).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from redpss.core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    import ssl
    from typing import Literal

    from redpss.core.config import Config
    from redpss.core.paths import InstancePaths

Address = tuple[str, int] | Path  # TCP (host, port) or a unix socket path
EXASOL_DEFAULT_PORT = 8563  # what pyexasol assumes when a DSN names no port


class ServiceSpec(Record):
    name: str  # e.g. "jmon": program redpss-jmon, unit redpss-jmon@<INSTANCE>.service
    description: str
    enabled: Callable[[Config], bool]
    module: str  # what `python -m` runs (redctl start_trace); takes --instance like the program
    # Seconds the daemon may drain on SIGTERM before it forces; its unit's TimeoutStopSec= is derived from it.
    drain_timeout: float = 30.0
    controlled_by: Literal["redctl", "restctl"] = "redctl"
    # Where the daemon listens, from the instance's config and tree; None: it listens nowhere a client needs.
    address: Callable[[Config, InstancePaths], Address | None] = lambda config, paths: None
    # How to ask whether it serves: "ping" over the wire protocol (with the instance secret), "tcp" a connect.
    probe: Literal["ping", "tcp", "none"] = "none"
    # The TLS context a local client uses for `address` (None: plain TCP); StartupError naming a missing file.
    client_tls: Callable[[Config, InstancePaths], ssl.SSLContext | None] = lambda config, paths: None

    @property
    def program(self) -> str:
        return f"redpss-{self.name}"

    def unit(self, instance: str) -> str:
        return f"redpss-{self.name}@{instance}.service"


def _always(config: Config) -> bool:
    return True


def database_address(config: Config, paths: InstancePaths) -> tuple[str, int] | None:
    """Where the embedded database listens: exa_connection's first host and port (None when it does not parse)."""
    from redpss.core.net import first_address  # noqa: PLC0415 - keeps the registry free of imports

    address = first_address(config.default.exa_connection, default_port=EXASOL_DEFAULT_PORT)
    if address is None:
        return None
    host, port = address
    return ("127.0.0.1" if host == "localhost" else host), port


def sched_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """SCHED's wire service: loopback only, on [redctl] sched_service_port."""
    return "127.0.0.1", config.redctl.sched_service_port


def _reachable(host: str) -> str:
    """The address a local client connects to for a bind interface (the wildcard means every local address)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "localhost") else host


def dbls_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """DBLS's wire service on [redctl] dbls_host:dbls_port (the database's scripts send their logs there)."""
    return _reachable(config.redctl.dbls_host), config.redctl.dbls_port


def jexec_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """JEXEC's wire service on [redctl] jexec_host:jexec_port (SCHED's ACTION jobs and PSS_EXEC ask it)."""
    return _reachable(config.redctl.jexec_host), config.redctl.jexec_port


def dbls_client_tls(config: Config, paths: InstancePaths) -> ssl.SSLContext | None:
    """With [redctl] dbls_tls: a context that verifies DBLS's certificate (redpss.core.wire.tls)."""
    if not config.redctl.dbls_tls:
        return None
    from redpss.core.wire.tls import service_client_context  # noqa: PLC0415 - ssl only where TLS is on

    return service_client_context(paths, "DBLS")


def jexec_client_tls(config: Config, paths: InstancePaths) -> ssl.SSLContext | None:
    """With [redctl] jexec_tls: a context that verifies JEXEC's certificate (redpss.core.wire.tls)."""
    if not config.redctl.jexec_tls:
        return None
    from redpss.core.wire.tls import service_client_context  # noqa: PLC0415 - ssl only where TLS is on

    return service_client_context(paths, "JEXEC")


def sendmail_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """SENDMAIL's wire service on [redctl] sendmail_host:sendmail_port (PSS_MAIL, SCHED's alerts, SENDFILE)."""
    return _reachable(config.redctl.sendmail_host), config.redctl.sendmail_port


def sendfile_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """SENDFILE's wire service on [redctl] sendfile_host:sendfile_port (PSS_SENDFILE, SCHED's SENDFILE jobs)."""
    return _reachable(config.redctl.sendfile_host), config.redctl.sendfile_port


def mail2cmd_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """MAIL2CMD's SMTP listener on [redctl] mail2cmd_host:mail2cmd_port."""
    return _reachable(config.redctl.mail2cmd_host), config.redctl.mail2cmd_port


def cfi_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """CFISRV's implicit FTPS listener on [redctl] cfi_host:cfi_port (the database's ftps:// connects there)."""
    return _reachable(config.redctl.cfi_host), config.redctl.cfi_port


def rest_address(config: Config, paths: InstancePaths) -> tuple[str, int]:
    """The REST API's HTTPS listener on [rest] gu_host:gu_port."""
    return _reachable(config.rest.gu_host), config.rest.gu_port


def jmon_address(config: Config, paths: InstancePaths) -> Path:
    """JMON's control socket in the instance's private tmp/ (mode 0600)."""
    return paths.tmp / "jmon.sock"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "devdb",
        "embedded database (Exasol protocol over DuckDB)",
        lambda c: c.redctl.devdb_enabled,
        "redpss.devdb",
        drain_timeout=15.0,
        address=database_address,
        probe="tcp",
    ),
    # The daemons SCHED's jobs use (JEXEC for ACTION, SENDMAIL for alerts, SENDFILE, CFISRV for LOAD) start before
    # SCHED and so stop after it: runs that finish during SCHED's drain still find them serving.
    ServiceSpec(
        "dbls",
        "database log server",
        _always,
        "redpss.dbls.service",
        drain_timeout=15.0,
        address=dbls_address,
        probe="ping",
        client_tls=dbls_client_tls,
    ),
    # JEXEC lets running actions finish when stopped, like SCHED; longer ones are killed with their process group.
    ServiceSpec(
        "jexec",
        "job executor (scripts in cmd/)",
        _always,
        "redpss.jexec.service",
        drain_timeout=120.0,
        address=jexec_address,
        probe="ping",
        client_tls=jexec_client_tls,
    ),
    # SENDMAIL lets a relay round in progress finish (each SMTP reply within 30 s); what is left stays spooled.
    ServiceSpec(
        "sendmail",
        "mail spool and relay",
        _always,
        "redpss.mail.service",
        drain_timeout=45.0,
        address=sendmail_address,
        probe="ping",
    ),
    # SENDFILE lets the export in progress finish (a large one takes minutes); queued requests stay spooled.
    ServiceSpec(
        "sendfile",
        "exports tables and views to CSV or Parquet, delivered by mail or sFTP",
        _always,
        "redpss.sendfile.service",
        drain_timeout=300.0,
        address=sendfile_address,
        probe="ping",
    ),
    # CFISRV lets transfers under way finish when stopped; a database IMPORT of a large file may take a while.
    ServiceSpec(
        "cfi",
        "FTPS server over the data tree (CFISRV)",
        lambda c: c.redctl.cfi_enabled,
        "redpss.cfi.service",
        drain_timeout=60.0,
        address=cfi_address,
        probe="tcp",
    ),
    # JSON2CSV and PARQ2CSV run with CFISRV; stopped, they finish the file in progress (a large one takes minutes).
    ServiceSpec(
        "json2csv",
        "converts JSON files in data/input to CSV",
        lambda c: c.redctl.cfi_enabled,
        "redpss.convert.json2csv",
        drain_timeout=120.0,
    ),
    ServiceSpec(
        "parq2csv",
        "converts Parquet files in data/input to CSV",
        lambda c: c.redctl.cfi_enabled,
        "redpss.convert.parq2csv",
        drain_timeout=120.0,
    ),
    # SCHED waits for running jobs; two minutes covers a load finishing, longer ones are handed back as INTERRUPTED.
    ServiceSpec(
        "sched",
        "scheduler master and worker pools",
        _always,
        "redpss.sched.service",
        drain_timeout=120.0,
        address=sched_address,
        probe="ping",
    ),
    ServiceSpec(
        "jmon", "job monitor", _always, "redpss.jmon.service", drain_timeout=15.0, address=jmon_address, probe="ping"
    ),
    # MAIL2CMD (optional): operators' commands by mail; a command under way finishes when stopped.
    ServiceSpec(
        "mail2cmd",
        "runs allow-listed commands mailed by allow-listed senders",
        lambda c: c.redctl.mail2cmd_enabled,
        "redpss.mail.mail2cmd",
        drain_timeout=30.0,
        address=mail2cmd_address,
        probe="tcp",
    ),
    # The REST API (gunicorn): started and stopped by restctl where [rest] rest_enabled; requests drain for 15 s.
    ServiceSpec(
        "rest",
        "REST API (gunicorn, HTTPS only)",
        lambda c: c.rest.rest_enabled,
        "redpss.rest.server",
        drain_timeout=15.0,
        controlled_by="restctl",
        address=rest_address,
        probe="tcp",
    ),
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
