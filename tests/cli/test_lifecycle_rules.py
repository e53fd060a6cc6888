"""The rules behind redsysctl/redctl/restctl's answers that hold without systemd: LSB codes, unit lines, usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from redpss.cli import systemctl
from redpss.cli.redsysctl.main import _status_summary
from redpss.cli.redsysctl.main import main as redsysctl
from redpss.core.exitcodes import ExitCode, LsbStatus
from redpss.core.services import journal_command


def test_a_dead_unit_shows_no_stale_status_text() -> None:
    """systemd keeps the last STATUS= of a process that died; beside 'failed' it would say the opposite."""
    dead = systemctl.UnitState(
        "redpss-jmon@TST1.service",
        load="loaded",
        active="failed",
        sub="failed",
        status_text="jmon ready: 3 jobs",
        result="start-limit-hit",
    )
    assert dead.describe() == "failed (failed), result start-limit-hit"
    alive = systemctl.UnitState(
        "redpss-jmon@TST1.service", load="loaded", active="active", sub="running", main_pid=7, status_text="ready"
    )
    assert alive.describe() == "active (running) pid 7: ready"


def test_a_unit_systemd_does_not_know_is_not_installed_and_never_addressed() -> None:
    missing = systemctl.UnitState("redpss-rest@TST1.service")
    assert not missing.installed and not missing.live
    assert missing.describe() == "not installed"


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([0, 0], LsbStatus.RUNNING),
        ([0, 3], LsbStatus.NOT_RUNNING),
        ([3, 1, 0], LsbStatus.DEAD_WITH_PIDFILE),  # a failure is never hidden behind a stop (max() would say 3)
        ([1, 4], LsbStatus.DEAD_WITH_PIDFILE),
        ([0, 4], LsbStatus.UNKNOWN),
    ],
)
def test_worst_status_puts_failed_before_stopped(codes: list[int], expected: LsbStatus) -> None:
    assert systemctl.worst_status(codes) == expected


def test_status_all_tells_stopped_on_purpose_from_failed(capsys: pytest.CaptureFixture[str]) -> None:
    assert _status_summary({"TST1": 0, "DEV1": 3}) == LsbStatus.NOT_RUNNING
    assert capsys.readouterr().out.strip() == "running: TST1; stopped: DEV1"
    assert _status_summary({"TST1": 3, "DEV1": 1}) == LsbStatus.DEAD_WITH_PIDFILE
    assert "failed: DEV1" in capsys.readouterr().out
    assert _status_summary({"TST1": 0}) == LsbStatus.RUNNING


@pytest.mark.parametrize("command", ["start", "stop", "status", "restart"])
def test_single_instance_command_without_instance_exits_2_with_usage(
    redhome: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert redsysctl([command]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "set REDENV" in err and "redsysctl {start | stop | status | restart} instance" in err


def test_list_shows_suspended_instances(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redsysctl(["create", "TST1"])
    redsysctl(["create", "DEV1"])
    (redhome / "env" / "dev1" / ".suspended").touch()
    capsys.readouterr()
    assert redsysctl(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    rows = {line.split()[0]: dict(zip(header, line.split(), strict=False)) for line in lines[1:]}
    assert "SUSPENDED" in header
    assert rows["DEV1"]["SUSPENDED"] == "yes" and rows["TST1"]["SUSPENDED"] == "no"


def test_journal_command_names_whole_unit_names() -> None:
    """journalctl does not add .service to a glob: without it the pattern matches nothing ("No data available")."""
    assert journal_command("TST1") == "journalctl -u 'redpss-*@TST1.service'"
    assert journal_command("TST1", ["redpss-jmon@TST1.service"]) == "journalctl -u redpss-jmon@TST1.service"
