"""devdb for tests and the demo: run it in-process or as a subprocess, with fault hooks.

InProcessDevDb  - the server in this process: drop_sessions(), restart() on the same port, quick to start.
DevDbProcess    - `python -m redpss.devdb` as a child process: stop()/start() on the same port, kill() for crashes.
Both give `dsn`, `fingerprint`, `user`, `password`, and connect() for a pyexasol connection.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redpss.core.net import free_port
from redpss.devdb import tls
from redpss.devdb.server import DevDbServer, ServerSettings

START_TIMEOUT = 20.0


def wait_listening(host: str, port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"devdb did not listen on {host}:{port} within {timeout} s") from None
            time.sleep(0.05)


class _Common:
    host: str
    port: int
    user: str = "sys"
    password: str = "exasol"  # noqa: S105 - test default
    data_dir: Path

    @property
    def dsn(self) -> str:
        """Plain ws:// DSN (use with encryption=False)."""
        return f"{self.host}:{self.port}"

    @property
    def fingerprint(self) -> str:
        return tls.fingerprint(self.data_dir / "tls" / "devdb.crt")

    @property
    def tls_dsn(self) -> str:
        """wss:// DSN pinned to the server certificate (use with encryption=True)."""
        return f"{self.host}/{self.fingerprint}:{self.port}"

    def connect(self, **options: Any) -> Any:
        import pyexasol  # noqa: PLC0415 - heavy import, only where a connection is made

        encryption = options.pop("encryption", False)
        return pyexasol.connect(
            dsn=self.tls_dsn if encryption else self.dsn,
            user=options.pop("user", self.user),
            password=options.pop("password", self.password),
            encryption=encryption,
            **options,
        )


class InProcessDevDb(_Common):
    def __init__(self, data_dir: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.server: DevDbServer | None = None

    def start(self) -> InProcessDevDb:
        server = DevDbServer(ServerSettings(data_dir=self.data_dir, host=self.host, port=self.port))
        server.start()
        self.server = server
        self.port = server.port
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def drop_sessions(self) -> None:
        assert self.server is not None
        self.server.drop_sessions()

    def lose_next_reply(self, statement_start: str, containing: str = "") -> None:
        assert self.server is not None
        self.server.lose_next_reply(statement_start, containing)

    def __enter__(self) -> InProcessDevDb:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class DevDbProcess(_Common):
    def __init__(
        self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1", extra_args: list[str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file = data_dir / "devdb-process.log"

    def start(self) -> DevDbProcess:
        env = dict(os.environ, EXASOL_TELEMETRY_DISABLE="1")
        env.pop("NOTIFY_SOCKET", None)
        argv = [
            sys.executable,
            "-m",
            "redpss.devdb",
            "--data",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--host",
            self.host,
            "--user",
            self.user,
            "--password",
            self.password,
            *self.extra_args,
        ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(self.host, self.port)
        except TimeoutError:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> DevDbProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
