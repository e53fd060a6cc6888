"""Installs and upgrades REDSYS and the application schemas from the versioned SQL in redpss/sql.

A component (REDSYS, or APP:<schema> for each application schema) is at the highest version recorded in
REDSYS.SCHEMA_VERSION; only newer files run, so a second install is a no-op. A database newer than this RED-PSS is
refused rather than "downgraded". REDSYS registers itself as an application schema (for RED-PSS's own jobs), so the
ALL_* views always unite at least one schema; they are rebuilt whenever the set of schemas changes.

db_install also creates (or replaces) one CONNECTION object per service the database's scripts call: the address
the Exasol nodes reach this server under, the service's port, the instance's name and that service's own secret
(core.secret.service_secret: a user who may read one connection gets into that service only). The secret is in
the statement text only: a failing statement's error names the connection and never carries the text. It also
creates (or replaces) the scripts of redpss/sql/udf/scripts.py (PSS_LOG, PSS_EXEC), which read those connections.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import resources

import redpss
from redpss.core.db.errors import DatabaseError, DatabaseQueryError, mask_secrets
from redpss.core.db.session import DbSession
from redpss.core.wire.tls import TlsFiles, connection_address
from redpss.sql.udf.scripts import UDF_SCRIPTS, UdfScript

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from redpss.core.config import Config, Secret
    from redpss.core.paths import InstancePaths

log = logging.getLogger("redpss.core.db.contract")

REDSYS = "REDSYS"
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")
_FILE_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
# ALL_* view in REDSYS -> the table of each application schema it unites
UNION_VIEWS = {
    "ALL_ADM_JOBS": "ADM_JOBS",
    "ALL_ADM_WATCHER": "ADM_WATCHER",
    "ALL_ADM_JOB_LOG": "ADM_JOB_LOG",
    "ALL_ADM_WATCHER_LOG": "ADM_WATCHER_LOG",
    "ALL_ADM_WATCHER_EXEC_ERROR": "ADM_WATCHER_EXEC_ERROR",
    "ALL_LOG_MESSAGES": "LOG_MESSAGES",
}
# CONNECTION object -> the service (services registry) whose port it names; the UDFs read these by name.
SERVICE_CONNECTIONS = {
    "REDSYS_DBLS": "dbls",
    "REDSYS_JEXEC": "jexec",
    "REDSYS_SENDMAIL": "sendmail",
    "REDSYS_SENDFILE": "sendfile",
}
# The CONNECTION through which IMPORT pulls files from CFISRV: ftps://<db_callback_host>:<cfi_port>/ with CFISRV's
# account ([redctl] cfi_user, cfi_password); made when CFISRV is enabled and has its password.
CFI_CONNECTION = "REDSYS_CFI"
# The database roles of the REST API's users (redpss.rest.auth): a reader sees, an operator also changes. Both may
# log in (CREATE SESSION); the operator holds the reader role too, so a DBA grants one role per API user.
API_READER_ROLE = "REDPSS_READER"
API_OPERATOR_ROLE = "REDPSS_OPERATOR"
# What belongs to the instance rather than to the database's data (redpss.clone): a database restored from another
# one's backup gets these back from what `redctl preclone` saved. Per table of each application schema: the columns
# that identify a row and the columns the instance owns. The REST roles' memberships and REDSYS.INSTANCE_IDENTITY
# are the instance's too; the CONNECTION objects are made again from the config and the secret (service_connections).
INSTANCE_OWNED_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ADM_JOBS": (("JOB_ID",), ("ACTIVE",)),
    "ADM_WATCHER": (("WATCHER_ID",), ("ACTIVE",)),
}
# ... and the columns that must still be the same for a saved row to be put back: the ids are whoever wrote the
# definitions' to give, so the other database's job 17 may be another job than this instance's job 17
INSTANCE_OWNED_MATCH: dict[str, tuple[str, ...]] = {"ADM_JOBS": ("JOB_NAME",), "ADM_WATCHER": ("WATCHER_NAME",)}
API_ROLES = (API_READER_ROLE, API_OPERATOR_ROLE)
# The logs a clone brings along from the other database, emptied after the restore: the tables of each application
# schema, and REDSYS's own (JMON's statistics, commit markers of the other instance's runs, its daemons' states).
# Never an audit trail: only SYS may delete that.
CLONE_CLEARED_APP_TABLES = ("ADM_JOB_LOG", "ADM_WATCHER_LOG", "ADM_WATCHER_EXEC_ERROR", "LOG_MESSAGES")
CLONE_CLEARED_REDSYS_TABLES = ("ADM_JMON_LOAD", "ADM_JMON_JOBLOG", "ADM_RUN_COMMIT", "ADM_DAEMON_STATUS")
IDENTITY_TABLE = "REDSYS.INSTANCE_IDENTITY"


class ContractError(DatabaseError):
    """REDSYS or a schema cannot be installed as asked (bad name, database newer than this RED-PSS)."""


@dataclass(frozen=True)
class SqlFile:
    version: int
    name: str
    text: str

    def statements(self, schema: str = "") -> list[str]:
        return split_statements(self.text.replace("{{SCHEMA}}", schema))


@dataclass(frozen=True)
class ServiceConnection:
    """A CONNECTION object a UDF reads to reach a RED-PSS service: where (address) and who (instance, secret)."""

    name: str
    host: str
    port: int
    user: str
    secret: Secret = field(repr=False)
    tls: TlsFiles | None = None  # the service speaks TLS: the address carries the certificate to trust
    scheme: str = ""  # a URL scheme the database itself speaks (ftps for CFISRV): the address is that URL

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address keeps its port apart
        if self.scheme:
            return f"{self.scheme}://{host}:{self.port}/"
        if self.tls is not None:
            return connection_address(f"{host}:{self.port}", self.tls)  # tls://host:port?pin=... (wire.tls)
        return f"{host}:{self.port}"

    @property
    def where(self) -> str:
        """The address as reports show it: without the certificate a TLS address carries."""
        return self.address.partition("?")[0]

    def statement(self) -> str:
        """The CREATE statement; it holds the secret, so it goes to the database and nowhere else."""
        return (
            f"CREATE OR REPLACE CONNECTION {self.name} TO {_literal(self.address)} "
            f"USER {_literal(self.user)} IDENTIFIED BY {_literal(self.secret.reveal())}"
        )


@dataclass
class InstallReport:
    applied: list[str] = field(default_factory=list)  # "REDSYS 001_redsys_core.sql", "APP:APP1 001_app_schema.sql"
    registered: list[str] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)  # "REDSYS_DBLS to 10.1.2.3:7402"
    scripts: list[str] = field(default_factory=list)  # "REDSYS.PSS_LOG"
    roles: list[str] = field(default_factory=list)  # roles this run created (none when they existed)

    def summary(self) -> str:
        if not self.applied and not self.registered:
            lines = [f"REDSYS is up to date; application schemas: {', '.join(self.schemas)}"]
        else:
            lines = [f"applied {name}" for name in self.applied]
            lines += [f"registered schema {name}" for name in self.registered]
            lines.append(f"application schemas: {', '.join(self.schemas)}")
        lines += [f"connection {name}" for name in self.connections]
        lines += [f"script {name}" for name in self.scripts]
        lines += [f"created role {name}" for name in self.roles]
        return "\n".join(lines)


def schema_name(name: str) -> str:
    """An application schema name in upper case, or ContractError saying what is allowed."""
    if not _IDENTIFIER.fullmatch(name or ""):
        raise ContractError(
            f"schema name {name!r} is not valid: use letters, digits and _ (starting with a letter, at most 128)"
        )
    return name.upper()


def split_statements(text: str) -> list[str]:
    """Statements of a SQL file: `--` comment lines dropped, each statement ending with ';' at the end of a line."""
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements


def sql_files(component: str) -> list[SqlFile]:
    """The versioned files of 'redsys' or 'app', in version order."""
    folder = resources.files("redpss.sql").joinpath(component)
    files = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            files.append(SqlFile(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(files, key=lambda f: f.version)


def current_version(session: DbSession, component: str) -> int:
    """The component's installed version; 0 when REDSYS (and so the version table) is not installed yet. Any other
    failure is raised: a timeout is no empty database (it would make a pending clone restore over our own logs)."""
    try:
        rows = session.fetchall(
            "SELECT MAX(VERSION) FROM REDSYS.SCHEMA_VERSION WHERE COMPONENT = {component}", {"component": component}
        )
    except DatabaseQueryError as exc:
        if not exc.missing_object:
            raise
        return 0
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def registered_schemas(session: DbSession) -> list[str]:
    rows = session.fetchall("SELECT SCHEMA_NAME FROM REDSYS.APP_SCHEMAS ORDER BY SCHEMA_NAME")
    return [str(r[0]) for r in rows]


def service_connections(config: Config, paths: InstancePaths, secret: Secret) -> list[ServiceConnection]:
    """The CONNECTION objects of the instance: [redctl] db_callback_host, each service's port and name, and the
    service's own secret derived from the instance `secret`."""
    from redpss.core.config import Secret  # noqa: PLC0415 - as service_spec
    from redpss.core.secret import service_secret  # noqa: PLC0415 - as service_spec
    from redpss.core.services import service_spec  # noqa: PLC0415 - the registry only for db_install

    connections = []
    for name, daemon in SERVICE_CONNECTIONS.items():
        address = service_spec(daemon).address(config, paths)
        if not isinstance(address, tuple):  # DBLS and JEXEC listen on TCP; a unix socket is out of the database's reach
            raise ContractError(f"{daemon} has no TCP port in {paths.config_file}; the database cannot reach it")
        tls = TlsFiles.of(paths, daemon) if getattr(config.redctl, f"{daemon}_tls", False) else None
        connections.append(
            ServiceConnection(
                name,
                config.redctl.db_callback_host,
                address[1],
                paths.redenv,
                Secret(service_secret(secret.reveal(), daemon)),
                tls,
            )
        )
    redctl = config.redctl
    if redctl.cfi_enabled and redctl.cfi_password.reveal():
        connections.append(
            ServiceConnection(
                CFI_CONNECTION,
                redctl.db_callback_host,
                redctl.cfi_port,
                redctl.cfi_user,
                redctl.cfi_password,
                scheme="ftps",  # implicit TLS: what the database's ftps:// speaks
            )
        )
    return connections


