"""The units, redsysctl, redctl and the polkit rule under a real systemd (one container for the whole module).

The container is set up the way the RPM installs RED-PSS: REDHOME=/app/redsys owned by redsys (group redftp), the
CLIs linked into $REDHOME/bin, the units in /etc/systemd/system, the polkit rule, the sudoers snippet and the
profile snippet. Two instances: TST1 (with .autostart, devdb_enabled = true) and DEV1 (without .autostart).

The instance daemons are stood in for by redpss-heartbeat through a drop-in replacing ExecStart= only, so every
other line of the real units (notify, watchdog, restart policy, hardening, ReadWritePaths through the unit link)
is what runs; test_devdb_unit_serves runs the real redpss-devdb once it exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator

import pytest

from redpss.core.services import SERVICES
from tests.support.wait import wait_for
from tests.system.box import SRC_IN_BOX, VENV_IN_BOX, Box, host_ready

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.allow_leaks]

REDHOME = "/app/redsys"
PROGRAMS = ("redsysctl", "redctl", "restctl", "redinfo")
STAND_IN = "ExecStart=\nExecStart=/app/redsys/env/.units/%i/bin/redpss-heartbeat --instance %i --work-seconds 0.1\n"

SETUP = f"""
set -e
groupadd -r redftp
useradd -r -m -d {REDHOME} -s /bin/bash -g redftp redsys
install -d -o redsys -g redftp -m 0750 {REDHOME}/bin {REDHOME}/env
for p in {" ".join(PROGRAMS)}; do ln -s {VENV_IN_BOX}/bin/$p {REDHOME}/bin/$p; done
install -m 0644 {SRC_IN_BOX}/units/* /etc/systemd/system/
install -m 0644 {SRC_IN_BOX}/etc/polkit-1/rules.d/50-redpss.rules /etc/polkit-1/rules.d/
install -m 0440 {SRC_IN_BOX}/etc/sudoers.d/redpss-units /etc/sudoers.d/
visudo -cf /etc/sudoers.d/redpss-units
install -m 0644 {SRC_IN_BOX}/etc/profile.d/redpss.sh /etc/profile.d/
for name in {" ".join(s.name for s in SERVICES)}; do
    mkdir -p /etc/systemd/system/redpss-$name@.service.d
    cat > /etc/systemd/system/redpss-$name@.service.d/50-stand-in.conf <<'EOF'
[Service]
{STAND_IN}EOF
done
systemctl daemon-reload
systemctl enable redsys.service
"""

INSTANCES = f"""
set -e
export REDHOME={REDHOME}
for i in TST1 DEV1; do
    redsysctl create $i >/dev/null
    conf={REDHOME}/env/$(echo $i | tr A-Z a-z)/etc/red_params.conf
    sed -i 's/^exa_password = $/exa_password = secret-pw/' $conf
done
sed -i 's/^#devdb_enabled = false$/devdb_enabled = true/' {REDHOME}/env/tst1/etc/red_params.conf
touch {REDHOME}/env/tst1/.autostart
redinfo -i TST1 --check
"""


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    reason = host_ready()
    if reason:
        pytest.skip(reason)
    with Box(f"redpss-sys-{os.getpid()}") as booted:
        booted.check(SETUP)
        booted.check(INSTANCES, user="redsys")
        yield booted


def show(box: Box, unit: str) -> dict[str, str]:
    out = box.check(f"systemctl show -p ActiveState,SubState,MainPID,NRestarts,Result,ExecMainStatus {unit}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def units(instance: str) -> list[str]:
    return [s.unit(instance) for s in SERVICES]


def redsys(box: Box, command: str) -> subprocess.CompletedProcess[str]:
    return box.sh(command, user="redsys", timeout=120)


def test_units_verify_in_systemd(box: Box) -> None:
    names = " ".join(units("TST1")) + " redpss@TST1.target redsys.service"
    result = box.sh(f"systemd-analyze verify {names}")
    assert result.returncode == 0, result.stderr
    assert "redpss" not in result.stderr, result.stderr


def test_boot_service_starts_only_autostart_instances(box: Box) -> None:
    box.check("systemctl start redsys.service")
    for unit in units("TST1"):
        assert show(box, unit)["ActiveState"] == "active", unit
    for unit in units("DEV1"):
        assert show(box, unit)["ActiveState"] == "inactive", unit
    status = redsys(box, "redsysctl status TST1")
    assert status.returncode == 0, status.stdout + status.stderr
    listing = json.loads(box.check("redsysctl list --json", user="redsys"))
    by_name = {row["instance"]: row for row in listing}
    assert by_name["TST1"]["autostart"] is True
    assert by_name["DEV1"]["autostart"] is False
    assert all(state == "active" for unit, state in by_name["TST1"]["units"].items() if "@TST1.service" in unit)


def test_daemon_writes_its_own_tree_only(box: Box) -> None:
    """ReadWritePaths through the unit link: the log file lands in env/tst1/log; DEV1's tree stays read-only."""
    wait_for(
        lambda: box.sh(f"test -s {REDHOME}/env/tst1/log/heartbeat.log").returncode == 0,
        20,
        0.2,
        "the daemon's log file in its instance tree",
    )
    unit = units("TST1")[0]
    probe = box.sh(
        f"systemd-run --wait --pipe -p User=redsys -p Group=redftp -p ProtectSystem=strict "
        f"-p ReadWritePaths={REDHOME}/env/.units/TST1 /bin/sh -c 'touch {REDHOME}/env/tst1/tmp/ok && "
        f"touch {REDHOME}/env/dev1/tmp/no'"
    )
    assert probe.returncode != 0
    assert "Read-only file system" in probe.stdout + probe.stderr
    assert box.sh(f"test -e {REDHOME}/env/tst1/tmp/ok").returncode == 0
    assert show(box, unit)["ActiveState"] == "active"


def test_redctl_start_suspended_status_stop_abort(box: Box) -> None:
    start = redsys(box, "cd && REDENV=DEV1 redctl start -S")
    assert start.returncode == 0, start.stdout + start.stderr
    assert box.sh(f"test -e {REDHOME}/env/dev1/.suspended").returncode == 0
    status = redsys(box, "redctl -i DEV1 status")
    assert status.returncode == 0, status.stdout
    assert "suspended" in status.stdout
    for unit in units("DEV1"):
        if unit.startswith("redpss-devdb@"):
            assert unit not in status.stdout  # devdb_enabled is false for DEV1
        else:
            line = next(line for line in status.stdout.splitlines() if line.startswith(unit))
            assert "active (running)" in line

    stop = redsys(box, "redctl -i DEV1 stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert redsys(box, "redctl -i DEV1 status").returncode == 3

    assert redsys(box, "redctl -i DEV1 restart").returncode == 0
    assert box.sh(f"test -e {REDHOME}/env/dev1/.suspended").returncode != 0  # restart ends the suspended mode
    pids = [show(box, u)["MainPID"] for u in units("DEV1")[1:]]
    abort = redsys(box, "redctl -i DEV1 abort")
    assert abort.returncode == 0, abort.stdout + abort.stderr
    assert "SIGKILL" in abort.stdout
    for pid in pids:
        assert box.sh(f"kill -0 {pid}").returncode != 0
    for unit in units("DEV1"):
        assert show(box, unit)["ActiveState"] == "inactive"  # stopped, not failed, not restarted
    assert redsys(box, "redctl -i DEV1 status").returncode == 3


def test_kill_9_is_restarted(box: Box) -> None:
    unit = units("TST1")[-1]
    before = show(box, unit)
    box.check(f"kill -9 {before['MainPID']}")

    def restarted() -> dict[str, str] | None:
        state = show(box, unit)
        return state if state["ActiveState"] == "active" and state["MainPID"] != before["MainPID"] else None

    after = wait_for(
        restarted,
        20,
        0.1,
        "systemd restarting the killed daemon",
    )
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1


def test_hung_daemon_is_restarted_by_the_watchdog(box: Box) -> None:
    unit = units("TST1")[-1]
    box.check(
        f"mkdir -p /run/systemd/system/{unit}.d && printf '[Service]\\nWatchdogSec=2\\n' "
        f"> /run/systemd/system/{unit}.d/watchdog.conf && systemctl daemon-reload && systemctl restart {unit}"
    )
    try:
        before = show(box, unit)
        box.check(f"kill -STOP {before['MainPID']}")
        wait_for(
            lambda: (s := show(box, unit))["ActiveState"] == "active" and s["MainPID"] != before["MainPID"],
            30,
            0.2,
            "the watchdog restarting the stopped daemon",
        )
        log = box.check(f"journalctl -u {unit} --no-pager")
        assert "Watchdog timeout" in log or "watchdog" in log.lower()
    finally:
        box.check(f"rm -rf /run/systemd/system/{unit}.d && systemctl daemon-reload && systemctl restart {unit}")


def test_bad_config_fails_without_restart_loop(box: Box) -> None:
    conf = f"{REDHOME}/env/dev1/etc/red_params.conf"
    box.check(f"cp {conf} {conf}.good && sed -i 's/^#log_retention = 30$/log_retention = soon/' {conf}", user="redsys")
    try:
        unit = units("DEV1")[-1]
        box.check(f"systemctl stop {unit}")
        result = box.sh(f"systemctl start {unit}")
        assert result.returncode != 0
        state = show(box, unit)
        assert (state["ActiveState"], state["SubState"], state["ExecMainStatus"]) == ("failed", "failed", "3")
        assert state["NRestarts"] == "0"
        log = box.check(f"journalctl -u {unit} --no-pager")
        assert "log_retention" in log and "soon" in log
        check = redsys(box, "redinfo -i DEV1 --check")
        assert check.returncode == 3 and "log_retention" in check.stderr
    finally:
        box.check(f"mv {conf}.good {conf}", user="redsys")
        box.sh(f"systemctl reset-failed {' '.join(units('DEV1'))}")


def test_journal_fields_are_queryable(box: Box) -> None:
    out = wait_for(lambda: box.check("journalctl REDENV=TST1 -o json --no-pager -n 20"), 10, 0.2, "entries")
    entries = [json.loads(line) for line in out.splitlines()]
    assert entries
    assert {e["REDENV"] for e in entries} == {"TST1"}
    assert all(e.get("REDPSS_SERVICE") for e in entries)


def test_redsys_drives_only_its_own_units(box: Box) -> None:
    unit = units("TST1")[-1]
    own = redsys(box, f"systemctl --no-ask-password restart {unit}")
    assert own.returncode == 0, own.stderr
    foreign = redsys(box, "systemctl --no-ask-password restart systemd-journald.service")
    assert foreign.returncode != 0
    assert "denied" in foreign.stderr.lower() or "authentication required" in foreign.stderr.lower()
    sudo = redsys(box, "sudo -n /usr/bin/systemctl restart systemd-journald.service")
    assert sudo.returncode != 0


def test_stop_all_stops_every_instance(box: Box) -> None:
    redsys(box, "redctl -i DEV1 start")
    result = box.sh("systemctl stop redsys.service")
    assert result.returncode == 0, result.stderr
    for unit in units("TST1") + units("DEV1"):
        assert show(box, unit)["ActiveState"] in ("inactive", "failed"), unit


def test_instance_switching_in_an_interactive_shell(box: Box) -> None:
    """`su - redsys`, then `tst1`: banner, prompt, REDENV, PATH; CTRL-D goes back to redsys's shell."""
    pid, fd = pty.fork()
    if pid == 0:  # the child becomes the terminal session inside the container
        argv = box.command(["su", "-", "redsys"], env={"TERM": "dumb"})
        os.execvp(argv[0], argv)  # noqa: S606 - the test is the terminal of an interactive login
    output = b""

    def read_until(marker: bytes, timeout: float = 15.0) -> bytes:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} in: {output.decode(errors='replace')}")
            if select.select([fd], [], [], left)[0]:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    break
        return output

    try:
        os.write(fd, b"echo ready-$((1+1))\n")
        read_until(b"ready-2")
        os.write(fd, b"tst1\n")
        read_until(b"TST1 [redsys@")
        os.write(fd, b'echo "[$REDENV|$REDENV_HOME|$(pwd)|$(command -v redctl)]"\n')
        read_until(b"/bin/redctl]")
        text = output.decode(errors="replace")
        assert "current environment: TST1" in text and "exit with CTRL-D" in text
        assert f"[TST1|{REDHOME}/env/tst1|{REDHOME}/env/tst1|{REDHOME}/env/tst1/bin/redctl]" in text
        assert "tst1]$ " in text
        os.write(fd, b"\x04")  # CTRL-D leaves the instance shell
        os.write(fd, b'echo "back-[${REDENV:-none}]"\n')
        read_until(b"back-[none]")
        os.write(fd, b"exit\n")
    finally:
        os.close(fd)
        os.waitpid(pid, 0)


@pytest.mark.skipif(importlib.util.find_spec("redpss.devdb.__main__") is None, reason="redpss.devdb not written yet")
def test_devdb_unit_serves(box: Box) -> None:
    """The real redpss-devdb under its unit: ready, listening on exa_connection's port."""
    dropin = "/etc/systemd/system/redpss-devdb@.service.d/50-stand-in.conf"
    box.check(f"mv {dropin} {dropin}.off && systemctl daemon-reload")
    try:
        result = box.sh("systemctl start redpss-devdb@TST1.service")
        assert result.returncode == 0, box.check("journalctl -u redpss-devdb@TST1 --no-pager | tail -30")
        assert box.sh("ss -ltn | grep -q ':8563 '").returncode == 0
    finally:
        box.check(f"systemctl stop redpss-devdb@TST1.service; mv {dropin}.off {dropin}; systemctl daemon-reload")
