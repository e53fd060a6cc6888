"""The demo's REST API: started with the instance (rest_enabled), users for it in the database, and one curl
command that works, run once to show its answer."""

from __future__ import annotations

import shlex
import shutil
import subprocess

from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.rest.probe import answers, probe_address, probe_context
from redpss.rest.tls import CertificateFiles

TECHNICAL_USER = ("REDREST", "demo-only-rest-password")  # the API's own connection ([rest] exa_username)
READER = ("DEMO_READER", "demo-only-reader-password")  # a client: sees, may not change


def config_keys(paths: InstancePaths) -> dict[str, str]:
    """The [rest] keys of the demo instance, and its self-signed certificate for localhost and 127.0.0.1."""
    from redpss.devdb.tls import self_signed  # noqa: PLC0415 - cryptography only for the demo's certificate

    files = CertificateFiles.of(paths)
    self_signed(files.cert, files.key, common_name=f"RED-PSS REST {paths.redenv}")
    return {
        "rest_enabled": "true",
        "gu_port": str(free_port()),
        "gu_workers": "1",
        "exa_username": TECHNICAL_USER[0],
        "exa_password": TECHNICAL_USER[1],
    }


def curl_command(paths: InstancePaths) -> str:
    host, port = probe_address(load_config(paths.config_file))
    cert = CertificateFiles.of(paths).cert
    return (
        f"curl --silent --show-error --cacert {shlex.quote(str(cert))} "
        f"--user {READER[0]}:{READER[1]} https://{host}:{port}/api/v1/jobs"
    )


def demonstrate(paths: InstancePaths) -> None:
    """Create the API's users (db_install made the roles), then print and run one curl command against the API."""
    config = load_config(paths.config_file)
    session = DbSession(DbSettings.from_config(config, client_name="redpss-demo"))
    try:
        for user, password in (TECHNICAL_USER, READER):
            session.execute(f'CREATE USER {user} IDENTIFIED BY "{password}"')
            session.execute(f"GRANT CREATE SESSION TO {user}")
        session.execute(f"GRANT REDPSS_READER TO {READER[0]}")
        session.commit()
    finally:
        session.close()
    host, port = probe_address(config)
    state = "answering" if answers((host, port), probe_context()) else "NOT answering"
    print(f"== REST API (HTTPS only) on https://{host}:{port}: {state}")
    command = curl_command(paths)
    print(f"== $ {command}")
    if shutil.which("curl") is None:
        print("   (curl is not installed here; the command works wherever it is)")
        return
    result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=False)
    print(f"   {(result.stdout or result.stderr).strip()[:400]}")
