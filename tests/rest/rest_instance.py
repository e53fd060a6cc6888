"""An instance with the REST API running as under systemd: devdb, SCHED and JMON by `redctl start_trace`, the API
(`python -m redpss.rest.server`, real gunicorn, real TLS) as its own process on a free loopback port, and database
users for each role.
"""

from __future__ import annotations

import base64
import contextlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx

from redpss.core.config.schema import section_fields
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.core.secret import instance_secret
from redpss.devdb.tls import self_signed
from redpss.rest.tls import CertificateFiles
from tests.support.daemons import DaemonProcess
from tests.support.instance_runner import RunningInstance, instance_config

TECHNICAL_USER = ("REDREST", "rest-tu-pw")
READER = ("API_READER", "reader-pw")
OPERATOR = ("API_OPERATOR", "operator-pw")
NOBODY = ("API_NOBODY", "nobody-pw")  # logs in, holds no API role


def basic(user: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _optional_daemons_off() -> dict[str, str]:
    """Daemons the API tests do not need and that would want more config (CFISRV's password), where they exist."""
    keys = {f.name for f in section_fields("redctl")}
    return {key: "false" for key in ("cfi_enabled",) if key in keys}


def rest_config(gu_port: int, **rest: str) -> str:
    return instance_config(
        {
            "redctl": _optional_daemons_off(),
            "rest": {
                "rest_enabled": "false",  # start_trace leaves the API to the test, which starts it as its unit would
                "exa_username": TECHNICAL_USER[0],
                "exa_password": TECHNICAL_USER[1],
                "gu_port": str(gu_port),
                "gu_workers": "2",
                **rest,
            },
        }
    )


def make_instance(redhome: Path, name: str = "TST1") -> InstancePaths:
    paths = InstancePaths.for_instance(name, redhome)
    create_instance_tree(paths)
    instance_secret(paths, create=True)  # as `redsysctl create` makes it (the console signs its sessions with it)
    files = CertificateFiles.of(paths)
    self_signed(files.cert, files.key, common_name=f"RED-PSS REST {name}")
    return paths


def create_users(instance: RunningInstance) -> None:
    db = instance.db()
    for user, password in (TECHNICAL_USER, READER, OPERATOR, NOBODY):
        db.execute(f'CREATE USER {user} IDENTIFIED BY "{password}"')
        db.execute(f"GRANT CREATE SESSION TO {user}")
    db.execute(f"GRANT REDPSS_READER TO {READER[0]}")
    db.execute(f"GRANT REDPSS_OPERATOR TO {OPERATOR[0]}")
    db.commit()


def client_context(paths: InstancePaths) -> ssl.SSLContext:
    """A client that trusts the instance's own (self-signed) certificate, made for 127.0.0.1."""
    return ssl.create_default_context(cafile=CertificateFiles.of(paths).cert)


class RestApi:
    """The running API process and an HTTPS client for it."""

    def __init__(self, paths: InstancePaths, workdir: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.paths = paths
        self.port = port
        self.base = f"https://127.0.0.1:{port}"
        self.process = DaemonProcess("redpss.rest.server", paths, workdir, env=env, log_name="rest")
        self.client = httpx.Client(base_url=self.base, verify=client_context(paths), timeout=30.0)

    @property
    def log(self) -> str:
        path = self.paths.log_rest / "rest.log"
        return path.read_text() if path.exists() else ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.process.wait_ready(timeout)

    def close(self) -> None:
        self.client.close()
        self.process.stop()
        self.process.close()


@contextlib.contextmanager
def rest_instance(redhome: Path, workdir: Path, **rest: str) -> Iterator[tuple[RunningInstance, RestApi]]:
    """An installed instance with API users, its daemons and its API running; all stopped when the block ends."""
    paths = make_instance(redhome)
    port = free_port()
    paths.config_file.write_text(rest_config(port, **rest))
    paths.config_file.chmod(0o600)
    running = RunningInstance(paths, workdir)
    api: RestApi | None = None
    try:
        running.start()
        running.redctl("db_install")
        running.redctl("db_register", "APP1")
        create_users(running)
        api = RestApi(paths, workdir / "rest", port, env=running.env())
        api.wait_ready()
        yield running, api
    finally:
        if api is not None:
            api.close()
        running.close()
