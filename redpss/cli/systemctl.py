"""The one place RED-PSS runs systemctl: unit actions, unit states, and the LSB code of a set of states.

The redsys user drives its units through polkit (etc/polkit-1/rules.d/); where polkit is missing and systemctl says
access is denied, the same command is retried once through `sudo -n` (etc/sudoers.d/redpss-units). Outside systemd
every call raises NoSystemd, whose message points to `redctl start_trace`.

Only units systemd knows are addressed: a daemon whose unit file is not installed (the REST API before it lands, a
daemon an older release did not have) is left out of stop, kill and reset-failed, so stopping what does not run
succeeds as LSB wants, instead of failing with "Unit ... not loaded".
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from redpss.core.errors import RedpssError
from redpss.core.exitcodes import LsbStatus
from redpss.core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    import subprocess

SYSTEMD_RUNTIME = Path("/run/systemd/system")  # exists only when systemd is PID 1 (sd_booted())
_DENIED = ("Access denied", "Interactive authentication required", "access denied")
_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "MainPID", "StatusText", "Result")


class NoSystemd(RedpssError):
    """systemd is not running here, so units cannot be started or asked about."""

    def __init__(self) -> None:
        super().__init__(
            f"systemd is not running on this machine ({SYSTEMD_RUNTIME} is missing), so the instance's units cannot "
            "be used; run the daemons in the foreground with `redctl start_trace`"
        )


class SystemctlError(RedpssError):
    """systemctl refused or failed; the message holds its own words."""


def systemd_running() -> bool:
    return SYSTEMD_RUNTIME.is_dir()


def require_systemd() -> None:
    if not systemd_running():
        raise NoSystemd


class UnitState(Record):
    """What `systemctl show` says about one unit."""

    unit: str
    load: str = "not-found"  # loaded, not-found, masked, ...
    active: str = "inactive"  # active, activating, deactivating, inactive, failed
    sub: str = "dead"  # running, auto-restart, exited, dead, failed, ...
    main_pid: int = 0
    status_text: str = ""
    result: str = ""  # success, exit-code, signal, watchdog, ...

    @property
    def running(self) -> bool:
        return self.active in ("active", "reloading")

    @property
    def failed(self) -> bool:
        return self.active == "failed" or self.sub == "auto-restart"

    @property
    def installed(self) -> bool:
        """systemd has the unit (its file, or its template's, is installed)."""
        return self.load not in ("not-found", "")

    @property
    def live(self) -> bool:
        """A process of the unit runs or is about to (starting, stopping, waiting to restart)."""
        return self.active in ("active", "reloading", "activating", "deactivating")

    def describe(self) -> str:
        """One line for the operator. STATUS= text only while a process runs: systemd keeps the last STATUS= of a
        process that died, and "jmon ready: ..." beside "failed" would tell the opposite of the truth."""
        if not self.installed and self.active == "inactive":
            return "not installed"
        text = f"{self.active} ({self.sub})"
        if self.main_pid:
            text += f" pid {self.main_pid}"
        if self.failed and self.result not in ("", "success"):
            text += f", result {self.result}"
        if self.status_text and self.live:
            text += f": {self.status_text}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "load": self.load,
            "active": self.active,
            "sub": self.sub,
            "main_pid": self.main_pid,
            "status": self.status_text,
            "result": self.result,
        }


def _systemctl_argv() -> list[str]:
    import shutil  # noqa: PLC0415 - shutil loads the compression modules; only when systemctl runs

    # /usr/bin/systemctl on RHEL 8 and merged-/usr Debian: the path the sudoers fallback names
    return ["/usr/bin/systemctl" if Path("/usr/bin/systemctl").exists() else (shutil.which("systemctl") or "systemctl")]


