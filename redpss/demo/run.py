"""redpss-demo: a throw-away instance on the embedded database, with its daemons in the foreground.

It creates instance DEMO1 in a temporary REDHOME, shows its validated config, starts every daemon with
`redctl start_trace` (their journald-style log lines appear here), installs REDSYS and an application schema DEMO
with `redctl db_register`, defines sample jobs and a file watcher, drops a file for the watcher, shows the result
with `redctl show` and the run log, and stops everything with Ctrl+C's signal as an operator would.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from redpss.cfi.tls import ensure_certificate
from redpss.core.config import Config, load_config, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.net import free_ports
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.demo import console, ingest, mail, rest, udf_bridge

DEMO_INSTANCE = "DEMO1"

SAMPLE_SQL = [
    "CREATE TABLE DEMO.BEATS (BEAT_AT TIMESTAMP)",
    "CREATE TABLE DEMO.ORDERS_LOADED (LOADED_AT TIMESTAMP)",
    "INSERT INTO DEMO.ADM_JOBS (JOB_ID, JOB_NAME, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE) VALUES "
    "(1, 'HEARTBEAT', 'SQL', 'INSERT INTO DEMO.BEATS VALUES (CURRENT_TIMESTAMP)', 2, TRUE)",
    "INSERT INTO DEMO.ADM_JOBS (JOB_ID, JOB_NAME, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE) VALUES "
    "(2, 'PING', 'NOOP', '-', 1, TRUE)",
    "INSERT INTO DEMO.ADM_JOBS (JOB_ID, JOB_NAME, JOB_TYPE, COMMAND, CRON_EXPR, ACTIVE) VALUES "
    "(3, 'EVERY_5S_BY_CRON', 'NOOP', '-', '* * * * * */5', TRUE)",
    "INSERT INTO DEMO.ADM_JOBS (JOB_ID, JOB_NAME, POOL, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE) VALUES "
    "(4, 'LOAD_ORDERS', 'LOADER', 'SQL', 'INSERT INTO DEMO.ORDERS_LOADED VALUES (CURRENT_TIMESTAMP)', NULL, TRUE)",
    "INSERT INTO DEMO.ADM_JOBS (JOB_ID, JOB_NAME, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE, MAX_RETRIES, "
    "RETRY_DELAY_SECONDS) VALUES (5, 'BROKEN', 'SQL', 'SELECT * FROM DEMO.MISSING_TABLE', 6, TRUE, 1, 1)",
    "INSERT INTO DEMO.ADM_WATCHER (WATCHER_ID, WATCHER_NAME, CONDITION_TYPE, CONDITION_TEXT, TARGET_JOB_ID, "
    "INTERVAL_SECONDS, ACTIVE) VALUES (1, 'ORDERS_ARRIVED', 'FILE', 'orders/*.csv', 4, 3, TRUE)",
]
RUN_SUMMARY = (
    "SELECT JOB_NAME, STATUS, COUNT(*) AS RUNS FROM REDSYS.ALL_ADM_JOB_LOG WHERE SCHEMA_NAME = 'DEMO' "
    "GROUP BY JOB_NAME, STATUS ORDER BY JOB_NAME, STATUS"
)


def create_demo_instance(redhome: Path) -> InstancePaths:
    """The demo instance's tree and a config on free loopback ports with the embedded database (mode 0600)."""
    paths = InstancePaths.for_instance(DEMO_INSTANCE, redhome)
    create_instance_tree(paths)
    ensure_certificate(paths)  # CFISRV's self-signed certificate
    keys = (
        *("sched_service_port", "dbls_port", "jexec_port", "sendmail_port", "sendfile_port"),
        *("cfi_port", "cfi_explicit_port"),
    )
    *chosen, database_port = free_ports(len(keys) + 1)  # distinct ports: two services on one fail the start
    ports = {key: str(port) for key, port in zip(keys, chosen, strict=True)}
    paths.config_file.write_text(
        render_config(
            {
                "DEFAULT": {
                    "exa_password": "demo-only-password",
                    "exa_connection": f"127.0.0.1:{database_port}",
                    "exa_encryption": "false",
                },
                "redctl": {
                    **ports,
                    **mail.relay_keys(paths),  # SENDMAIL relays to the local relay the demo starts
                    "cfi_password": "demo-only-password",
                    "devdb_enabled": "true",
                    "jmon_poll_interval": "1",
                    "jmon_stats_interval": "10",
                    "ingest_stable_seconds": "1",  # the demo's files are complete when dropped
                },
                "rest": rest.config_keys(paths),  # the REST API starts with the instance
            }
        )
    )
    paths.config_file.chmod(0o600)
    return paths


