"""Instances as systemd sees them: the unit link, the instance's own programs, its units and their states.

systemd 239 cannot lower-case %i, so the units reach the lower-case folder $REDHOME/env/tst1 through the link
$REDHOME/env/.units/TST1 (see redpss.cli.redsysctl.units). `redsysctl create` makes it and every start repairs it,
so an instance tree copied or restored by hand still starts. The hidden folder keeps the links out of listings of
env/ (which hold only real instance folders).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from redpss.cli import systemctl
from redpss.cli.redsysctl.units import UNIT_LINKS
from redpss.core.errors import InstanceError
from redpss.core.paths import InstancePaths
from redpss.core.services import SERVICES, instance_target, service_spec


def unit_link(paths: InstancePaths) -> Path:
    return paths.redhome / UNIT_LINKS / paths.redenv


def ensure_unit_link(paths: InstancePaths) -> Path:
    """Make $REDHOME/env/.units/<INSTANCE> point at the instance folder (idempotent); return the link."""
    link = unit_link(paths)
    target = Path("..") / paths.folder_name
    if link.is_symlink() and link.readlink() == target:
        return link
    link.parent.mkdir(mode=0o755, exist_ok=True)
    tmp = link.with_name(f".{paths.redenv}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)  # atomic: a unit starting now sees the old or the new link, never none
    return link


def installation_programs() -> dict[str, Path]:
    """The console scripts of the running installation (name -> path), e.g. redctl -> /app/redsys/lib/.../redctl."""
    import sysconfig  # noqa: PLC0415 - only `redsysctl create` needs these; every other command starts faster
    from importlib import metadata  # noqa: PLC0415

    scripts = Path(sysconfig.get_path("scripts"))
    try:
        names = [ep.name for ep in metadata.distribution("redpss").entry_points if ep.group == "console_scripts"]
    except metadata.PackageNotFoundError:
        return {}
    return {name: scripts / name for name in sorted(names) if (scripts / name).exists()}


def link_programs(paths: InstancePaths) -> list[str]:
    """Point the instance's bin/ at this installation's programs; the units and redsysctl run them from there.

    Installed from the RPM (this code runs from $REDHOME/lib/<series>), the instance records that series and bin/
    links to the launcher that reads the record (redpss.cli.redsysctl.versions)."""
    from redpss.cli.redsysctl import versions  # noqa: PLC0415

    series = versions.running_series(paths.redhome)
    if series is not None and versions.uses_launcher(paths.redhome):
        versions.record(paths, series)
        return versions.link_to_launcher(paths, list(installation_programs()))
    linked = []
    for name, program in installation_programs().items():
        link = paths.bin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(program)
        linked.append(name)
    return linked


def instance_program(paths: InstancePaths, name: str) -> str:
    """The instance's own copy of a command ($REDENV_HOME/bin/NAME), else the one installed beside the running
    program (redsys.service runs with systemd's PATH, which does not hold $REDHOME/bin), else the one on PATH,
    else NAME itself."""
    import shutil  # noqa: PLC0415 - shutil loads the compression modules; not needed by `redctl status`

    for candidate in (paths.bin / name, Path(sys.argv[0]).resolve().parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name) or name


def instance_version(paths: InstancePaths) -> str:
    """The redpss version the instance's bin/redctl belongs to (from the venv it points into), or '?'."""
    from redpss.cli.redsysctl import versions  # noqa: PLC0415

    try:
        series = versions.recorded(paths)
    except InstanceError:
        return "? (bad .version)"
    if series is not None:  # the launcher runs $REDHOME/lib/<series>
        return versions.dist_version(paths.redhome / "lib" / series) or f"{series} (not installed)"
    redctl = paths.bin / "redctl"
    if not redctl.exists():
        return "?"
    venv = redctl.resolve().parent.parent
    for dist in venv.glob("lib/python3*/site-packages/redpss-*.dist-info"):
        return dist.name.removeprefix("redpss-").removesuffix(".dist-info")
    return "?"


def all_units(paths: InstancePaths) -> list[str]:
    """Every unit an instance can have: one per known daemon (the REST API's included), and the instance target."""
    return [*(spec.unit(paths.redenv) for spec in SERVICES), instance_target(paths.redenv)]


def rest_unit(paths: InstancePaths) -> str:
    return service_spec("rest").unit(paths.redenv)


def active_units(paths: InstancePaths) -> list[str]:
    """Units of the instance that run, start, stop or wait to restart."""
    found = systemctl.states(all_units(paths))
    return [unit for unit, state in found.items() if state.active not in ("inactive", "failed")]
