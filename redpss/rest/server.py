"""redpss-rest: the REST API of an instance under gunicorn (uvicorn workers), HTTPS only.

gunicorn's arbiter would say READY=1 as soon as its socket is bound, before any worker serves, and never pings the
watchdog. So the master keeps NOTIFY_SOCKET to itself (the arbiter never sees it) and a watcher thread asks the
API over TLS, as a client would: READY=1 once a worker answered, then WATCHDOG=1 every half WatchdogSec= while
workers answer. Workers that all hang stop the pings and systemd restarts the unit, like every other daemon's.

Exit codes: 3 for a bad config, a missing or unreadable certificate or key (named), a port in use, or workers that
cannot boot (gunicorn's own 3); systemd does not restart those (RestartPreventExitStatus=3).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

from redpss.core.config import Config
from redpss.core.config.checks import load_instance_config
from redpss.core.entry import daemon_argument_parser
from redpss.core.errors import RedpssError
from redpss.core.logging import setup_logging
from redpss.core.paths import InstancePaths
from redpss.core.services import service_spec
from redpss.core.systemd import Notifier, watchdog_interval
from redpss.rest.probe import PROBE_TIMEOUT, answers, probe_address, probe_context
from redpss.rest.tls import CIPHERS, CertificateFiles, checked_files

log = logging.getLogger("redpss.rest.server")

LOG_NAME = "rest"  # log/REST/rest.log
WORKER_TIMEOUT = 30  # seconds a worker may stay silent before the arbiter replaces it
KEEPALIVE = 5
STARTING_PROBE_INTERVAL = 0.2  # while no worker answered yet ...
STARTING_PROBE_TIMEOUT = 0.5  # ... each probe short: a fork of a worker waits for the probe under way
UNWATCHED_PROBE_INTERVAL = 15.0  # outside systemd's watchdog: how often the watcher looks, for the log


class RootLogger(Logger):  # type: ignore[misc]
    """gunicorn's log records through the root logger (journald or stderr, and log/REST/), not its own handlers."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


class Watcher:
    """READY=1 once a worker answers, then WATCHDOG=1 while workers answer; a thread of the master.

    The arbiter forks workers while this thread runs. A fork in the middle of a probe would copy OpenSSL's and the
    socket module's locks held, and the new worker would hang in its first TLS handshake; so a probe holds
    `probing`, and every fork of this process waits for it (os.register_at_fork).
    """

    def __init__(self, notifier: Notifier, address: tuple[str, int], interval: float | None) -> None:
        self.notifier = notifier
        self.address = address
        self.interval = interval
        self.stop = threading.Event()
        self.ready = False
        self.thread = threading.Thread(target=self.run, name="rest-watchdog", daemon=True)
        self.probing = threading.Lock()
        self.context = probe_context()
        os.register_at_fork(before=self.probing.acquire, after_in_parent=self.probing.release)

    def run(self) -> None:
        failing = False
        while not self.stop.is_set():
            with self.probing:
                ok = answers(self.address, self.context, PROBE_TIMEOUT if self.ready else STARTING_PROBE_TIMEOUT)
            if ok and not self.ready:
                self.ready = True
                self.notifier.ready(f"serving HTTPS on {self.address[0]}:{self.address[1]}")
                log.info("REST API serves on %s:%s", *self.address)
            elif ok and self.interval is not None:
                self.notifier.watchdog()
            if self.ready and ok == failing:
                failing = not ok
                if failing:
                    log.error("no worker answered within %.0f s: the watchdog is not pinged", PROBE_TIMEOUT)
                else:
                    log.info("workers answer again")
            period = STARTING_PROBE_INTERVAL if not self.ready else (self.interval or UNWATCHED_PROBE_INTERVAL)
            self.stop.wait(period)


def gunicorn_options(paths: InstancePaths, config: Config, files: CertificateFiles) -> dict[str, Any]:
    """gunicorn's settings for the API of an instance (also the bench's bare app's: same server, same TLS)."""
    rest = config.rest
    host = f"[{rest.gu_host}]" if ":" in rest.gu_host else rest.gu_host
    return {
        "bind": [f"{host}:{rest.gu_port}"],
        "workers": rest.gu_workers,
        "worker_class": "redpss.rest.worker.RestWorker",
        "certfile": str(files.cert),
        "keyfile": str(files.key),
        "ciphers": CIPHERS,
        "timeout": WORKER_TIMEOUT,
        "graceful_timeout": int(service_spec("rest").drain_timeout),
        "keepalive": KEEPALIVE,
        "logger_class": "redpss.rest.server.RootLogger",
        "loglevel": logging.getLevelName(logging.getLogger().level).lower(),
        "accesslog": None,
        "proc_name": f"redpss-rest {paths.redenv}",
        "worker_tmp_dir": str(paths.tmp),
        # only a declared proxy's X-Forwarded-For names the client (login limits per address, /metrics)
        "forwarded_allow_ips": rest.trusted_proxies,
        "control_socket_disable": True,  # gunicorn's control socket would land in $HOME; restctl and systemd steer
    }


class RestApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, paths: InstancePaths, config: Config, files: CertificateFiles, watcher: Watcher) -> None:
        self.paths = paths
        self.config = config
        self.files = files
        self.watcher = watcher
        super().__init__()

    def options(self) -> dict[str, Any]:
        return {
            **gunicorn_options(self.paths, self.config, self.files),
            "when_ready": self._when_ready,
            "on_exit": self._on_exit,
        }

    def load_config(self) -> None:
        for key, value in self.options().items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from redpss.rest.app import build_app  # noqa: PLC0415 - in the worker, after the fork

        return build_app(self.paths, self.config)

    def _when_ready(self, arbiter: Arbiter) -> None:
        self.watcher.thread.start()

    def _on_exit(self, arbiter: Arbiter) -> None:
        self.watcher.stop.set()
        self.watcher.notifier.stopping("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = daemon_argument_parser("rest", "RED-PSS REST API (gunicorn, HTTPS only)").parse_args(argv)
    os.environ.setdefault("EXASOL_TELEMETRY_DISABLE", "1")
    try:
        paths = InstancePaths.from_env(name=args.instance).require()
        config = load_instance_config(paths)
        files = checked_files(paths)
    except RedpssError as exc:
        print(f"redpss-rest: {exc}", file=sys.stderr)  # under systemd: journalctl -u redpss-rest@<instance>
        return int(exc.exit_code)
    level = "DEBUG" if args.debug else config.rest.log_level
    setup_logging(LOG_NAME, instance=paths.redenv, level=level, log_file=paths.log_rest / f"{LOG_NAME}.log")
    notifier = Notifier()  # takes NOTIFY_SOCKET first ...
    interval = watchdog_interval()
    os.environ.pop("NOTIFY_SOCKET", None)  # ... so gunicorn's arbiter cannot say READY before a worker serves
    watcher = Watcher(notifier, probe_address(config), interval)
    try:
        RestApplication(paths, config, files, watcher).run()
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
