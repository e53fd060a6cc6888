"""SENDFILE as a real daemon beside a real devdb (and, for mail, a real SENDMAIL and aiosmtpd relay)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret, service_secret
from redpss.core.wire import BlockingClient
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, instance_config

MODULES = {"devdb": "redpss.devdb", "sendfile": "redpss.sendfile.service", "sendmail": "redpss.mail.service"}

# A view of `rows` rows over a ten-row table, cross-joined: standard SQL that runs on Exasol and devdb alike. Every
# type SENDFILE maps, NULLs, text with the characters CSV has to quote, and text that CSV readers take for NULL.
DIGITS = "CREATE TABLE {schema}.DIGITS (N DECIMAL(1,0))"
VIEW = """CREATE OR REPLACE VIEW {schema}.{name} AS
SELECT ID,
       CASE WHEN MOD(ID, 7) = 0 THEN NULL WHEN MOD(ID, 5) = 0 THEN 'say "hi", ok' WHEN MOD(ID, 13) = 0 THEN 'NA'
            WHEN MOD(ID, 17) = 0 THEN 'null' ELSE 'name ' || ID END AS NAME,
       CAST(MOD(ID, 100000) / 100 AS DECIMAL(12,2)) AS AMOUNT,
       CASE WHEN MOD(ID, 11) = 0 THEN NULL ELSE ADD_DAYS(DATE '2024-01-01', MOD(ID, 365)) END AS "DAY",
       CASE WHEN MOD(ID, 3) = 0 THEN TIMESTAMP '2024-02-29 23:59:58.123'
            ELSE ADD_SECONDS(TIMESTAMP '2023-06-01 00:00:00', MOD(ID, 86400)) END AS STAMP,
       CAST(ID AS DOUBLE) / 8 AS RATIO,
       MOD(ID, 2) = 0 AS EVEN
FROM (SELECT {digits} AS ID FROM {tables}) WHERE ID < {rows}"""


def view_sql(schema: str, name: str, rows: int) -> str:
    width = max(1, len(str(rows - 1)))
    digits = " + ".join(f"D{i}.N * {10**i}" for i in range(width))
    tables = ", ".join(f"{schema}.DIGITS D{i}" for i in range(width))
    return VIEW.format(schema=schema, name=name, digits=digits, tables=tables, rows=rows)


class Sender:
    """An instance with devdb and SENDFILE (and SENDMAIL when asked) as real processes."""

    def __init__(self, paths: InstancePaths, workdir: Path, **keys: str) -> None:
        self.paths = paths
        self.workdir = workdir
        paths.config_file.write_text(instance_config({"redctl": keys}))
        paths.config_file.chmod(0o600)
        self.inst = RunningInstance(paths, workdir)
        self.procs: dict[str, DaemonProcess] = {}
        self.started = 0

    def start(self, *names: str) -> None:
        for name in names:
            self.started += 1  # a folder per start: a restarted daemon gets a fresh notify socket
            daemon = DaemonProcess(MODULES[name], self.paths, self.workdir / f"{name}-{self.started}", log_name=name)
            self.procs[name] = daemon
            daemon.wait_ready()

    def execute(self, *statements: str) -> None:
        session = self.inst.db()
        for sql in statements:
            session.execute(sql)
        session.commit()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.inst.rows(sql)

    def make_view(self, schema: str, name: str, rows: int, *, new_schema: bool = True) -> None:
        self.execute(
            *([f"CREATE SCHEMA {schema}"] if new_schema else []),
            DIGITS.format(schema=schema),
            f"INSERT INTO {schema}.DIGITS VALUES " + ", ".join(f"({n})" for n in range(10)),
            view_sql(schema, name, rows),
        )

    def send(self, **request: Any) -> dict[str, Any]:
        """A request as RED-PSS's own clients send it (the instance secret)."""
        return self._send(instance_secret(self.paths), request)

    def send_as_database(self, **request: Any) -> dict[str, Any]:
        """A request as the database's scripts send it (SENDFILE's own secret, from its CONNECTION object)."""
        return self._send(service_secret(instance_secret(self.paths), "SENDFILE"), request)

    def _send(self, secret: str, request: dict[str, Any]) -> dict[str, Any]:
        port = int(self.inst.config.redctl.sendfile_port)
        with BlockingClient(("127.0.0.1", port), secret, "test", 600.0) as client:
            return client.request("sendfile", **request)

    @property
    def log(self) -> str:
        return self.procs["sendfile"].log

    def close(self) -> None:
        self.inst.close()
        for daemon in reversed(list(self.procs.values())):
            daemon.stop()
            daemon.close()


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@pytest.fixture
def sender_for(instance: InstancePaths, tmp_path: Path) -> Iterator[Callable[..., Sender]]:
    made: list[Sender] = []

    def make(**keys: str) -> Sender:
        sender = Sender(instance, tmp_path, **keys)
        made.append(sender)
        return sender

    yield make
    for sender in made:
        sender.close()
