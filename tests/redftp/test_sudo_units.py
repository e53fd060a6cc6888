"""The sudo fallback for units (etc/sudoers.d/redpss-units), checked by the real sudo in a scratch root.

The file is installed as the RPM would (0440 in /etc/sudoers.d, checked by visudo) in a scratch root that has a
redsys user. sudo itself (`sudo -l -U redsys COMMAND`) is asked about every action with RED-PSS units, with a foreign
unit, and with anything appended. Then redsys runs the commands for real, with a stand-in for /usr/bin/systemctl
bind-mounted in the scratch root's private mount namespace (the host's systemctl is never touched) that records the
arguments it got as root — through the project's own retry in redpss/cli/systemctl.py, too.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redftp import sudoers_units
from tests.redftp.scratchroot import PROJECT, ScratchRoot, missing_tools

pytestmark = [pytest.mark.slow, pytest.mark.root]

RULE = PROJECT / "etc" / "sudoers.d" / "redpss-units"
INSTALLED = "/etc/sudoers.d/redpss-units"
SYSTEMCTL = "/usr/bin/systemctl"
CALLS = "/tmp/systemctl-calls"
PYTHON = str(PROJECT / ".venv" / "bin" / "python")
# Records its arguments when run as root; as anyone else it answers like systemctl denied by polkit.
STAND_IN = f"""#!/bin/sh
if [ "$(id -u)" != 0 ]; then echo "Failed to $2 unit: Access denied" >&2; exit 1; fi
echo "$*" >> {CALLS}
"""
ALLOWED_UNITS = (
    "redpss@T.target",
    "redpss@TST1.target",
    "redpss-jmon@TST1.service",
    "redpss-sched@A1234567.service",
    "redpss-json2csv@DEV1.service",
    "redpss-abc@Z.service",
    "redpss-heartbeat@PROD2.service",
)
FOREIGN = (
    "victim.service",
    "redpss-jmon@tst1.service",
    "redpss-jmon@TST1.service.d",
    "redpss-jmon@ABCDEFGHI.service",
    "redpss-jmon@1TST.service",
    "redpss-@TST1.service",
    "redpss-a@TST1.service",
    "redpss@TST1.service",
    "redpss-jm_on@TST1.service",
    "redpss-jmon@TST1.target",
    "redpss-jmon@TST1.socket",
    "sshd.service",
)


def _action_lines() -> list[str]:
    return [f"{sudoers_units.SYSTEMCTL} {action}" for action in sudoers_units.ACTIONS.values()]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchRoot]:
    missing = missing_tools()
    if missing or shutil.which("sudo") is None or shutil.which("visudo") is None:
        pytest.skip(f"missing tools: {', '.join(missing) or 'sudo'} (apt-get install sudo)")
    scratch = ScratchRoot(tmp_path_factory.mktemp("sudo-units") / "root")
    scratch.start()
    try:
        scratch.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", "redsys"], check=True)
        shutil.copyfile(RULE, scratch.path(INSTALLED))
        scratch.path(INSTALLED).chmod(0o440)
        stand_in = scratch.path("/root/systemctl")
        stand_in.write_text(STAND_IN)
        stand_in.chmod(0o755)
        scratch.run(["mount", "--bind", "/root/systemctl", SYSTEMCTL], check=True)
        scratch.path("/run/systemd/system").mkdir(parents=True)  # what systemctl.py takes as "systemd is running"
        yield scratch
    finally:
        scratch.stop()


def _allowed(root: ScratchRoot, command: str) -> bool:
    done = root.run(["sudo", "-l", "-U", "redsys", *command.split(" ")])
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def _calls(root: ScratchRoot) -> list[str]:
    path = root.path(CALLS)
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def test_the_shipped_file_is_the_rendering_and_visudo_accepts_it(root: ScratchRoot) -> None:
    assert RULE.read_text() == sudoers_units.render(), "regenerate: python -m tests.redftp.sudoers_units"
    done = root.run(["visudo", "-cf", INSTALLED])
    assert done.returncode == 0, done.stderr


def test_no_pattern_can_match_a_space_so_none_can_take_another_argument() -> None:
    """Every unit pattern is literals and the three classes, none of which holds a space; no * or ? anywhere."""
    for line in RULE.read_text().splitlines():
        if line.startswith("    /usr/bin/systemctl"):
            unit = line.strip().rstrip(", \\").rsplit(" ", 1)[1]
            assert "*" not in line and "?" not in line and "\\\\" not in line, line
            assert re.fullmatch(r"(?:[A-Za-z0-9@.\-]|\[A-Z\]|\[A-Z0-9\]|\[a-z0-9\])+", unit), unit


def test_sudo_reads_exactly_the_rendered_commands_and_nothing_else(root: ScratchRoot) -> None:
    """What sudo itself lists for redsys is every rendered command line, each once, and no other."""
    listing = root.run(["sudo", "-l", "-U", "redsys"], check=True).stdout
    granted = " ".join(listing.split("may run the following commands on", 1)[1].split("\n", 1)[1].split())
    assert granted.startswith("(root) NOPASSWD: ")
    commands = granted.removeprefix("(root) NOPASSWD: ").replace("\\=", "=").split(", ")  # sudo prints "=" as "\\="
    expected = [
        f"{sudoers_units.SYSTEMCTL} {action} {unit}"
        for action in sudoers_units.ACTIONS.values()
        for unit in sudoers_units.unit_patterns()
    ]
    assert commands == expected
    assert len(expected) == 5 * (8 + 8 * 8)


def test_sudo_allows_each_action_on_red_pss_units(root: ScratchRoot) -> None:
    for line in _action_lines():
        for unit in ALLOWED_UNITS:
            assert _allowed(root, f"{line} {unit}"), f"{line} {unit}"


def test_sudo_refuses_foreign_units_and_any_extra_argument_on_every_command_line(root: ScratchRoot) -> None:
    for line in _action_lines():
        for unit in FOREIGN:
            assert not _allowed(root, f"{line} {unit}"), f"{line} {unit}"
        for extended in (
            "redpss@NOPE.target victim.service",
            "redpss-jmon@TST1.service victim.service",
            "redpss-jmon@TST1.service redpss-sched@TST1.service",
            "redpss-jmon@TST1.service --force",
        ):
            assert not _allowed(root, f"{line} {extended}"), f"{line} {extended}"
        assert not _allowed(root, line.removesuffix(" --") + " victim.service")  # without the --
    for other in (
        "start --no-block -- redpss-jmon@TST1.service",
        "enable -- redpss-jmon@TST1.service",
        "mask -- redpss-jmon@TST1.service",
        "kill --signal=SIGKILL -- victim.service",
        "kill --kill-who=all --signal=SIGKILL -- victim.service",
        "daemon-reload",
        "poweroff",
    ):
        assert not _allowed(root, f"{sudoers_units.SYSTEMCTL} {other}"), other
    assert not _allowed(root, f"{SYSTEMCTL} stop -- redpss-jmon@TST1.service")  # without --no-ask-password


def test_redsys_runs_only_the_allowed_command_lines_as_root(root: ScratchRoot) -> None:
    _calls(root)
    for unit, allowed in (
        ("redpss-jmon@TST1.service", True),
        ("victim.service", False),
        ("redpss@NOPE.target victim.service", False),
    ):
        done = root.run(["sudo", "-n", SYSTEMCTL, "--no-ask-password", "stop", "--", *unit.split()], user="redsys")
        assert (done.returncode == 0) == allowed, done.stderr
        assert _calls(root) == ([f"--no-ask-password stop -- {unit}"] if allowed else [])


def test_the_clis_retry_through_sudo_one_unit_at_a_time(root: ScratchRoot) -> None:
    """redpss/cli/systemctl.py: denied as redsys, it retries through sudo once per unit, in the order given."""
    _calls(root)
    code = (
        "from redpss.cli import systemctl\n"
        "print(systemctl.run(['stop', '--', 'redpss-jmon@TST1.service', 'redpss-devdb@TST1.service'],"
        " check=False).returncode)\n"
        "print(systemctl.run(['kill', '--kill-who=all', '--signal=SIGKILL', '--', 'redpss-jmon@TST1.service',"
        " 'victim.service'], check=False).returncode)\n"
    )
    done = root.run([PYTHON, "-c", code], user="redsys", env={"HOME": "/tmp"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"], (done.stdout, _calls(root))
    assert _calls(root) == [
        "--no-ask-password stop -- redpss-jmon@TST1.service",
        "--no-ask-password stop -- redpss-devdb@TST1.service",
        "--no-ask-password kill --kill-who=all --signal=SIGKILL -- redpss-jmon@TST1.service",
    ]


def test_a_rule_with_wildcards_would_have_let_victim_service_through(root: ScratchRoot, tmp_path: Path) -> None:
    """The check above can fail: the rule this file replaced is accepted by sudo for a foreign unit."""
    old = "redsys ALL=(root) NOPASSWD: /usr/bin/systemctl --no-ask-password stop -- redpss*@[A-Z]*\n"
    path = root.path("/etc/sudoers.d/redpss-old")
    path.write_text(old)
    path.chmod(0o440)
    try:
        assert _allowed(root, f"{SYSTEMCTL} --no-ask-password stop -- redpss@NOPE.target victim.service")
    finally:
        path.unlink()