def show_config(config: Config) -> None:
    print(f"== validated configuration: {config.path}")
    for section_name in ("default", "redctl", "rest"):
        section = getattr(config, section_name)
        shown = ", ".join(f"{k}={v}" for k, v in vars(section).items() if not k.startswith("sendmail_smtp"))
        print(f"   [{section_name}] {shown}")


class Demo:
    def __init__(self, paths: InstancePaths) -> None:
        self.paths = paths
        self.env = {**os.environ, **paths.environment()}
        self.trace: subprocess.Popen[bytes] | None = None

    def redctl(self, *args: str, show: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "redpss.cli.redctl.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if show:
            print(f"== $ redctl {' '.join(args)}\n{result.stdout.rstrip()}{result.stderr.rstrip()}")
        return result

    def start(self) -> None:
        print(f"== $ redctl start_trace   (instance {self.paths.redenv})", flush=True)
        self.trace = subprocess.Popen(
            [sys.executable, "-m", "redpss.cli.redctl.main", "start_trace"], env=self.env, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while self.redctl("show", show=False).returncode != 0:
            if self.trace.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redpss-demo: the instance did not start (start_trace code {self.trace.poll()})")
            time.sleep(0.3)  # waiting for JMON's control socket, with the deadline above

    def define_sample_jobs(self) -> None:
        self.redctl("db_register", "DEMO")
        config = load_config(self.paths.config_file)
        session = DbSession(DbSettings.from_config(config, client_name="redpss-demo"))
        try:
            for statement in SAMPLE_SQL:
                session.execute(statement)
            ingest.define(session)  # the order loader becomes a LOAD job fed by CSVSRV
            udf_bridge.define(session, self.paths)  # a job logging through PSS_LOG, an ACTION job through JEXEC
            session.commit()
        finally:
            session.close()
        self.redctl("reload")
        self.redctl("list_db_jobs")

    def drop_order_file(self) -> None:
        ingest.drop_samples(self.paths)  # JSON and Parquet orders, converted, then loaded by CSVSRV's LOAD job

    def summary(self) -> None:
        self.redctl("show")
        config = load_config(self.paths.config_file)
        session = DbSession(DbSettings.from_config(config, client_name="redpss-demo"))
        try:
            ingest.show(self.paths, session)
            udf_bridge.show(self.paths, session)
            print("== run log (REDSYS.ALL_ADM_JOB_LOG):")
            for name, status, count in session.fetchall(RUN_SUMMARY):
                print(f"   {name:<18} {status:<8} {count}")
        finally:
            session.close()

    def stop(self) -> int:
        if self.trace is None:
            return 0
        print("== stopping: SIGINT to start_trace (as Ctrl+C would)", flush=True)
        self.trace.send_signal(signal.SIGINT)
        code = self.trace.wait(timeout=300)
        self.trace = None
        return code

    def kill(self) -> None:
        """After an error: Ctrl+C twice (drain, then force), as an operator would; start_trace passes both on."""
        for _ in range(2):
            if self.trace is None or self.trace.poll() is not None:
                return
            self.trace.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.trace.wait(timeout=60)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="redpss-demo", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the jobs run before the summary")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="redpss-demo-") as tmp:
        paths = create_demo_instance(Path(tmp) / "redsys")
        print(f"== instance {paths.redenv} created in REDHOME={paths.redhome}")
        for folder in sorted(p for p in paths.home.rglob("*") if p.is_dir()):
            print(f"   {folder.relative_to(paths.home)}/  ({folder.stat().st_mode & 0o7777:04o})")
        show_config(load_config(paths.config_file))
        demo = Demo(paths)
        try:
            demo.start()
            demo.define_sample_jobs()
            mail.demonstrate(paths)  # a mail with an attachment through SENDMAIL to a local relay
            rest.demonstrate(paths)  # API users, and one curl command against the REST API
            console.demonstrate(paths)  # the web console's URL, a reader and an operator login
            time.sleep(min(3.0, args.seconds / 3))  # the demo's pacing: let the jobs run a little
            demo.drop_order_file()
            time.sleep(max(0.0, args.seconds - 3.0))
            demo.summary()
            code = demo.stop()
        finally:
            demo.kill()
        print(f"== start_trace exited with code {code}")
        return code


if __name__ == "__main__":
    raise SystemExit(main())
