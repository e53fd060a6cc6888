"""Every key of red_params.conf, its kind, default and meaning: the single source for parsing, checking and the
sample file. A field's metadata holds its Kind and doc; REQUIRED marks a key without a default.

The sections are Records (redpss.core.record), not dataclasses: every command-line tool loads this schema, and
importing dataclasses and building the sections with it was a large share of `redctl status`'s start-up.
"""

from __future__ import annotations

from redpss.core.config.kinds import (
    ADDRESSES,
    BOOLEAN,
    DAYS,
    DSN,
    HOST,
    LOG_LEVEL,
    MEGABYTES,
    OPTIONAL_PORT,
    POOL_SIZE,
    PORT,
    RUNNING,
    SECONDS,
    SECRET,
    SMTP_ENCRYPTION,
    SUFFIX,
    TEXT,
    WORKERS,
    Kind,
    Secret,
)
from redpss.core.record import Field, Record, field, fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def setting(kind: Kind, default: Any, doc: str) -> Any:
    """A config key: its kind, its default (REQUIRED for none) and the sentence the sample file shows."""
    return field(default=default, metadata={"kind": kind, "doc": doc})


class DefaultSettings(Record):
    """[DEFAULT]: the database this instance is bound to, and the log level the other sections inherit."""

    log_level: str = setting(LOG_LEVEL, "INFO", "log level: DEBUG, INFO, WARN, ERROR, ALERT")
    exa_connection: str = setting(DSN, "localhost:8563", "Exasol connect string (DSN), host[/FINGERPRINT]:port")
    exa_username: str = setting(TEXT, "REDSYS", "database user of RED-PSS")
    exa_password: Secret = setting(SECRET, REQUIRED, "password of the database user")
    exa_dbname: str = setting(TEXT, "EXA_DB", "database name, shown in status output and checked on connect")
    exa_encryption: bool = setting(BOOLEAN, True, "TLS to the database (true unless the database has no TLS)")
    exa_ca_file: str = setting(TEXT, "", "CA bundle to verify the database certificate (empty: fingerprint/none)")


class RedctlSettings(Record):
    """[redctl]: the server processes of the instance."""

    sched_service_port: int = setting(PORT, 7401, "internal service port of the scheduler master (loopback)")
    sched_default_pool_size: int = setting(POOL_SIZE, 4, "number of workers in the default pool")
    sched_loader_pool_size: int = setting(POOL_SIZE, 2, "number of workers in the loader pool")
    sched_action_pool_size: int = setting(POOL_SIZE, 2, "number of workers in the action pool")
    jmon_poll_interval: float = setting(SECONDS, 10.0, "seconds between reads of the job and watcher definitions")
    jmon_stats_interval: float = setting(SECONDS, 60.0, "seconds between rows of ADM_JMON_LOAD / ADM_JMON_JOBLOG")
    sendmail_host: str = setting(HOST, "127.0.0.1", "interface for the internal service")
    sendmail_port: int = setting(PORT, 7404, "port for the internal service")
    sendmail_smtp_host: str = setting(HOST, "localhost", "host of the target SMTP server (mail relay)")
    sendmail_smtp_port: int = setting(PORT, 1025, "port of the target SMTP server")
    sendmail_smtp_user: str = setting(TEXT, "", "SASL auth username (empty: no authentication)")
    sendmail_smtp_pass: Secret = setting(SECRET, Secret(""), "SASL auth password")
    sendmail_smtp_from: str = setting(TEXT, "redsys@localhost", "sender mail address")
    sendmail_smtp_encr: str = setting(SMTP_ENCRYPTION, "STARTTLS", "transport encryption: STARTTLS, TLS, PLAIN")
    sendmail_smtp_ca_file: str = setting(
        TEXT, "", "CA bundle that verifies the relay's certificate (empty: the system's trusted CAs)"
    )
    sendmail_smtp_verify: bool = setting(
        BOOLEAN, True, "verify the relay's certificate and host name: true/false (false is logged at WARNING)"
    )
    sendmail_retry_delay: float = setting(
        SECONDS, 30.0, "seconds before the first retry of a mail the relay did not take (doubling, see below)"
    )
    sendmail_retry_max_delay: float = setting(SECONDS, 1800.0, "longest wait between two tries of one mail")
    sendmail_alert_age: float = setting(
        SECONDS, 14400.0, "a mail neither sent nor dead after this many seconds raises one ALERT"
    )
    sendfile_host: str = setting(HOST, "127.0.0.1", "interface for the internal service")
    sendfile_port: int = setting(PORT, 7405, "port for the internal service")
    dbls_host: str = setting(HOST, "127.0.0.1", "interface for the internal service")
    dbls_port: int = setting(PORT, 7402, "port for the internal service")
    jexec_host: str = setting(HOST, "127.0.0.1", "interface for the internal service")
    jexec_port: int = setting(PORT, 7403, "port for the internal service")
    dbls_tls: bool = setting(
        BOOLEAN, False, "TLS on the DBLS port: true/false (certificate etc/ssl/DBLS/dbls.crt, key dbls.key)"
    )
    jexec_tls: bool = setting(
        BOOLEAN, False, "TLS on the JEXEC port: true/false (certificate etc/ssl/JEXEC/jexec.crt, key jexec.key)"
    )
    jexec_output_limit_mb: int = setting(
        MEGABYTES,
        100,
        "megabytes of one run's output kept in log/JEXEC/<run_id>.log; beyond them the output goes to the journal only",
    )
    jexec_max_running: int = setting(
        RUNNING,
        16,
        "actions JEXEC runs at once (SCHED's action pool and calls from the database together); one more is refused",
    )
    db_callback_host: str = setting(
        HOST,
        "127.0.0.1",
        "address under which the Exasol nodes reach DBLS and JEXEC (set it to this server's address on the Exasol "
        "network; db_install writes it into the REDSYS_DBLS/REDSYS_JEXEC connections)",
    )
    cfi_enabled: bool = setting(BOOLEAN, True, "enable CFISRV (and with it JSON2CSV and PARQ2CSV): true/false")
    cfi_host: str = setting(HOST, "127.0.0.1", "interface of the FTPS server")
    cfi_port: int = setting(PORT, 7421, "port of the FTPS server, implicit TLS (what the database's ftps:// uses)")
    cfi_explicit_port: int = setting(
        OPTIONAL_PORT, 7422, "port of the FTPS server for explicit TLS (AUTH TLS) clients; 0 switches it off"
    )
    cfi_user: str = setting(TEXT, "redpss_cfi", "the FTPS account; db_install puts it into the REDSYS_CFI connection")
    cfi_password: Secret = setting(
        SECRET, Secret(""), "password of the FTPS account (required when cfi_enabled; redsysctl create makes one)"
    )
    cfi_pasv_port_start: int = setting(PORT, 7450, "start of the passive port range")
    cfi_pasv_port_end: int = setting(PORT, 7469, "end of the passive port range")
    json2csv_json_suffix: str = setting(SUFFIX, ".json", "suffix of incoming JSON files")
    json2csv_csv_suffix: str = setting(SUFFIX, ".csv", "suffix of converted CSV files")
    json2csv_retention: int = setting(DAYS, 7, "retention (in days) of JSON input files")
    parq2csv_parq_suffix: str = setting(SUFFIX, ".parquet", "suffix of incoming Parquet files")
    parq2csv_csv_suffix: str = setting(SUFFIX, ".csv", "suffix of converted CSV files")
    parq2csv_retention: int = setting(DAYS, 7, "retention (in days) of Parquet input files")
    ingest_stable_seconds: float = setting(
        SECONDS,
        5.0,
        "a file in data/input is taken once its size and mtime stayed unchanged this long (seconds), never while open"
        " for writing",
    )
    mail2cmd_enabled: bool = setting(BOOLEAN, False, "enable MAIL2CMD: true/false")
    mail2cmd_host: str = setting(HOST, "127.0.0.1", "interface of the MAIL2CMD SMTP listener")
    mail2cmd_port: int = setting(PORT, 7406, "port of the MAIL2CMD SMTP listener")
    devdb_enabled: bool = setting(
        BOOLEAN, False, "run the embedded database (redpss-devdb) on exa_connection's port (instances without Exasol)"
    )
    log_retention: int = setting(DAYS, 30, "log retention (in days) for all server, job and DB logs; 0 keeps all")
    log_level: str = setting(LOG_LEVEL, REQUIRED, "log level for all server processes (default: [DEFAULT])")


