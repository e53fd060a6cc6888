"""redsysctl, redctl (lifecycle), restctl and redinfo without systemd: instance handling, messages, exit codes."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from redpss.cli import redinfo, restctl, systemctl
from redpss.cli.redctl.main import main as redctl
from redpss.cli.redsysctl.main import main as redsysctl
from redpss.core.db import first_address
from redpss.core.exitcodes import ExitCode, LsbStatus
from redpss.core.paths import InstancePaths

no_systemd = pytest.mark.skipif(systemctl.systemd_running(), reason="checks the behaviour outside systemd")


def test_create_builds_instance_with_private_config_and_unit_link(redhome: Path) -> None:
    assert redsysctl(["create", "tst1"]) == 0
    paths = InstancePaths.for_instance("TST1", redhome)
    assert paths.data_input.is_dir() and paths.log_db.is_dir()
    assert stat.S_IMODE(paths.config_file.stat().st_mode) == 0o600
    assert "Check the file with: redinfo --check" in paths.config_file.read_text()
    link = redhome / "env" / ".units" / "TST1"
    assert link.readlink() == Path("../tst1") and link.resolve() == paths.home.resolve()
    assert not paths.autostart_marker.exists()
    assert (paths.bin / "redctl").exists()
    assert redsysctl(["create", "TST1"]) == ExitCode.CONFIG  # refuses an existing instance


def test_root_does_not_run_the_clis_in_a_tree_another_user_owns(
    redhome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a server, $REDHOME/env belongs to redsys: root running redsysctl would run each instance's bin/redctl,
    which redsys can replace, and leave root-owned files in the instance tree. A tree of root's own stays root's."""
    assert redsysctl(["create", "TST1"]) == 0
    redsysctl(["status", "TST1"])
    assert "not as root" not in capsys.readouterr().err  # root's own tree
    os.chown(redhome / "env", 65534, 65534)
    paths = InstancePaths.for_instance("TST1", redhome)
    before = sorted(p.name for p in paths.log.iterdir())
    capsys.readouterr()
    for cli, args in ((redsysctl, ["status", "TST1"]), (redctl, ["-i", "TST1", "suspend"]), (restctl.main, ["status"])):
        assert cli(args) in (ExitCode.USAGE, LsbStatus.UNKNOWN)
        assert "not as root: root would run programs nobody can replace" in capsys.readouterr().err
    assert sorted(p.name for p in paths.log.iterdir()) == before and not paths.suspend_marker.exists()


