"""Installs and upgrades REDSYS and the application schemas from the versioned SQL in redpss/sql.

A component (REDSYS, or APP:<schema> for each application schema) is at the highest version recorded in
REDSYS.SCHEMA_VERSION; only newer files run, so a second install is a no-op. A database newer than this RED-PSS is
refused rather than "downgraded". REDSYS registers itself as an application schema (for RED-PSS's own jobs), so the
ALL_* views always unite at least one schema; they are rebuilt whenever the set of schemas changes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from importlib import resources

import redpss
from redpss.core.db.errors import DatabaseError, DatabaseQueryError
from redpss.core.db.session import DbSession

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


class ContractError(DatabaseError):
    """REDSYS or a schema cannot be installed as asked (bad name, database newer than this RED-PSS)."""


@dataclass(frozen=True)
class SqlFile:
    version: int
    name: str
    text: str

    def statements(self, schema: str = "") -> list[str]:
        return split_statements(self.text.replace("{{SCHEMA}}", schema))


@dataclass
class InstallReport:
    applied: list[str] = field(default_factory=list)  # "REDSYS 001_redsys_core.sql", "APP:APP1 001_app_schema.sql"
    registered: list[str] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.applied and not self.registered:
            return f"REDSYS is up to date; application schemas: {', '.join(self.schemas)}"
        lines = [f"applied {name}" for name in self.applied]
        lines += [f"registered schema {name}" for name in self.registered]
        lines.append(f"application schemas: {', '.join(self.schemas)}")
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
    """The component's installed version; 0 when REDSYS (and so the version table) is not installed yet."""
    try:
        rows = session.fetchall(
            "SELECT MAX(VERSION) FROM REDSYS.SCHEMA_VERSION WHERE COMPONENT = {component}", {"component": component}
        )
    except DatabaseQueryError:
        return 0
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def registered_schemas(session: DbSession) -> list[str]:
    rows = session.fetchall("SELECT SCHEMA_NAME FROM REDSYS.APP_SCHEMAS ORDER BY SCHEMA_NAME")
    return [str(r[0]) for r in rows]


def install(session: DbSession, register: tuple[str, ...] | list[str] = ()) -> InstallReport:
    """Install or upgrade REDSYS and every registered schema, registering `register` too; report what ran."""
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
    session.commit()
    log.info("REDSYS contract: %s", report.summary().replace("\n", "; "))
    return report


def _upgrade(session: DbSession, component: str, files: list[SqlFile], schema: str, report: InstallReport) -> None:
    installed = current_version(session, component)
    newest = files[-1].version if files else 0
    if installed > newest:
        raise ContractError(
            f"{component} is at schema version {installed}, newer than RED-PSS {redpss.__version__} knows "
            f"(up to {newest}); a downgrade is refused: run the RED-PSS version that installed it, "
            "or restore the schema from a backup"
        )
    for sql_file in files:
        if sql_file.version <= installed:
            continue
        for statement in sql_file.statements(schema):
            session.execute(statement)
        session.execute(
            "INSERT INTO REDSYS.SCHEMA_VERSION (COMPONENT, VERSION, SCRIPT, REDPSS_VERSION, APPLIED_AT) "
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


def _rebuild_views(session: DbSession, schemas: list[str]) -> None:
    for view, table in UNION_VIEWS.items():
        # Schema names passed schema_name()'s identifier check, so they are safe to place in the statement.
        members = "\nUNION ALL\n".join(
            f"SELECT CAST('{name}' AS VARCHAR(128)) AS SCHEMA_NAME, t.* FROM {name}.{table} t"  # noqa: S608
            for name in schemas
        )
        session.execute(f"CREATE OR REPLACE VIEW REDSYS.{view} AS\n{members}")
