"""The database's scripts that reach RED-PSS: one table, UDF_SCRIPTS, which db_install creates from.

Each script's body is pss_client.py (standard library only: Exasol's script container cannot import redpss)
followed by the script's own code, the part of its entry file after the SCRIPT CODE marker. A new script is one
entry here plus its entry file in this package. The statements are valid on Exasol and on devdb alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

SCHEMA = "REDSYS"
CODE_MARKER = "# ---- SCRIPT CODE ----"
_CLIENT = "pss_client.py"


@dataclass(frozen=True)
class UdfScript:
    """A PYTHON3 SCALAR script in REDSYS: its parameters and return type as written in SQL, and its entry file."""

    name: str
    parameters: str
    returns: str
    entry: str  # a file of this package; its code after CODE_MARKER follows pss_client.py in the body

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"

    def body(self) -> str:
        folder = resources.files(__package__ or "redpss.sql.udf")
        client = folder.joinpath(_CLIENT).read_text(encoding="utf-8")
        entry = folder.joinpath(self.entry).read_text(encoding="utf-8")
        _, marker, code = entry.partition(CODE_MARKER)
        if not marker:
            raise ValueError(f"{self.entry} has no line {CODE_MARKER!r} before the script's own code")
        return f"{client.rstrip()}\n\n\n# ---- {self.qualified}: {self.entry} ----{code.rstrip()}\n"

    def statement(self) -> str:
        """CREATE OR REPLACE ... AS <body>: one statement as a driver sends it (without EXAplus's `/` line)."""
        return (
            f"CREATE OR REPLACE PYTHON3 SCALAR SCRIPT {self.qualified} ({self.parameters})\n"
            f"RETURNS {self.returns} AS\n{self.body()}"
        )


UDF_SCRIPTS = (
    UdfScript(
        "PSS_LOG",
        "schema_name VARCHAR(128) UTF8, log_level VARCHAR(10) UTF8, message VARCHAR(2000000) UTF8",
        "DECIMAL(1,0)",
        "pss_log.py",
    ),
    UdfScript(
        "PSS_EXEC", "action_name VARCHAR(1024) UTF8, args VARCHAR(2000000) UTF8", "VARCHAR(2000000) UTF8", "pss_exec.py"
    ),
    UdfScript(
        "PSS_MAIL",
        "schema_name VARCHAR(128) UTF8, recipients VARCHAR(2000000) UTF8, subject VARCHAR(998) UTF8, "
        "body VARCHAR(2000000) UTF8, attachments VARCHAR(2000000) UTF8",
        "VARCHAR(100) UTF8",
        "pss_mail.py",
    ),
    UdfScript(
        "PSS_SENDFILE",
        "schema_name VARCHAR(128) UTF8, source_name VARCHAR(300) UTF8, where_condition VARCHAR(10000) UTF8, "
        "file_format VARCHAR(10) UTF8, recipients VARCHAR(2000000) UTF8, sftp_target VARCHAR(64) UTF8",
        "VARCHAR(100) UTF8",
        "pss_sendfile.py",
    ),
)
