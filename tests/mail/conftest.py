"""SENDMAIL as a real daemon beside a real SMTP relay (aiosmtpd) and, where a test needs rows, a real devdb."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.sql.udf.pss_client import PssClient
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, instance_config
from tests.support.smtp_relay import SmtpRelay

FAST_RETRIES = {"sendmail_retry_delay": "0.2", "sendmail_retry_max_delay": "0.5"}


class Mailer:
    """An instance whose SENDMAIL relays to `relay`; `start()` (again after a kill) and `client()`."""

    def __init__(self, paths: InstancePaths, workdir: Path, relay: SmtpRelay, **keys: str) -> None:
        self.paths = paths
        self.workdir = workdir
        self.relay = relay
        paths.config_file.write_text(instance_config({"redctl": {**relay.config(), **FAST_RETRIES, **keys}}))
        self.inst = RunningInstance(paths, workdir)
        self.procs: dict[str, DaemonProcess] = {}
        self.generation = 0

    @property
    def port(self) -> int:
        return int(self.inst.config.redctl.sendmail_port)

    def start(self, name: str = "sendmail") -> DaemonProcess:
        self.generation += 1
        module = {"devdb": "redpss.devdb", "sendmail": "redpss.mail.service"}[name]
        daemon = DaemonProcess(module, self.paths, self.workdir / f"{name}-{self.generation}", log_name=name)
        daemon.wait_ready()
        self.procs[name] = daemon
        return daemon

    def client(self, name: str = "test") -> PssClient:
        return PssClient("127.0.0.1", self.port, instance_secret(self.paths), client=name)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.inst.rows(sql)

    def close(self) -> None:
        self.inst.close()
        for name in ("sendmail", "devdb"):
            if name in self.procs:
                self.procs[name].stop()
                self.procs[name].close()


@pytest.fixture
def mailer_for(instance: InstancePaths, tmp_path: Path) -> Iterator[Callable[..., Mailer]]:
    """Build a Mailer around a relay (the test starts the relay and the daemons it needs)."""
    made: list[Mailer] = []

    def make(relay: SmtpRelay, **keys: str) -> Mailer:
        mailer = Mailer(instance, tmp_path, relay, **keys)
        made.append(mailer)
        return mailer

    yield make
    for mailer in made:
        mailer.close()
