"""A throw-away instance and one of its PSS daemons (DBLS, SENDMAIL), started for a benchmark.

The benchmarks of the daemons the database's scripts reach all need the same: an instance tree under a temporary
folder with a config naming the daemon's port, the instance secret, and the daemon started as a process of its own
and known to listen (a PSS hello with the secret succeeds) before the clock starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from redpss.core.config import render_config
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths, create_instance_tree
from redpss.core.secret import instance_secret
from redpss.sql.udf.pss_client import PssClient, PssError

LISTEN_TIMEOUT = 30.0  # seconds a daemon may take to listen (pyexasol and the registry are imported first)


def bench_instance(root: Path, redctl: dict[str, str], name: str = "BENCH") -> tuple[InstancePaths, str]:
    """An instance tree below `root` whose [redctl] holds `redctl` (a database that is never reached); (paths,
    the instance secret)."""
    paths = InstancePaths.for_instance(name, root)
    create_instance_tree(paths)
    paths.config_file.write_text(
        render_config(
            {
                "DEFAULT": {"exa_password": "pw", "exa_connection": f"127.0.0.1:{free_port()}"},
                "redctl": {"log_level": "WARN", **redctl},
            }
        )
    )
    paths.config_file.chmod(0o600)
    return paths, instance_secret(paths)


def start_pss_daemon(
    module: str, paths: InstancePaths, port: int, secret: str, cpus: set[int] | None = None
) -> subprocess.Popen[bytes]:
    """Run `python -m <module> --instance <name>` and return once it answers a PSS hello on `port`; a daemon that
    exits or does not listen within LISTEN_TIMEOUT is killed and the client's error raised. `cpus`: the CPUs the
    daemon and every thread it starts may run on."""
    env = {**os.environ, **paths.environment(), "EXASOL_TELEMETRY_DISABLE": "1"}
    command = [sys.executable, "-m", module, "--instance", paths.redenv]
    if cpus is not None:
        command = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), *command]
    daemon = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while True:
        try:
            PssClient("127.0.0.1", port, secret).close()
            return daemon
        except PssError:
            if time.monotonic() > deadline or daemon.poll() is not None:
                daemon.kill()
                daemon.wait(30)
                raise
            time.sleep(0.1)  # pacing: waiting for the daemon to listen