def install(
    session: DbSession,
    register: tuple[str, ...] | list[str] = (),
    connections: Sequence[ServiceConnection] = (),
    scripts: Sequence[UdfScript] = UDF_SCRIPTS,
) -> InstallReport:
    """Install or upgrade REDSYS and every registered schema, registering `register` too, and create or replace
    `connections`; report what ran."""
    wanted = [schema_name(name) for name in register]
    report = InstallReport()
    _upgrade(session, REDSYS, sql_files("redsys"), "", report)
    known = set(registered_schemas(session))
    for name in [REDSYS, *wanted]:
        if name not in known:
            session.execute(
                "INSERT INTO REDSYS.APP_SCHEMAS (SCHEMA_NAME, REGISTERED_AT) VALUES ({name}, CURRENT_TIMESTAMP)",
                {"name": name},
            )
            known.add(name)
            if name != REDSYS:
                report.registered.append(name)
    app_files = sql_files("app")
    for name in sorted(known):
        _upgrade(session, f"APP:{name}", app_files, name, report)
    report.schemas = sorted(known)
    if report.applied or report.registered:
        _rebuild_views(session, report.schemas)
    for connection in connections:
        _create_connection(session, connection)
        report.connections.append(f"{connection.name} to {connection.where}")
    for script in scripts if connections else ():  # the scripts come with the connections they read
        _create_script(session, script)
        report.scripts.append(script.qualified)
    report.roles = _create_api_roles(session)
    session.commit()
    log.info("REDSYS contract: %s", report.summary().replace("\n", "; "))
    return report


