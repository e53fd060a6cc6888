"""Where an instance lives: REDHOME, REDENV, REDENV_HOME and the instance tree.

The tree is the one of the RED-PSS description (bin, etc, lib, log, tmp, data/{input,work,error,archive}) plus cmd/
for JEXEC scripts, log/DB and log/REST, and etc/ssl/{REST,CFI} for certificates. One function creates it, so the
modes are decided in one place and every CLI that builds an instance builds the same thing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from redpss.core.errors import InstanceError
from redpss.core.record import Record

DEFAULT_REDHOME = Path("/app/redsys")

# Instance names end up in unit names (redpss-jmon@TST1), folder names and in the sFTP user names
# redftp_<instance>_<user>, which Linux caps at 32 characters: 8 characters leave room for the user part.
INSTANCE_NAME_MAX = 8
_INSTANCE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def validate_instance_name(name: str) -> str:
    """Return the instance name in upper case, or raise InstanceError saying what is allowed."""
    allowed = (
        f"an instance name is 1 to {INSTANCE_NAME_MAX} letters and digits starting with a letter, e.g. TST1 or DEV1"
    )
    if not name:
        raise InstanceError(f"no instance given: set REDENV or name the instance ({allowed})")
    if len(name) > INSTANCE_NAME_MAX:
        raise InstanceError(f"instance name {name!r} is {len(name)} characters long; {allowed}")
    if not _INSTANCE_RE.fullmatch(name):
        raise InstanceError(f"instance name {name!r} is not valid; {allowed}")
    return name.upper()


def redhome_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """REDHOME from the environment, /app/redsys when unset (tests and the demo point it at a temporary folder)."""
    env = os.environ if environ is None else environ
    value = env.get("REDHOME", "").strip()
    return Path(value) if value else DEFAULT_REDHOME


# below data/: SENDFILE's exports, which CFISRV never serves and SENDMAIL attaches for RED-PSS's own clients only
SENDFILE_WORK = Path("work", "sendfile")


class InstancePaths(Record):
    """Every path of one instance, derived from REDHOME and the instance name."""

    redhome: Path
    redenv: str  # upper case, e.g. TST1

    @classmethod
    def for_instance(cls, name: str, redhome: Path | None = None) -> InstancePaths:
        return cls(
            redhome=redhome if redhome is not None else redhome_from_env(),
            redenv=validate_instance_name(name),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, name: str | None = None) -> InstancePaths:
        """The instance named explicitly, else the one in REDENV."""
        env = os.environ if environ is None else environ
        return cls.for_instance(name if name else env.get("REDENV", ""), redhome_from_env(env))

    @property
    def folder_name(self) -> str:
        return self.redenv.lower()

    @property
    def home(self) -> Path:
        """REDENV_HOME."""
        return self.redhome / "env" / self.folder_name

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    @property
    def etc(self) -> Path:
        return self.home / "etc"

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    @property
    def log(self) -> Path:
        return self.home / "log"

    @property
    def log_db(self) -> Path:
        return self.home / "log" / "DB"

    @property
    def log_int(self) -> Path:
        """Interface logs: the file-transfer services' own logs (the description's log/int)."""
        return self.home / "log" / "int"

    @property
    def log_rest(self) -> Path:
        return self.home / "log" / "REST"

    @property
    def devdb_dir(self) -> Path:
        """Where the embedded database keeps its DuckDB file, for instances with devdb_enabled."""
        return self.home / "lib" / "devdb"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def cmd(self) -> Path:
        return self.home / "cmd"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def data_input(self) -> Path:
        return self.home / "data" / "input"

    @property
    def data_work(self) -> Path:
        return self.home / "data" / "work"

    @property
    def sendfile_work(self) -> Path:
        """SENDFILE's exports while they are sent (one folder per request)."""
        return self.home / "data" / SENDFILE_WORK

    @property
    def data_error(self) -> Path:
        return self.home / "data" / "error"

    @property
    def data_archive(self) -> Path:
        return self.home / "data" / "archive"

    @property
    def ssl_rest(self) -> Path:
        return self.home / "etc" / "ssl" / "REST"

    @property
    def ssl_cfi(self) -> Path:
        return self.home / "etc" / "ssl" / "CFI"

    @property
    def config_file(self) -> Path:
        return self.home / "etc" / "red_params.conf"

    @property
    def suspend_marker(self) -> Path:
        """Present while the instance is suspended (`redctl start -S`, `redctl suspend`); survives restarts."""
        return self.home / ".suspended"

    @property
    def autostart_marker(self) -> Path:
        return self.home / ".autostart"

    @property
    def version_record(self) -> Path:
        """The RED-PSS version series the instance runs, e.g. 0.1 (see redpss.cli.redsysctl.versions)."""
        return self.home / ".version"

    def log_file(self, service: str) -> Path:
        """The service's own log file; redctl and JMON share redctl.log as the description says."""
        name = "redctl" if service in ("redctl", "jmon") else service
        return self.log / f"{name}.log"

    def db_log_dir(self, schema: str) -> Path:
        return self.log_db / schema.upper()

    def exists(self) -> bool:
        return self.home.is_dir()

    def require(self) -> InstancePaths:
        """Self, or InstanceError naming the missing folder and the command that creates it."""
        if not self.exists():
            raise InstanceError(
                f"instance {self.redenv} does not exist: {self.home} is missing "
                f"(create it with: redsysctl create {self.redenv})"
            )
        return self

    def environment(self) -> dict[str, str]:
        """The variables a process of this instance runs with."""
        return {"REDHOME": str(self.redhome), "REDENV": self.redenv, "REDENV_HOME": str(self.home)}


# (path attribute, mode): directories first-to-last so parents exist before children.
# tmp holds the control socket and preclone data, etc/ssl the private keys: owner only.
_TREE: tuple[tuple[str, int], ...] = (
    ("home", 0o750),
    ("bin", 0o750),
    ("etc", 0o750),
    ("ssl_rest", 0o700),
    ("ssl_cfi", 0o700),
    ("lib", 0o750),
    ("log", 0o750),
    ("log_db", 0o750),
    ("log_int", 0o750),
    ("log_rest", 0o750),
    ("tmp", 0o700),
    ("cmd", 0o750),
    ("data", 0o750),
    ("data_input", 0o750),
    ("data_work", 0o750),
    ("data_error", 0o750),
    ("data_archive", 0o750),
)


def create_instance_tree(paths: InstancePaths) -> list[Path]:
    """Create the instance tree with its modes (idempotent); return the folders that were new."""
    created: list[Path] = []
    for attribute, mode in _TREE:
        folder: Path = getattr(paths, attribute)
        if not folder.is_dir():
            folder.mkdir(parents=True)
            created.append(folder)
        folder.chmod(mode)  # explicit: the umask must not decide who can read private keys
    ssl_parent = paths.etc / "ssl"
    ssl_parent.chmod(0o750)
    return created


def iter_instances(redhome: Path) -> Iterator[InstancePaths]:
    """Every instance under REDHOME/env whose folder name is a valid instance name, sorted."""
    env_dir = redhome / "env"
    if not env_dir.is_dir():
        return
    for entry in sorted(env_dir.iterdir()):
        if entry.is_dir() and _INSTANCE_RE.fullmatch(entry.name) and len(entry.name) <= INSTANCE_NAME_MAX:
            yield InstancePaths(redhome=redhome, redenv=entry.name.upper())
