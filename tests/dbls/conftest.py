"""DBLS as a real daemon beside a real devdb: started as systemd would start them, stopped with real signals."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.sql.udf.pss_client import PssClient
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, instance_config
from tests.support.journal import JournalListener


class JournalCollector:
    """Reads every entry sent to a journald stand-in as it arrives (its queue holds only a few datagrams)."""

    def __init__(self, path: Path) -> None:
        self.listener = JournalListener(path)
        self.path = path
        self.entries: list[dict[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-collector")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.entries.append(self.listener.receive(timeout=0.1))
            except TimeoutError:
                continue

    def find(self, text: str) -> dict[str, str] | None:
        return next((e for e in list(self.entries) if text in e.get("MESSAGE", "")), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.listener.sock.close()


class Dbls:
    """devdb with APP1 and APP2 registered, and DBLS, as separate processes; `client()` connects to DBLS."""

    def __init__(self, paths: InstancePaths, workdir: Path, journal: JournalCollector) -> None:
        self.paths = paths
        self.workdir = workdir
        self.journal = journal
        self.inst = RunningInstance(paths, workdir)  # its redctl and database helpers
        self.procs: dict[str, DaemonProcess] = {}
        self.generation = 0

    @property
    def port(self) -> int:
        return int(self.inst.config.redctl.dbls_port)

    def start(self, name: str, launcher: Sequence[str] = (), env: dict[str, str] | None = None) -> DaemonProcess:
        self.generation += 1
        module = {"devdb": "redpss.devdb", "dbls": "redpss.dbls.service"}[name]
        env = {"REDPSS_JOURNAL_SOCKET": str(self.journal.path), **(env or {})}
        workdir = self.workdir / f"{name}-{self.generation}"
        daemon = DaemonProcess(module, self.paths, workdir, env=env, log_name=name, launcher=launcher)
        daemon.wait_ready()
        self.procs[name] = daemon
        return daemon

    def client(self, name: str = "test", secret: str | None = None) -> PssClient:
        return PssClient("127.0.0.1", self.port, secret or instance_secret(self.paths), client=name)

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.inst.rows(sql)

    def schema_lines(self, schema: str) -> list[str]:
        """Every line of the schema's dated files below log/DB, oldest file first."""
        folder = self.paths.log_db / schema
        files = sorted(p for p in folder.glob(f"{schema}-*.log") if not p.is_symlink())
        return [line for path in files for line in path.read_text().splitlines()]

    def close(self) -> None:
        self.inst.close()
        for name in ("dbls", "devdb"):
            if name in self.procs:
                self.procs[name].stop()
                self.procs[name].close()


@pytest.fixture
def dbls(instance: InstancePaths, tmp_path: Path) -> Iterator[Dbls]:
    instance.config_file.write_text(instance_config())
    journal = JournalCollector(tmp_path / "journal.socket")
    running = Dbls(instance, tmp_path, journal)
    try:
        running.start("devdb")
        running.inst.redctl("db_register", "APP1", "APP2")
        running.start("dbls")
        yield running
    finally:
        running.close()
        journal.close()