def applied_versions(session: DbSession, component: str) -> set[int]:
    """The versions of the component's files recorded as applied (none before REDSYS is installed)."""
    try:
        rows = session.fetchall(
            "SELECT VERSION FROM REDSYS.SCHEMA_VERSION WHERE COMPONENT = {component}", {"component": component}
        )
    except DatabaseQueryError:
        return set()
    return {int(row[0]) for row in rows}


def _upgrade(session: DbSession, component: str, files: list[SqlFile], schema: str, report: InstallReport) -> None:
    # Every file not recorded runs, also one numbered below the installed version: numbers are reserved for work
    # that lands in any order, so a database at 006 still gets a 005 that ships later.
    applied = applied_versions(session, component)
    installed = max(applied, default=0)
    newest = files[-1].version if files else 0
    if installed > newest:
        raise ContractError(
            f"{component} is at schema version {installed}, newer than RED-PSS {redpss.__version__} knows "
            f"(up to {newest}); a downgrade is refused: run the RED-PSS version that installed it, "
            "or restore the schema from a backup"
        )
    for sql_file in files:
        if sql_file.version in applied:
            continue
        for statement in sql_file.statements(schema):
            session.execute(statement)
        session.execute(
            'INSERT INTO REDSYS.SCHEMA_VERSION (COMPONENT, VERSION, "SCRIPT", REDPSS_VERSION, APPLIED_AT) '
            "VALUES ({component}, {version!d}, {script}, {redpss_version}, CURRENT_TIMESTAMP)",
            {
                "component": component,
                "version": sql_file.version,
                "script": sql_file.name,
                "redpss_version": redpss.__version__,
            },
        )
        session.commit()
        report.applied.append(f"{component} {sql_file.name}")


