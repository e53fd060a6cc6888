"""Real daemon processes for tests: started with a NOTIFY_SOCKET the test binds, stopped with real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from redpss.core.paths import InstancePaths
from tests.support.notify import NotifyListener
from tests.support.unit_limits import unit_limits
from tests.support.wait import wait_for


class DaemonProcess:
    """One `python -m <module> --instance ...` process of an instance, its notify socket and its output."""

    def __init__(
        self,
        module: str,
        instance: InstancePaths,
        workdir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        log_name: str | None = None,
        launcher: Sequence[str] = (),
    ) -> None:
        """`launcher`: a command prefix the daemon runs under (e.g. nsenter into a mount namespace)."""
        self.instance = instance
        self.log_name = log_name or module.split(".")[1]
        workdir.mkdir(parents=True, exist_ok=True)
        self.notify = NotifyListener(workdir / "notify.socket")
        self.stderr_path = workdir / "stderr.txt"
        environment = {**os.environ, **instance.environment(), "NOTIFY_SOCKET": str(self.notify.path), **(env or {})}
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [*unit_limits(), *launcher, sys.executable, "-m", module, "--instance", instance.redenv, *args],
                env=environment,
                stderr=stderr,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        path = self.instance.log_file(self.log_name)
        return path.read_text() if path.exists() else ""

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 60.0) -> dict[str, str]:
        """READY=1 from the daemon; a daemon that exits first fails at once, showing what it wrote."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.notify.wait_for("READY", "1", timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            except AssertionError:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise AssertionError(f"{self.log_name} exited {code} before READY:\n{self.stderr}") from None
                if time.monotonic() >= deadline:
                    raise

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        wait_for(lambda: text in self.log, timeout, what=f"{text!r} in {self.log_name}'s log")

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.notify.close()
