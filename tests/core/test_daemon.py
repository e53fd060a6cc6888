"""The service lifecycle, shown on a real daemon process (redpss-heartbeat) with real signals and a real
NOTIFY_SOCKET bound by the test: READY only once serving, watchdog pings, SIGHUP reload, SIGTERM drain, a second
signal forcing, the drain timeout, and start-up errors exiting 3 with the whole message.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from redpss.core.paths import InstancePaths
from tests.support.daemons import DaemonProcess
from tests.support.journal import JournalListener


class Daemon(DaemonProcess):
    """One redpss-heartbeat process of instance TST1."""

    def __init__(self, instance: InstancePaths, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        module_args = list(args)
        name = "TST1"
        if "--instance" in module_args:  # the test asks for another instance on purpose
            position = module_args.index("--instance")
            name = module_args[position + 1]
            del module_args[position : position + 2]
        target = instance if name == "TST1" else InstancePaths(instance.redhome, name)
        super().__init__("redpss.demo.heartbeat", target, tmp_path, *module_args, env=env, log_name="heartbeat")

    def exit_code(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)


class DaemonStarter(Protocol):
    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Daemon: ...


@pytest.fixture
def start_daemon(instance: InstancePaths, tmp_path: Path) -> Iterator[DaemonStarter]:
    started: list[Daemon] = []

    def factory(*args: str, env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(instance, tmp_path, *args, env=env)
        started.append(daemon)
        return daemon

    yield factory
    for daemon in started:
        daemon.close()


def test_ready_after_start_then_sigterm_drains_in_flight_work(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.2", "--work-seconds", "1.0")
    ready = daemon.notify.wait_for("READY", "1")
    assert ready["MAINPID"] == str(daemon.process.pid)
    assert "in flight" in ready["STATUS"]
    daemon.wait_log("beat 1 started")
    daemon.process.send_signal(signal.SIGTERM)
    assert "draining" in daemon.notify.wait_for("STOPPING", "1")["STATUS"]
    assert daemon.exit_code() == 0
    log = daemon.log
    assert "SIGTERM received: heartbeat draining in-flight work" in log
    assert "handed back" not in log
    started = log.count(" started {BEAT=")
    assert started >= 1
    assert log.count(" done {BEAT=") == started  # every beat that started also finished
    assert log.rstrip().endswith("heartbeat stopped cleanly")


def test_sigterm_during_a_tick_stops_without_waiting_for_the_next_tick(start_daemon: DaemonStarter) -> None:
    """A signal handled while the loop awaits a tick must not be lost until the next tick (60 s here)."""
    daemon = start_daemon("--interval", "60", "--work-seconds", "0.1", "--tick-seconds", "2")
    daemon.notify.wait_for("READY", "1")
    daemon.wait_log("tick 1 takes")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code(timeout=20) == 0
    assert daemon.log.rstrip().endswith("heartbeat stopped cleanly")


def test_second_signal_forces_and_hands_back_in_flight_work(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.2", "--work-seconds", "600")
    daemon.notify.wait_for("READY", "1")
    daemon.wait_log("beat 2 started")
    daemon.process.send_signal(signal.SIGTERM)
    daemon.notify.wait_for("STOPPING", "1")
    daemon.wait_log("waiting for")
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.exit_code() == 1
    assert "second SIGINT received: forcing stop" in daemon.log
    assert "beat 1 handed back unfinished" in daemon.log
    assert "beat 2 handed back unfinished" in daemon.log
    assert "stopped cleanly" not in daemon.log


def test_drain_timeout_forces_the_stop(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.2", "--work-seconds", "600", "--drain-timeout", "0.5")
    daemon.notify.wait_for("READY", "1")
    daemon.wait_log("beat 1 started")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code() == 1
    assert "drain did not finish within 0 s" in daemon.log or "drain did not finish within 1 s" in daemon.log
    assert "handed back unfinished" in daemon.log


def test_sighup_reloads_with_reloading_then_ready(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "5")
    daemon.notify.wait_for("READY", "1")
    daemon.process.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1")
    daemon.notify.wait_for("READY", "1", nth=2)
    daemon.wait_log("heartbeat reloaded")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code() == 0


def test_watchdog_pings_follow_watchdog_usec(start_daemon: DaemonStarter) -> None:
    # With a 60 s tick only the watchdog (due every 0.1 s for WATCHDOG_USEC=0.2 s) wakes the loop.
    daemon = start_daemon("--interval", "60", env={"WATCHDOG_USEC": "200000"})
    daemon.notify.wait_for("READY", "1")
    daemon.notify.wait_for("WATCHDOG", "1", nth=5, timeout=10)
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code() == 0


def test_no_watchdog_pings_without_watchdog_usec(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.05", "--work-seconds", "0")
    daemon.notify.wait_for("READY", "1")
    daemon.wait_log("beat 5 done")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code() == 0
    assert daemon.notify.count("WATCHDOG") == 0


def test_bad_config_exits_3_listing_every_problem_and_never_ready(
    start_daemon: DaemonStarter, instance: InstancePaths
) -> None:
    instance.config_file.write_text(
        "[DEFAULT]\nlog_level = LOUD\n[redctl]\nsched_service_port = 80\ndbls_port = 7403\n"
    )
    instance.config_file.chmod(0o644)
    daemon = start_daemon()
    assert daemon.exit_code() == 3
    stderr = daemon.stderr
    assert f"redpss-heartbeat: {instance.config_file}: 4 problems in the configuration:" in stderr
    assert "[DEFAULT] log_level = 'LOUD': must be one of DEBUG, INFO, WARN, ERROR, ALERT" in stderr
    assert "[DEFAULT] exa_password: missing" in stderr
    assert "sched_service_port = '80': must be a port number from 1024 to 65535" in stderr
    assert "jexec_port = 7403: already used by [redctl] dbls_port" in stderr
    assert daemon.notify.count("READY") == 0


def test_world_readable_password_file_exits_3_with_the_chmod(
    start_daemon: DaemonStarter, instance: InstancePaths
) -> None:
    instance.config_file.chmod(0o644)
    daemon = start_daemon()
    assert daemon.exit_code() == 3
    assert f"run: chmod 600 {instance.config_file}" in daemon.stderr


def test_missing_instance_exits_3_and_names_the_command_that_creates_it(
    start_daemon: DaemonStarter, instance: InstancePaths
) -> None:
    daemon = start_daemon("--instance", "NOPE1")
    assert daemon.exit_code() == 3
    assert "instance NOPE1 does not exist" in daemon.stderr
    assert "redsysctl create NOPE1" in daemon.stderr


def test_daemon_logs_structured_fields_to_journald(start_daemon: DaemonStarter, tmp_path: Path) -> None:
    journal = JournalListener(tmp_path / "journal.socket")
    try:
        daemon = start_daemon(
            "--interval", "0.2", "--work-seconds", "0.1", env={"REDPSS_JOURNAL_SOCKET": str(journal.path)}
        )
        entry = journal.receive_until("beat 1 started")
        assert entry["REDENV"] == "TST1"
        assert entry["REDPSS_SERVICE"] == "heartbeat"
        assert entry["SYSLOG_IDENTIFIER"] == "redpss-heartbeat"
        assert entry["BEAT"] == "1"
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.exit_code() == 0
        assert daemon.stderr == ""  # journald got everything, nothing doubled on stderr
    finally:
        journal.close()


def test_sigterm_during_start_up_stops_cleanly(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--start-delay", "600")  # start() takes ten minutes: a stop must not wait for it
    daemon.wait_log("starting (taking 600 s)")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code(timeout=30) == 0
    assert "SIGTERM received during start-up: heartbeat stops without having served" in daemon.log
    assert daemon.notify.count("READY") == 0


def test_a_long_lived_task_that_raises_ends_the_daemon_with_its_traceback(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.2", "--work-seconds", "600", "--task-ends-after", "0.5")
    daemon.notify.wait_for("READY", "1")
    assert daemon.exit_code() == 1  # non-zero: systemd's Restart=on-failure brings it back
    log = daemon.log
    assert "ERROR" in log and "long-lived task heartbeat:pacemaker raised RuntimeError" in log
    assert "Traceback (most recent call last)" in log and "the pacemaker lost its rhythm" in log
    assert "handed back unfinished" in log  # abort() ran: in-flight work is handed back, not lost
    assert "task heartbeat:pacemaker raised" in daemon.notify.wait_for("STOPPING", "1")["STATUS"]


def test_a_long_lived_task_that_returns_unasked_ends_the_daemon(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.2", "--task-ends-after", "0.3", "--task-ends-with", "return")
    daemon.notify.wait_for("READY", "1")
    assert daemon.exit_code() == 1
    assert "long-lived task heartbeat:pacemaker returned; exiting so that it is restarted" in daemon.log


def test_long_lived_tasks_ending_during_the_drain_are_not_an_error(start_daemon: DaemonStarter) -> None:
    daemon = start_daemon("--interval", "0.2", "--work-seconds", "0", "--task-ends-after", "600")
    daemon.notify.wait_for("READY", "1")
    daemon.wait_log("beat 1 done")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.exit_code() == 0
    assert "long-lived task" not in daemon.log