def _create_connection(session: DbSession, connection: ServiceConnection) -> None:
    """CREATE OR REPLACE the object; a failure says which one and why, without the statement (it holds the secret)."""
    try:
        session.execute(connection.statement())
    except DatabaseError as exc:
        reason = mask_secrets(str(exc))
        if connection.secret.reveal():  # also where a server's message would quote the value without IDENTIFIED BY
            reason = reason.replace(connection.secret.reveal(), "***")
        # `from None`: the database error and its cause carry the statement text, so neither is chained to this one.
        raise ContractError(
            f"creating CONNECTION {connection.name} to {connection.where} failed: {reason} "
            "(check that the database user has the CREATE CONNECTION system privilege)"
        ) from None


def _create_api_roles(session: DbSession) -> list[str]:
    """Create the REST API's roles where missing (Exasol has no CREATE ROLE IF NOT EXISTS) and grant what they
    need; the grants are repeated on every run, which Exasol accepts, so a role damaged by hand is repaired."""
    names = (API_READER_ROLE, API_OPERATOR_ROLE)
    existing = {str(row[0]) for row in session.fetchall("SELECT ROLE_NAME FROM EXA_ALL_ROLES")}
    created = [name for name in names if name not in existing]
    try:
        for name in created:
            session.execute(f"CREATE ROLE {name}")
        session.execute(f"GRANT CREATE SESSION TO {API_READER_ROLE}, {API_OPERATOR_ROLE}")
        session.execute(f"GRANT {API_READER_ROLE} TO {API_OPERATOR_ROLE}")
    except DatabaseQueryError as exc:
        raise ContractError(
            f"creating the REST API roles {API_READER_ROLE} and {API_OPERATOR_ROLE} failed: {exc} "
            "(check that the database user has the CREATE ROLE, GRANT ANY ROLE and GRANT ANY PRIVILEGE system "
            "privileges, or create the roles as a DBA)"
        ) from None
    return created


def _create_script(session: DbSession, script: UdfScript) -> None:
    try:
        session.execute(script.statement())
    except DatabaseError as exc:
        raise ContractError(
            f"creating SCRIPT {script.qualified} failed: {exc} "
            "(check that the database user has the CREATE SCRIPT (or CREATE ANY SCRIPT) system privilege)"
        ) from None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _rebuild_views(session: DbSession, schemas: list[str]) -> None:
    for view, table in UNION_VIEWS.items():
        # Schema names passed schema_name()'s identifier check, so they are safe to place in the statement.
        members = "\nUNION ALL\n".join(
            f"SELECT CAST('{name}' AS VARCHAR(128)) AS SCHEMA_NAME, t.* FROM {name}.{table} t"  # noqa: S608
            for name in schemas
        )
        session.execute(f"CREATE OR REPLACE VIEW REDSYS.{view} AS\n{members}")
