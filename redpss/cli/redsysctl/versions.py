"""Installed RED-PSS versions side by side, and the version each instance runs.

An RPM install keeps each version series in its own virtualenv, $REDHOME/lib/<series>/ (e.g. /app/redsys/lib/0.1),
as PGDG keeps postgresql13 beside postgresql16. An instance records the series it runs in $REDENV_HOME/.version;
its bin/ holds links to the launcher $REDHOME/bin/redpss-launch, which reads that record and runs the program from
that series. Installing a new series therefore moves no instance; `redsysctl move INSTANCE SERIES` rewrites the
record (one atomic rename) and restarts the instance if it ran. An installation that is not under $REDHOME/lib (a
development venv, the tests) keeps the older scheme: bin/ links straight into that venv, and there is no record.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

from redpss.core.errors import InstanceError
from redpss.core.paths import InstancePaths

LAUNCHER = "redpss-launch"  # in $REDHOME/bin, from the repository's bin/
_SERIES_RE = re.compile(r"[0-9]+(\.[0-9]+)*")


def series_key(series: str) -> tuple[int, ...]:
    return tuple(int(part) for part in series.split("."))


def installed(redhome: Path) -> dict[str, Path]:
    """series -> virtualenv, for every version installed under $REDHOME/lib, oldest first."""
    lib = redhome / "lib"
    found = {}
    if lib.is_dir():
        for venv in lib.iterdir():
            if _SERIES_RE.fullmatch(venv.name) and (venv / "bin" / "python").exists():
                found[venv.name] = venv
    return dict(sorted(found.items(), key=lambda item: series_key(item[0])))


def running_series(redhome: Path) -> str | None:
    """The series of the running installation when it is one of $REDHOME/lib/<series>, else None."""
    prefix = Path(sys.prefix)
    if prefix.parent == redhome / "lib" and _SERIES_RE.fullmatch(prefix.name):
        return prefix.name
    return None


def uses_launcher(redhome: Path) -> bool:
    return (redhome / "bin" / LAUNCHER).exists()


def recorded(paths: InstancePaths) -> str | None:
    """The series the instance records, or None (an instance whose bin/ links straight into a venv)."""
    try:
        value = paths.version_record.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no read right, bytes that are no text
        raise InstanceError(
            f"{paths.version_record} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
            f"set the version with: redsysctl move {paths.redenv} <series>"
        ) from None
    if not _SERIES_RE.fullmatch(value):
        raise InstanceError(
            f"{paths.version_record} holds {value!r}, not a version series like 0.1; "
            f"set one with: redsysctl move {paths.redenv} <series> (installed: {', '.join(installed(paths.redhome))})"
        )
    return value


def record(paths: InstancePaths, series: str) -> None:
    """Write the instance's version record atomically: a starting daemon sees the old or the new one."""
    tmp = paths.version_record.with_name(".version.tmp")
    tmp.write_text(series + "\n", encoding="utf-8")
    tmp.chmod(0o640)
    tmp.replace(paths.version_record)


def dist_version(venv: Path) -> str | None:
    """The version of the redpss distribution installed in a virtualenv (e.g. 0.1.0)."""
    for dist in venv.glob("lib/python3*/site-packages/redpss-*.dist-info"):
        return dist.name.removeprefix("redpss-").removesuffix(".dist-info")
    return None


def programs(venv: Path) -> list[str]:
    """The console scripts redpss installs in a virtualenv (redctl, redpss-jmon, ...)."""
    for dist in venv.glob("lib/python3*/site-packages/redpss-*.dist-info"):
        parser = configparser.ConfigParser()
        parser.read(dist / "entry_points.txt", encoding="utf-8")
        if parser.has_section("console_scripts"):
            return sorted(name for name in parser["console_scripts"] if (venv / "bin" / name).exists())
    return []


def link_to_launcher(paths: InstancePaths, names: list[str]) -> list[str]:
    """Point bin/<name> at $REDHOME/bin/redpss-launch for every name; drop links to programs no longer there."""
    launcher = paths.redhome / "bin" / LAUNCHER
    for stale in paths.bin.iterdir() if paths.bin.is_dir() else ():
        if stale.is_symlink() and stale.name not in names and stale.readlink() == launcher:
            stale.unlink()
    for name in names:
        link = paths.bin / name
        tmp = link.with_name(f".{name}.tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(launcher)
        tmp.replace(link)
    return names


def move(paths: InstancePaths, series: str) -> tuple[str | None, str]:
    """Record `series` for the instance and relink its bin/; return (old series, new series)."""
    versions = installed(paths.redhome)
    if series not in versions:
        raise InstanceError(
            f"version {series!r} is not installed under {paths.redhome / 'lib'}; installed: "
            f"{', '.join(versions) or 'none'} (install the package redpss{series} first)"
        )
    if not uses_launcher(paths.redhome):
        raise InstanceError(f"{paths.redhome / 'bin' / LAUNCHER} is missing: install redpss-common first")
    old = recorded(paths)
    link_to_launcher(paths, programs(versions[series]))
    record(paths, series)
    return old, series