def run(args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `systemctl ARGS`; retry through `sudo -n` when polkit denies it; raise SystemctlError on failure."""
    import subprocess  # noqa: PLC0415 - only when systemd is there: `redctl status` outside it asks the daemons

    require_systemd()
    env = {**os.environ, "SYSTEMD_PAGER": "cat", "SYSTEMD_COLORS": "0"}
    argv = [*_systemctl_argv(), "--no-ask-password", *args]
    result = subprocess.run(argv, check=False, text=True, capture_output=True, env=env)
    if result.returncode != 0 and any(d in result.stderr for d in _DENIED) and os.geteuid() != 0:
        import shutil  # noqa: PLC0415 - as in _systemctl_argv

        sudo = shutil.which("sudo")
        if sudo:
            result = _through_sudo(sudo, argv, env)
    if check and result.returncode != 0:
        raise SystemctlError(f"systemctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result


def _through_sudo(sudo: str, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`sudo -n` once per unit after `--`, in order: the sudo rule allows exactly one unit per command line, so that
    no extra argument (another unit) can be added; the first failure is returned, after trying every unit."""
    import subprocess  # noqa: PLC0415 - as in run

    split = argv.index("--") + 1 if "--" in argv else len(argv)
    runs = [
        subprocess.run([sudo, "-n", *argv[:split], *unit], check=False, text=True, capture_output=True, env=env)
        for unit in ([[u] for u in argv[split:]] or [[]])
    ]
    return next((r for r in runs if r.returncode != 0), runs[-1])


def parse_show(text: str) -> list[dict[str, str]]:
    """Split `systemctl show -p ...` output of several units (blocks separated by blank lines) into dicts."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    if current:
        blocks.append(current)
    return blocks


def states(units: Iterable[str]) -> dict[str, UnitState]:
    """The state of each unit, in the order given; units systemd does not know are 'not-found' and inactive."""
    names = list(units)
    if not names:
        return {}
    props = [f"--property={p}" for p in _PROPERTIES]
    result = run(["show", *props, "--", *names], check=False)
    blocks = parse_show(result.stdout)
    if result.returncode != 0 and len(blocks) < len(names):
        # Nothing known is not "not installed": read as that, a stop stopped nothing and said so with exit 0, and
        # `redsysctl drop` found no running unit to keep it from deleting a live instance.
        raise SystemctlError(
            f"systemctl show failed, so the state of the units is unknown: "
            f"{result.stderr.strip() or result.stdout.strip() or f'exit code {result.returncode}'}"
        )
    found: dict[str, UnitState] = {}
    for block in blocks:
        unit = block.get("Id", "")
        pid = block.get("MainPID", "0")
        found[unit] = UnitState(
            unit=unit,
            load=block.get("LoadState", "not-found"),
            active=block.get("ActiveState", "inactive"),
            sub=block.get("SubState", "dead"),
            main_pid=int(pid) if pid.isdigit() else 0,
            status_text=block.get("StatusText", ""),
            result=block.get("Result", ""),
        )
    return {name: found.get(name, UnitState(name)) for name in names}


def installed(units: Iterable[str]) -> list[str]:
    """The units systemd knows, in the order given."""
    return [unit for unit, state in states(units).items() if state.installed]


def addressable(units: Iterable[str]) -> list[str]:
    """The units worth a stop or kill: those not inactive (failed ones included). systemd reports a unit whose file
    is not installed as inactive, so such a unit is never addressed."""
    return [unit for unit, state in states(units).items() if state.active != "inactive"]


def worst_status(codes: Iterable[int]) -> LsbStatus:
    """The LSB status of several: failed (1) wins, then unknown (4), then stopped (3); 0 only when all run."""
    listed = set(codes)
    for code in (LsbStatus.DEAD_WITH_PIDFILE, LsbStatus.UNKNOWN, LsbStatus.NOT_RUNNING):
        if code in listed:
            return code
    if listed - {LsbStatus.RUNNING}:
        return LsbStatus.DEAD_WITH_PIDFILE  # any other code: something did not work
    return LsbStatus.RUNNING


def lsb_status(unit_states: Iterable[UnitState]) -> LsbStatus:
    """0 when every unit runs, 1 when one failed (systemd keeps it failed), 3 when some or all are stopped."""
    listed = list(unit_states)
    if not listed:
        return LsbStatus.NOT_RUNNING
    if all(s.running for s in listed):
        return LsbStatus.RUNNING
    if any(s.failed for s in listed):
        return LsbStatus.DEAD_WITH_PIDFILE
    return LsbStatus.NOT_RUNNING


def start(units: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Start units and wait until each is ready (Type=notify) or has failed; never raises for a failed unit."""
    return run(["start", "--", *units], check=False) if units else _nothing()


def stop(units: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Stop units given in start order, last first: systemd runs a stop job as soon as it is queued, so the
    database must be asked last or it goes away while SCHED still writes the log of its draining runs.
    Units systemd does not know or that are already inactive are left out: stopping them succeeds (LSB)."""
    live = addressable(units) if units else []
    return run(["stop", "--", *reversed(live)], check=False) if live else _nothing()


def restart(units: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Restart units given in start order: stop them last first (see stop), then start them in order."""
    stopped = stop(units)
    if stopped.returncode != 0:
        return stopped
    return start(units)


def kill(units: Sequence[str], signal_name: str = "SIGKILL") -> subprocess.CompletedProcess[str]:
    """Send `signal_name` to every process of the units (not only the main one)."""
    live = addressable(units) if units else []
    return run(["kill", "--kill-who=all", f"--signal={signal_name}", "--", *live], check=False) if live else _nothing()


def reset_failed(units: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Clear the failed state (and the start-limit counter) of those units that are failed, so a start goes ahead
    after systemd's start limit was hit."""
    found = states(units) if units else {}
    failed = [unit for unit, state in found.items() if state.active == "failed"]
    return run(["reset-failed", "--", *failed], check=False) if failed else _nothing()


def _nothing() -> subprocess.CompletedProcess[str]:
    import subprocess  # noqa: PLC0415 - as in run

    return subprocess.CompletedProcess([], 0, "", "")
