"""devdb, SCHED and JMON of one instance, each its own process as systemd runs them, so that a test can start, kill
or stop one while the others run. `inst` gives the redctl and database helpers of a RunningInstance.
"""

from __future__ import annotations

from pathlib import Path

from redpss.core.paths import InstancePaths
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance

MODULES = {
    "devdb": "redpss.devdb",
    "sched": "redpss.sched.service",
    "jmon": "redpss.jmon.service",
    "dbls": "redpss.dbls.service",
    "jexec": "redpss.jexec.service",
}


class DaemonSet:
    """The daemons of one instance by name; a daemon started again gets a fresh work directory (its log apart)."""

    def __init__(self, paths: InstancePaths, workdir: Path) -> None:
        self.paths = paths
        self.workdir = workdir
        self.inst = RunningInstance(paths, workdir)  # for its redctl and database helpers only
        self.procs: dict[str, DaemonProcess] = {}
        self.generation = 0

    def launch(self, name: str, *args: str, module: str = "", env: dict[str, str] | None = None) -> DaemonProcess:
        """Start daemon `name` (or `module` in its place) without waiting for it; closed by close() either way."""
        self.generation += 1
        daemon = DaemonProcess(
            module or MODULES[name],
            self.paths,
            self.workdir / f"{name}-{self.generation}",
            *args,
            env=env,
            log_name=name,
        )
        self.procs[name] = daemon
        return daemon

    def start(self, name: str, *args: str, module: str = "", env: dict[str, str] | None = None) -> DaemonProcess:
        """As launch(), returning once the daemon said READY."""
        daemon = self.launch(name, *args, module=module, env=env)
        daemon.wait_ready()
        return daemon

    def close(self) -> None:
        self.inst.close()
        for name in ("jmon", "sched", "jexec", "dbls", "devdb"):
            if name in self.procs:
                self.procs[name].stop()
                self.procs[name].close()
