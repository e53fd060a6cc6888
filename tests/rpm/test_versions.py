"""Versions side by side: the launcher in bin/ runs each instance on the series it records; `redsysctl move`.

Two (three) installed series are small stand-in venvs under a temporary $REDHOME/lib whose programs print which
series they are; the launcher is the real bin/redpss-launch run by /bin/sh, and redsysctl is the real CLI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redpss.cli.redsysctl import versions
from redpss.cli.redsysctl.instances import instance_version, link_programs
from redpss.cli.redsysctl.main import main as redsysctl_main
from redpss.core.errors import InstanceError
from redpss.core.paths import InstancePaths, create_instance_tree
from tests.rpm.build import REPO

PROGRAMS = ("redctl", "redpss-jmon")


def fake_series(redhome: Path, series: str) -> Path:
    venv = redhome / "lib" / series
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    dist = venv / f"lib/python3.11/site-packages/redpss-{series}.7.dist-info"
    dist.mkdir(parents=True)
    (dist / "entry_points.txt").write_text("[console_scripts]\n" + "".join(f"{p} = x:y\n" for p in PROGRAMS))
    for prog in PROGRAMS:
        script = venv / "bin" / prog
        script.write_text(f'#!/bin/sh\necho "{series} {prog} $*"\n')
        script.chmod(0o755)
    return venv


@pytest.fixture
def redhome(tmp_path: Path) -> Path:
    home = tmp_path / "app/redsys"
    (home / "bin").mkdir(parents=True)
    shutil.copy(REPO / "bin/redpss-launch", home / "bin/redpss-launch")
    for prog in PROGRAMS:
        (home / "bin" / prog).symlink_to("redpss-launch")
    for series in ("0.1", "0.9", "0.10"):
        fake_series(home, series)
    return home


def instance(redhome: Path, name: str, series: str) -> InstancePaths:
    paths = InstancePaths.for_instance(name, redhome)
    create_instance_tree(paths)
    versions.move(paths, series)
    return paths


def run(program: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], **env}
    return subprocess.run([str(program), *args], env=clean, capture_output=True, text=True, check=False, timeout=10)


def test_an_instance_runs_the_series_it_records_until_moved(redhome: Path) -> None:
    tst1 = instance(redhome, "TST1", "0.1")
    dev1 = instance(redhome, "DEV1", "0.9")
    assert run(tst1.bin / "redpss-jmon", "--instance", "TST1").stdout == "0.1 redpss-jmon --instance TST1\n"
    assert run(dev1.bin / "redctl", "status").stdout == "0.9 redctl status\n"
    # the units reach the instance through env/.units/<INSTANCE>: the same record decides
    (redhome / "env/.units").mkdir()
    (redhome / "env/.units/TST1").symlink_to("../tst1")
    assert run(redhome / "env/.units/TST1/bin/redpss-jmon").stdout.startswith("0.1 ")
    assert versions.move(tst1, "0.10") == ("0.1", "0.10")
    assert run(tst1.bin / "redpss-jmon").stdout.startswith("0.10 ")
    assert run(dev1.bin / "redctl").stdout.startswith("0.9 ")  # the other instance stays where it was
    assert instance_version(tst1) == "0.10.7"
    assert tst1.version_record.read_text() == "0.10\n"


def test_server_wide_launchers_follow_redenv_else_the_newest_series(redhome: Path) -> None:
    instance(redhome, "TST1", "0.1")
    assert run(redhome / "bin/redctl", REDENV="TST1").stdout.startswith("0.1 ")
    assert run(redhome / "bin/redctl").stdout.startswith("0.10 ")  # 0.10 is newer than 0.9
    assert run(redhome / "bin/redctl", REDENV="NOSUCH").stdout.startswith("0.10 ")


def test_a_bad_record_is_refused_by_launcher_and_cli(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tst1 = instance(redhome, "TST1", "0.1")
    tst1.version_record.write_text("../../../tmp/evil\n")
    result = run(tst1.bin / "redctl")
    assert result.returncode == 127
    assert "recorded: '../../../tmp/evil'" in result.stderr
    with pytest.raises(InstanceError, match=r"not a version series like 0\.1.*redsysctl move TST1"):
        versions.recorded(tst1)
    assert instance_version(tst1) == "? (bad .version)"


def test_root_reads_no_record_it_does_not_own_and_follows_no_link(redhome: Path, tmp_path: Path) -> None:
    """Through sudo's rule the launchers run as root: a .version redsys can write must not choose the code root
    runs, nor be shown by root (a link to /etc/shadow); `..` must not make the launcher run itself for ever."""
    tst1 = instance(redhome, "TST1", "0.1")
    assert run(redhome / "bin/redctl", REDENV="TST1").stdout.startswith("0.1 ")  # root's own record is read
    os.chown(tst1.version_record, 65534, 65534)  # as redsys owns it
    assert run(redhome / "bin/redctl", REDENV="TST1").stdout.startswith("0.10 ")  # not by root: the newest
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    tst1.version_record.unlink()
    tst1.version_record.symlink_to(secret)
    for program in (redhome / "bin/redctl", tst1.bin / "redctl"):
        result = run(program, REDENV="TST1")
        assert result.stdout.startswith("0.10 ") and "secret-hash" not in result.stdout + result.stderr
    tst1.version_record.unlink()
    tst1.version_record.write_text("..\n")
    result = run(tst1.bin / "redctl")
    assert result.returncode == 127 and "recorded: '..'" in result.stderr


def test_move_to_a_series_not_installed_names_the_installed_ones(redhome: Path) -> None:
    tst1 = instance(redhome, "TST1", "0.1")
    with pytest.raises(InstanceError, match=r"version '0\.3' is not installed .*installed: 0\.1, 0\.9, 0\.10"):
        versions.move(tst1, "0.3")
    assert tst1.version_record.read_text() == "0.1\n"


def test_redsysctl_move_and_versions(
    redhome: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDHOME", str(redhome))
    tst1 = instance(redhome, "TST1", "0.1")
    assert redsysctl_main(["move", "TST1", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "instance TST1: version 0.1 -> 0.9" in out
    assert "not running" in out
    assert run(tst1.bin / "redctl").stdout.startswith("0.9 ")
    assert redsysctl_main(["versions"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("0.9 "))
    assert row.split() == ["0.9", "0.9.7", "TST1"]
    assert redsysctl_main(["move", "TST1"]) == 2
    assert "move needs the instance and the version series" in capsys.readouterr().err


def test_create_from_an_installed_series_records_it(redhome: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = InstancePaths.for_instance("TST1", redhome)
    create_instance_tree(paths)
    monkeypatch.setattr(sys, "prefix", str(redhome / "lib/0.9"))
    linked = link_programs(paths)
    assert "redctl" in linked
    assert paths.version_record.read_text() == "0.9\n"
    assert (paths.bin / "redctl").readlink() == redhome / "bin/redpss-launch"