class RedinfoSettings(Record):
    """[redinfo]: the redinfo command."""

    log_level: str = setting(LOG_LEVEL, REQUIRED, "log level for redinfo (default: [DEFAULT])")


class RestSettings(Record):
    """[rest]: the REST API under gunicorn (HTTPS only)."""

    rest_enabled: bool = setting(BOOLEAN, False, "start the REST service on startup: true/false")
    exa_username: str = setting(TEXT, "REDREST", "technical user (TU) for the base API connection")
    exa_password: Secret = setting(SECRET, Secret(""), "TU password (required when rest_enabled)")
    log_level: str = setting(LOG_LEVEL, REQUIRED, "log level for the API (default: [DEFAULT])")
    gu_host: str = setting(HOST, "127.0.0.1", "gunicorn listener interface")
    gu_port: int = setting(PORT, 7443, "gunicorn listener port (HTTPS)")
    gu_workers: int = setting(WORKERS, 2, "number of gunicorn workers")
    login_cache_seconds: float = setting(
        SECONDS,
        30.0,
        "how long the API and the console trust a login the database accepted before asking it again (seconds): a"
        " dropped user, a changed password or a revoked role takes effect within this time",
    )
    trusted_proxies: str = setting(
        ADDRESSES, "", "reverse proxies (IP addresses, comma separated) whose X-Forwarded-For names the client"
    )


SECTIONS: dict[str, type[Record]] = {
    "DEFAULT": DefaultSettings,
    "redctl": RedctlSettings,
    "redinfo": RedinfoSettings,
    "rest": RestSettings,
}

# Keys other sections take from [DEFAULT] when they do not set them.
INHERITED_FROM_DEFAULT = frozenset({"log_level"})

# The description spells MAIL2CMD's keys mail2csv_*; both spellings are read.
KEY_ALIASES = {
    ("redctl", "mail2csv_enabled"): "mail2cmd_enabled",
    ("redctl", "mail2csv_host"): "mail2cmd_host",
    ("redctl", "mail2csv_port"): "mail2cmd_port",
}


class Config(Record):
    """The whole validated red_params.conf of one instance."""

    path: str
    default: DefaultSettings
    redctl: RedctlSettings
    redinfo: RedinfoSettings
    rest: RestSettings


def section_fields(section: str) -> list[Field]:
    """The keys of `section` in order, each with its default and metadata (kind, doc)."""
    return list(fields(SECTIONS[section]))
