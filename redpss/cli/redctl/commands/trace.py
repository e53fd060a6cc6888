"""redctl start_trace: every daemon of the instance in the foreground, logs on the terminal, Ctrl+C stops all.

The daemons start in the order of redpss.core.services (the embedded database first), each only after the
previous one reported READY on a notify socket this command binds (the same protocol systemd uses). They run in
their own process group, so Ctrl+C reaches this command alone: it then stops the daemons in reverse order with
SIGTERM (each drains), and a second Ctrl+C forces them, as systemd's stop and kill would.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redpss.cli.redctl.clients import Instance
from redpss.core.errors import RedpssError, StartupError
from redpss.core.exitcodes import ExitCode
from redpss.core.services import ServiceSpec, enabled_services

READY_TIMEOUT = 120.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("start_trace", help="start server with output on STDOUT and STDERR")
    parser.add_argument("-S", "--suspended", action="store_true", help="start suspended: no jobs or watchers run")
    parser.set_defaults(handler=start_trace)


class _Trace:
    def __init__(self, instance: Instance, debug: bool) -> None:
        self.instance = instance
        self.debug = debug
        self.children: list[tuple[ServiceSpec, subprocess.Popen[bytes]]] = []
        self.signals = 0
        self.notify_dir = Path(tempfile.mkdtemp(prefix="redctl-trace-"))
        self.notify_path = self.notify_dir / "notify"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))

    def on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1  # acted on by the loops below

    def start(self, spec: ServiceSpec) -> None:
        env = {**os.environ, **self.instance.paths.environment(), "NOTIFY_SOCKET": str(self.notify_path)}
        env.pop("JOURNAL_STREAM", None)  # a terminal, not the journal
        argv = [sys.executable, "-m", spec.module, "--instance", self.instance.paths.redenv]
        if self.debug:
            argv.append("--debug")
        process = subprocess.Popen(argv, env=env, process_group=0)
        self.children.append((spec, process))
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and not self.signals:
            if process.poll() is not None:
                raise StartupError(f"{spec.program} exited with code {process.returncode} before it was ready")
            self.notify.settimeout(0.2)
            try:
                data = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in data and f"MAINPID={process.pid}" in data:
                return
        if not self.signals:
            raise StartupError(f"{spec.program} did not report ready within {READY_TIMEOUT:.0f} s")

    def drain_notifications(self) -> None:
        """Read and drop what the daemons send after READY (STATUS=...), so their notify calls never pile up."""
        self.notify.setblocking(False)
        try:
            while self.notify.recv(4096):
                pass
        except BlockingIOError:
            pass
        finally:
            self.notify.setblocking(True)

    def wait(self) -> int:
        while not self.signals:
            self.drain_notifications()
            for spec, process in self.children:
                if process.poll() is not None:
                    print(
                        f"redctl: {spec.program} exited with code {process.returncode}; stopping the others",
                        file=sys.stderr,
                    )
                    return int(ExitCode.FAILURE)
            time.sleep(0.2)  # supervision period of the trace session
        return int(ExitCode.OK)

    def stop(self) -> int:
        """SIGTERM in reverse start order, waiting for each; a further Ctrl+C sends SIGINT (force) to the rest."""
        worst = 0
        for _spec, process in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                forced_at = self.signals
                while process.poll() is None:
                    self.drain_notifications()
                    if self.signals > forced_at:
                        process.send_signal(signal.SIGINT)
                        forced_at = self.signals
                    time.sleep(0.1)  # waiting for the child's drain
            worst = max(worst, process.returncode or 0)
        return worst

    def close(self) -> None:
        self.notify.close()
        self.notify_path.unlink(missing_ok=True)
        self.notify_dir.rmdir()


ALL_READY = "every daemon reported ready"


def start_trace(args: argparse.Namespace) -> int:
    instance = Instance.from_args(args)
    if args.suspended:
        instance.paths.suspend_marker.touch(exist_ok=True)
    trace = _Trace(instance, args.debug)
    previous = {s: signal.signal(s, trace.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        names = ", ".join(s.program for s in enabled_services(instance.config))
        print(f"redctl: starting {names} for {instance.paths.redenv} (Ctrl+C stops them)", file=sys.stderr)
        try:
            for spec in enabled_services(instance.config):
                trace.start(spec)
                if trace.signals:
                    break
            else:
                print(f"redctl: {ALL_READY} ({len(trace.children)})", file=sys.stderr)
        except RedpssError as exc:
            print(f"redctl: {exc}", file=sys.stderr)
            trace.stop()
            return int(exc.exit_code)
        code = trace.wait()
        stopped = trace.stop()
        return code or (int(ExitCode.FAILURE) if stopped else 0)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        trace.close()
