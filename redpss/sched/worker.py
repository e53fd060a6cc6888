"""A SCHED worker process: reads run requests on stdin, carries them out, writes results on stdout.

One JSON message per line both ways. The first line out is `{"ready": true, "pid": ...}`. The worker ends when its
stdin closes (the master's way to stop it after the current run). SIGINT is ignored: Ctrl+C in `redctl start_trace`
reaches the whole process group, and it is the master that decides what happens to running work.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.logging import setup_logging
from redpss.core.paths import InstancePaths
from redpss.sched.runners import execute
from redpss.sched.runs import FAILED, RunRequest, RunResult

log = logging.getLogger("redpss.sched.worker")


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="redpss-sched-worker")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--index", type=int, required=True)
    args = parser.parse_args(argv)
    paths = InstancePaths.from_env(name=args.instance).require()
    config = load_config(paths.config_file)
    setup_logging("sched", instance=paths.redenv, level=config.redctl.log_level, log_file=paths.log_file("sched"))
    worker = f"{args.pool}-{args.index}[{os.getpid()}]"
    session = DbSession(DbSettings.from_config(config, client_name=f"RED-PSS SCHED {worker}"))
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            try:
                request = RunRequest.from_dict(json.loads(line))
            except ValueError as exc:
                result = RunResult("?", FAILED, f"bad run request: {exc}", worker=worker)
            else:
                result = execute(request, session, paths, worker)
            out.write(json.dumps(result.to_dict(), default=str) + "\n")
            out.flush()
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
