"""The API's process on its own: the certificate it refuses to start without, the watchdog it keeps fed, the
OpenAPI document kept in docs/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from redpss.core.errors import ConfigError
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.rest.openapi import render
from redpss.rest.tls import CertificateFiles
from tests.rest.rest_instance import make_instance, rest_config
from tests.support.daemons import DaemonProcess
from tests.support.leaks import process_tree
from tests.support.wait import wait_for

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_hold_the_served_openapi_document() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), "run: python -m redpss.rest.openapi docs/openapi.json"


@pytest.fixture
def api_instance(redhome: Path) -> InstancePaths:
    """An instance with its certificate and a config; no database (the API starts without one)."""
    paths = make_instance(redhome)
    paths.config_file.write_text(rest_config(free_port()))
    paths.config_file.chmod(0o600)
    return paths


def _start(paths: InstancePaths) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redpss.rest.server", "--instance", paths.redenv],
        env={**os.environ, **paths.environment()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("missing", ["cert", "key"])
def test_a_missing_certificate_or_key_stops_the_start_with_exit_3_naming_it(
    api_instance: InstancePaths, missing: str
) -> None:
    files = CertificateFiles.of(api_instance)
    gone = files.cert if missing == "cert" else files.key
    gone.unlink()
    result = _start(api_instance)
    assert result.returncode == 3, result.stderr
    assert str(gone) in result.stderr and "missing" in result.stderr, result.stderr


def test_an_unreadable_or_broken_pair_stops_the_start_with_exit_3(api_instance: InstancePaths) -> None:
    files = CertificateFiles.of(api_instance)
    files.key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    result = _start(api_instance)
    assert result.returncode == 3, result.stderr
    assert str(files.key) in result.stderr and "PEM" in result.stderr, result.stderr


def test_the_watchdog_is_fed_past_its_interval_while_workers_answer(
    api_instance: InstancePaths, tmp_path: Path
) -> None:
    """WatchdogSec=2 (as systemd would set WATCHDOG_USEC): pings every second while workers answer, for longer than
    the interval, and the process is still serving; workers stopped with SIGSTOP stop the pings."""
    daemon = DaemonProcess(
        "redpss.rest.server", api_instance, tmp_path / "rest", env={"WATCHDOG_USEC": "2000000"}, log_name="rest"
    )
    try:
        daemon.wait_ready(60)
        daemon.notify.wait_for("WATCHDOG", "1", timeout=10, nth=4)  # four pings: past the 2 s interval twice
        assert daemon.process.poll() is None
        workers = [pid for pid in process_tree(daemon.pid) if pid != daemon.pid]
        assert len(workers) == 2, workers
        log = api_instance.log_rest / "rest.log"
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: "no worker answered" in log.read_text(), 30, what="the hung workers noticed")
            daemon.notify.drain()
            pings = daemon.notify.count("WATCHDOG", "1")
            # An absence can only be seen over time: three intervals of a timer-driven ping, and none came.
            with pytest.raises(AssertionError, match="not received"):
                daemon.notify.wait_for("WATCHDOG", "1", timeout=3, nth=pings + 1)
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        daemon.notify.wait_for("WATCHDOG", "1", timeout=15, nth=pings + 1)  # fed again once they answer
        wait_for(lambda: "workers answer again" in log.read_text(), 30, what="the workers answering again")
    finally:
        daemon.stop()
        daemon.close()


def test_restctl_status_of_an_enabled_api_that_is_not_running_is_3(api_instance: InstancePaths) -> None:
    config = api_instance.config_file
    config.write_text(config.read_text().replace("rest_enabled = false", "rest_enabled = true"))
    result = subprocess.run(
        [sys.executable, "-m", "redpss.cli.restctl", "-i", api_instance.redenv, "status"],
        env={**os.environ, **api_instance.environment()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3, result
    assert "is not running (nothing answers on https://127.0.0.1:" in result.stdout


def test_the_units_stop_timeout_outlasts_gunicorns_graceful_stop(api_instance: InstancePaths) -> None:
    """systemd's SIGKILL must not cut the workers' drain short: TimeoutStopSec= > graceful_timeout + the abort."""
    from redpss.cli.redsysctl.units import render_service, timeout_stop_sec  # noqa: PLC0415
    from redpss.core.config import load_config  # noqa: PLC0415
    from redpss.core.daemon import ABORT_TIMEOUT  # noqa: PLC0415
    from redpss.core.services import service_spec  # noqa: PLC0415
    from redpss.rest.server import gunicorn_options  # noqa: PLC0415

    spec = service_spec("rest")
    options = gunicorn_options(api_instance, load_config(api_instance.config_file), CertificateFiles.of(api_instance))
    assert timeout_stop_sec(spec) > options["graceful_timeout"] + ABORT_TIMEOUT
    unit = render_service(spec)
    assert "ExecStart=/app/redsys/env/.units/%i/bin/redpss-rest --instance %i" in unit
    assert "WatchdogSec=30" in unit and "RestartPreventExitStatus=3" in unit and "Type=notify" in unit


@pytest.mark.parametrize(
    ("host", "open_"), [("127.0.0.1", True), ("::1", True), ("0.0.0.0", False), ("10.1.2.3", False)]
)
def test_metrics_need_credentials_unless_the_listener_is_loopback(
    api_instance: InstancePaths, host: str, open_: bool
) -> None:
    """Off loopback, /metrics answers 401 without credentials (checked before anything is asked of the daemons)."""
    import asyncio  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from redpss.core.config import load_config  # noqa: PLC0415
    from redpss.rest.app import build_app  # noqa: PLC0415

    config = load_config(api_instance.config_file)
    config = type(config)(**{**vars(config), "rest": type(config.rest)(**{**vars(config.rest), "gu_host": host})})
    app = build_app(api_instance, config)

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.test") as client:
            return await client.get("/metrics")

    answer = asyncio.run(ask())
    if open_:
        assert answer.status_code == 200 and "redpss_daemon_up" in answer.text, answer.text
    else:
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized", answer.text


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "X-Real-IP"])
def test_metrics_passed_on_by_a_reverse_proxy_need_credentials_on_a_loopback_listener(
    api_instance: InstancePaths, header: str
) -> None:
    """A proxy on the same server reaches the loopback listener as a local client: /metrics was open to anyone who
    could reach the proxy. A request that names a client it was forwarded for needs a login."""
    import asyncio  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from redpss.core.config import load_config  # noqa: PLC0415
    from redpss.rest.app import build_app  # noqa: PLC0415

    app = build_app(api_instance, load_config(api_instance.config_file))

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # its client is 127.0.0.1
        async with httpx.AsyncClient(transport=transport, base_url="https://api.test") as client:
            return await client.get("/metrics", headers={header: "203.0.113.7"})

    answer = asyncio.run(ask())
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized", answer.text


def test_only_declared_proxies_name_the_client(api_instance: InstancePaths) -> None:
    """gunicorn's forwarded_allow_ips: empty unless [rest] trusted_proxies names the proxies, so the limits per
    address count the clients behind a declared proxy, not the proxy as one client of everybody's logins."""
    from redpss.core.config import load_config  # noqa: PLC0415
    from redpss.rest.server import gunicorn_options  # noqa: PLC0415

    config = load_config(api_instance.config_file)
    files = CertificateFiles.of(api_instance)
    assert gunicorn_options(api_instance, config, files)["forwarded_allow_ips"] == ""
    text = api_instance.config_file.read_text()
    api_instance.config_file.write_text(text.replace("[rest]", "[rest]\ntrusted_proxies = 10.0.0.5, ::1", 1))
    declared = load_config(api_instance.config_file)
    assert gunicorn_options(api_instance, declared, files)["forwarded_allow_ips"] == "10.0.0.5,::1"
    api_instance.config_file.write_text(text.replace("[rest]", "[rest]\ntrusted_proxies = proxy.example", 1))
    with pytest.raises(ConfigError, match=r"'proxy\.example' is not an IP address"):
        load_config(api_instance.config_file)


def test_metrics_from_a_declared_proxy_need_credentials_even_without_forwarding_headers(
    api_instance: InstancePaths,
) -> None:
    """A proxy that names no client (stunnel, nginx without proxy_set_header) reached /metrics as a local client."""
    import asyncio  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from redpss.core.config import load_config  # noqa: PLC0415
    from redpss.rest.app import build_app  # noqa: PLC0415

    text = api_instance.config_file.read_text()
    api_instance.config_file.write_text(text.replace("[rest]", "[rest]\ntrusted_proxies = 127.0.0.1", 1))
    app = build_app(api_instance, load_config(api_instance.config_file))

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # its client is 127.0.0.1: the declared proxy
        async with httpx.AsyncClient(transport=transport, base_url="https://api.test") as client:
            return await client.get("/metrics")

    answer = asyncio.run(ask())
    assert answer.status_code == 401, answer.text