def test_create_rejects_bad_names(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert redsysctl(["create", "1bad"]) == ExitCode.CONFIG
    assert "not valid" in capsys.readouterr().err
    assert not (redhome / "env" / "1bad").exists()


def test_drop_needs_confirmation(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redsysctl(["create", "DEV1"])
    home = redhome / "env" / "dev1"
    assert redsysctl(["drop", "DEV1"]) == ExitCode.USAGE  # stdin is not a terminal here
    assert home.is_dir()
    assert redsysctl(["drop", "DEV1", "--yes"]) == 0
    assert not home.exists() and not (redhome / "env" / ".units" / "DEV1").is_symlink()


def test_a_bad_version_record_is_named_and_hides_no_other_instance(
    redhome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `.version` that was a folder ended `redsysctl list` in a traceback, and one that held no series failed the
    whole `redsysctl versions` listing."""
    for name in ("DEV1", "DEV2", "DEV3"):
        assert redsysctl(["create", name]) == 0
    (redhome / "env" / "dev1" / ".version").mkdir()
    (redhome / "env" / "dev2" / ".version").write_text("not a series\n")
    capsys.readouterr()
    assert redsysctl(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("DEV1", "DEV2", "DEV3")) and "bad .version" in listed
    assert redsysctl(["versions"]) == 0
    shown = capsys.readouterr()
    assert "DEV1" in shown.out and "DEV2" in shown.out and "DEV3" in shown.out, shown.out
    assert "dev1/.version cannot be read (Is a directory)" in shown.err and "holds 'not a series'" in shown.err


def test_list_json(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redsysctl(["create", "TST1"])
    redsysctl(["create", "DEV1"])
    (redhome / "env" / "tst1" / ".autostart").touch()
    capsys.readouterr()
    assert redsysctl(["list", "--json"]) == 0
    rows = {r["instance"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(rows) == ["DEV1", "TST1"]  # the unit links under env/.units are not instances
    assert rows["TST1"]["autostart"] is True and rows["DEV1"]["autostart"] is False
    assert rows["TST1"]["version"] != "?"


@pytest.mark.parametrize(
    "probe",
    [
        "from redpss.cli.redsysctl.main import main\nsys.exit(main(['list']))",  # written when the command ends
        "from redpss.core.errors import run_reporting\n"  # written while the command runs
        "sys.exit(run_reporting('probe', lambda: [print('a line of output') for _ in range(20000)] and 0))",
    ],
    ids=["at-the-end", "while-running"],
)
def test_output_into_a_pipe_whose_reader_left_ends_quietly(redhome: Path, probe: str) -> None:
    """`redsysctl list | head -1`: the reader is gone before the command writes; no traceback, and exit 141 as for
    any program that SIGPIPE ends."""
    for number in range(3):
        redsysctl(["create", f"TST{number}"])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-c", "import sys\n" + probe],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141


def test_a_broken_pipe_of_the_command_s_own_work_is_not_taken_for_a_reader_gone() -> None:
    from redpss.core.errors import run_reporting  # noqa: PLC0415

    def fails() -> int:
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            os.write(write_end, b"x")
        finally:
            os.close(write_end)
        return 0

    with pytest.raises(BrokenPipeError):
        run_reporting("probe", fails)


@no_systemd
def test_lifecycle_outside_systemd_points_to_start_trace(
    instance: InstancePaths, capsys: pytest.CaptureFixture[str]
) -> None:
    assert redctl(["-i", "TST1", "start"]) == ExitCode.FAILURE
    assert "redctl start_trace" in capsys.readouterr().err
    assert redctl(["-i", "TST1", "status"]) == LsbStatus.NOT_RUNNING  # nothing answers: stopped
    out = capsys.readouterr().out
    assert "not under systemd; asked the daemons directly (as run by redctl start_trace)" in out
    assert "redpss-jmon    stopped" in out and "redpss-sched   stopped" in out
    assert redsysctl(["start-all"]) == ExitCode.FAILURE
    assert "redctl start_trace" in capsys.readouterr().err


def test_restctl_when_disabled(instance: InstancePaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert restctl.main(["-i", "TST1", "start"]) == ExitCode.FAILURE
    assert "rest_enabled = false" in capsys.readouterr().out
    assert restctl.main(["-i", "TST1", "status"]) == 0
    assert restctl.main(["-i", "TST1", "stop"]) == 0


def test_redinfo_check(instance: InstancePaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert redinfo.main(["-i", "TST1", "--check"]) == 0
    text = instance.config_file.read_text()
    instance.config_file.write_text(
        text.replace("#log_retention = 30", "log_retention = soon").replace("#gu_workers = 2", "gu_workers = many")
    )
    assert redinfo.main(["-i", "TST1", "--check"]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert "log_retention" in err and "gu_workers" in err  # every problem, not only the first


def test_redinfo_json_masks_secrets_and_probes_the_database(
    instance: InstancePaths, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        text = instance.config_file.read_text().replace(
            "#exa_connection = localhost:8563", f"exa_connection = 127.0.0.1:{port}"
        )
        instance.config_file.write_text(text)
        (instance.log / "x.log").write_bytes(b"x" * 1000)
        assert redinfo.main(["-i", "TST1", "--json"]) == 0
    out = capsys.readouterr().out
    assert "secret-pw" not in out
    info = json.loads(out)
    assert info["config"]["default"]["exa_password"] == "********"
    assert info["database"]["reachable"] is True
    assert info["disk"]["log"] >= 1000


def test_db_unreachable_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        result = redinfo.db_reachable(f"127.0.0.1:{port}", timeout=1.0)
    assert result["reachable"] is False


@pytest.mark.parametrize(
    ("dsn", "address"),
    [
        ("localhost:8563", ("localhost", 8563)),
        ("exa1..3/ABCDEF0123:8563,exa9:8564", ("exa1", 8563)),
        ("10.0.0.1/FP:9000", ("10.0.0.1", 9000)),
        ("nonsense", None),
    ],
)
def test_first_db_address(dsn: str, address: tuple[str, int] | None) -> None:
    assert first_address(dsn) == address


def test_parse_show_and_lsb_status() -> None:
    text = (
        "Id=a.service\nActiveState=active\nSubState=running\nMainPID=12\n\n"
        "Id=b.service\nActiveState=failed\nSubState=failed\nMainPID=0\nResult=exit-code\n"
    )
    blocks = systemctl.parse_show(text)
    assert [b["Id"] for b in blocks] == ["a.service", "b.service"]
    running = systemctl.UnitState("a", active="active", sub="running")
    failed = systemctl.UnitState("b", active="failed", sub="failed", result="exit-code")
    stopped = systemctl.UnitState("c")
    assert systemctl.lsb_status([running]) == LsbStatus.RUNNING
    assert systemctl.lsb_status([running, failed]) == LsbStatus.DEAD_WITH_PIDFILE
    assert systemctl.lsb_status([running, stopped]) == LsbStatus.NOT_RUNNING
    assert "result exit-code" in failed.describe()


def test_profile_snippet_defines_instance_commands_for_the_owner_of_the_trees_only(redhome: Path) -> None:
    """A folder under env/ named like a command (`ls`) must not hide it, and for a user who does not own env/ (root
    on a server, where redsys owns it) no instance command is defined: redsys names the folders."""
    redsysctl(["create", "TST1"])
    (redhome / "env" / "ls").mkdir()
    snippet = Path(__file__).resolve().parents[2] / "etc" / "profile.d" / "redpss.sh"

    def kinds() -> str:
        script = f'. "{snippet}"; echo "tst1=$(type -t tst1) ls=$(type -t ls)"'
        env = {"PATH": "/usr/bin:/bin", "HOME": str(redhome), "REDHOME": str(redhome)}
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout

    assert kinds() == "tst1=function ls=file\n"
    os.chown(redhome / "env", 65534, 65534)
    assert kinds() == "tst1= ls=file\n"


def test_profile_snippet_enters_an_instance(redhome: Path) -> None:
    """A real interactive bash: $REDHOME/bin is on PATH; `tst1` opens the instance shell with banner and prompt; CTRL-D
    leaves it."""
    redsysctl(["create", "TST1"])
    (redhome / "bin").mkdir(exist_ok=True)
    snippet = Path(__file__).resolve().parents[2] / "etc" / "profile.d" / "redpss.sh"
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(  # noqa: S606 - the test is the terminal of an interactive shell
            "bash",
            ["bash", "--noprofile", "--rcfile", str(snippet), "-i"],
            {"PATH": os.environ["PATH"], "HOME": str(redhome), "REDHOME": str(redhome), "TERM": "dumb"},
        )
    output = b""

    def read_until(pattern: bytes, start: int = 0) -> int:
        """Read until `pattern` (a regex) appears after offset `start`; return the offset after the match."""
        nonlocal output
        deadline = time.monotonic() + 10
        while not (found := re.compile(pattern).search(output, start)) and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                output += os.read(fd, 4096)
        assert found, output.decode(errors="replace")
        return found.end()

    try:
        os.write(fd, b"tst1\n")
        read_until(rb"TST1 \[")
        os.write(fd, b'echo "<$REDENV:$PWD>"\n')
        echoed = read_until(re.escape(b":" + str(redhome).encode() + b"/env/tst1>"))
        text = output.decode(errors="replace")
        assert "current environment: TST1" in text and "tst1]" in text
        read_until(rb"TST1 \[[^\n]*[$#] $", echoed)  # the instance prompt is back: CTRL-D now reaches it
        os.write(fd, b"\x04")
        read_until(rb"\n[^\n]*[$#] $", echoed)  # the outer shell's prompt
        os.write(fd, b'echo "<out:${REDENV:-none}>"\n')
        read_until(rb"<out:none>")
        os.write(fd, b'echo "<path:$PATH>"\n')  # the CLIs in $REDHOME/bin are found in every login shell
        read_until(rb"<path:" + re.escape(str(redhome / "bin").encode()) + rb":")
        os.write(fd, b"exit\n")
    finally:
        os.close(fd)
        os.waitpid(pid, 0)


def test_status_of_an_unknown_instance_is_unknown_not_stopped(
    redhome: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LSB: 3 means stopped on purpose; a typo'd instance must not read as one (a monitor would see it as down)."""
    assert redctl(["-i", "TST9", "status"]) == LsbStatus.UNKNOWN
    assert "instance TST9 does not exist" in capsys.readouterr().err
    assert restctl.main(["-i", "TST9", "status"]) == LsbStatus.UNKNOWN
    assert redsysctl(["status", "TST9"]) == LsbStatus.UNKNOWN
    assert redctl(["-i", "TST9", "stop"]) == ExitCode.CONFIG  # other commands keep their own codes


def test_redsysctl_takes_its_options_anywhere(redhome: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert redsysctl(["create", "--json", "TST3"]) == 0
    assert redsysctl(["list", "--json"]) == 0
    assert redsysctl(["drop", "--yes", "TST3"]) == 0
    assert not (redhome / "env" / "tst3").exists()


def test_an_instance_program_that_cannot_run_fails_that_instance_with_a_hint(
    instance: InstancePaths, capsys: pytest.CaptureFixture[str]
) -> None:
    """redsys.service runs with systemd's PATH: without the instance's own bin/redctl, redsysctl uses the one
    installed beside itself; one that cannot be run (its interpreter gone) fails that instance only, with a hint."""
    from redpss.cli.redsysctl.instances import instance_program  # noqa: PLC0415
    from redpss.cli.redsysctl.main import _call  # noqa: PLC0415

    (instance.bin / "redctl").unlink(missing_ok=True)
    beside = Path(instance_program(instance, "redctl"))
    assert beside.name == "redctl" and beside.parent != instance.bin and os.access(beside, os.X_OK)
    broken = instance.bin / "redctl"
    broken.write_text("#!/nonexistent/python3\n")
    broken.chmod(0o755)
    assert _call(instance, "redctl", "start") == ExitCode.FAILURE
    assert _call(instance, "redctl", "status") == LsbStatus.UNKNOWN
    err = capsys.readouterr().err
    assert f"TST1: cannot run {broken}" in err and "redsysctl move TST1" in err


def test_watch_refuses_an_interval_it_cannot_sleep(instance: InstancePaths, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("-1", "0", "nan", "soon"):
        with pytest.raises(SystemExit) as exited:
            redctl(["-i", "TST1", "watch", "--interval", bad])
        assert exited.value.code == ExitCode.USAGE
        assert "is not a number of seconds from 0.1 to 86400" in capsys.readouterr().err


def test_a_file_error_is_named_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command ends through run_reporting: an OSError about a file is `<prog>: <file>: <why>`, exit 1; one
    about no file (a fault of the program) keeps its traceback."""
    from redpss.core.errors import run_reporting  # noqa: PLC0415

    def unreadable() -> int:
        raise IsADirectoryError(21, "Is a directory", "/app/redsys/env/tst1/.version")

    def fault() -> int:
        raise OSError("no file named")

    assert run_reporting("redsysctl", unreadable) == ExitCode.FAILURE
    assert capsys.readouterr().err == "redsysctl: /app/redsys/env/tst1/.version: Is a directory\n"
    with pytest.raises(OSError, match="no file named"):
        run_reporting("redsysctl", fault)
