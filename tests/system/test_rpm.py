"""The RPMs of this checkout installed, upgraded, doubled and erased in a booted systemd, as on a RHEL 8 server.

The container is the system tests' Debian box (tests/system/box.py) with rpm added from Debian's packages; the RPMs
are installed with `rpm --nodeps` (the box's software is not in an rpm database) and with signature checking on (the
public keys rpm/build wrote beside them imported first), and their scriptlets run against
its systemd: the %pre user, presets, daemon-reload, try-restart and stop/disable on erase all act for real. The
RPMs are built by tests/rpm/build.py (cached per source state): 0.1.0-1, its rebuild 0.1.0-2, and 0.2.0-1 as the
second version series. The venv runs on /usr/bin/python3.11, the same interpreter in the box as on the build host.

Boot is shown by redsys.service being enabled into multi-user.target and then started as boot starts it: the box's
rootfs is a volatile overlay, so a real reboot would start from the pristine image.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redftp.sftpsite import ed25519_key
from tests.rpm.build import CACHE, build, missing_tools
from tests.support.wait import wait_for
from tests.system.box import Box, host_ready

# Three RPM builds (about a minute each on an idle 2-core machine, cached afterwards) happen in the fixtures.
pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.allow_leaks, pytest.mark.timeout(2400)]

REDHOME = "/app/redsys"
DEBS = CACHE / "debs"
# rpm for the Debian box: the binary and the libraries the minimal rootfs lacks (see `ldd /usr/bin/rpm`).
RPM_DEBS = ("rpm", "rpm-common", "librpm9", "librpmio9", "liblua5.3-0", "libpopt0")
JMON = "redpss-jmon@TST1.service"
DEVDB = "redpss-devdb@TST1.service"


def ensure_debs() -> Path:
    DEBS.mkdir(parents=True, exist_ok=True)
    if len(list(DEBS.glob("*.deb"))) < len(RPM_DEBS):
        result = subprocess.run(
            ["apt-get", "download", *RPM_DEBS], cwd=DEBS, capture_output=True, text=True, check=False, timeout=300
        )
        assert result.returncode == 0, f"apt-get download {RPM_DEBS}: {result.stderr}"
    return DEBS


@pytest.fixture(scope="module")
def rpms() -> dict[str, dict[str, Path]]:
    reason = host_ready() or missing_tools()
    if reason:
        pytest.skip(reason)
    return {"r1": build("0.1.0", 1), "r2": build("0.1.0", 2), "v2": build("0.2.0", 1)}


@pytest.fixture(scope="module")
def box(rpms: dict[str, dict[str, Path]]) -> Iterator[Box]:
    binds = [f"--bind-ro={ensure_debs()}:/debs"]
    binds += [f"--bind-ro={built['common'].parent}:/rpms/{name}" for name, built in rpms.items()]
    with Box(f"redpss-rpm-{os.getpid()}", binds) as booted:
        booted.check(
            "set -e; printf '127.0.0.1\\tlocalhost\\n' > /etc/hosts\n"
            "dpkg -i --force-depends /debs/*.deb >/dev/null 2>&1 || dpkg -i --force-depends /debs/*.deb\n"
            "rpm --initdb",
            timeout=120,
        )
        yield booted


def main_pid(box: Box, unit: str) -> int:
    return int(box.check(f"systemctl show -p MainPID --value {unit}").strip())


def cmdline(box: Box, pid: int) -> str:
    return box.check(f"tr '\\0' ' ' < /proc/{pid}/cmdline")


def running(box: Box, unit: str, series: str, other_than: int = 0) -> int | None:
    """The unit's MainPID once it runs the code of `series` (and is another process than `other_than`)."""
    state = box.check(f"systemctl show -p ActiveState --value {unit}").strip()
    pid = main_pid(box, unit)
    if state != "active" or pid in (0, other_than):
        return None
    return pid if f"{REDHOME}/lib/{series}/bin/" in cmdline(box, pid) else None


def rpm(box: Box, args: str) -> str:
    # an unsigned package, or one signed by a key not imported, is refused
    return box.check(f"rpm --define '_pkgverify_level signature' {args}", timeout=600)


def modes(box: Box, *paths: str) -> list[str]:
    return box.check("stat -c '%U:%G %a' " + " ".join(paths)).splitlines()


SUDO_RULES = ("/etc/sudoers.d/redpss-redftp", "/etc/sudoers.d/redpss-units")


def test_install_boot_upgrade_second_version_move_and_erase(box: Box) -> None:
    # -- signed: not verifiable before the build keys are imported, verified after
    assert box.sh("rpm -K /rpms/r1/redpss-common-*.rpm").returncode != 0
    box.check("rpm --import /rpms/r1/RPM-GPG-KEY-redpss /rpms/r2/RPM-GPG-KEY-redpss /rpms/v2/RPM-GPG-KEY-redpss")
    assert "signatures OK" in box.check("rpm -K /rpms/*/*.rpm")
    # -- install: the user with its fixed ids, the tree, redsys.service enabled into the boot
    rpm(box, "-i --nodeps /rpms/r1/redpss-common-*.rpm /rpms/r1/redpss0.1-*.rpm")
    assert box.check("id -u redsys; id -g redsys; id -nG redsys").split() == [
        "470",
        "470",
        "redftp",
        "systemd-journal",
    ]
    assert modes(box, REDHOME, f"{REDHOME}/bin", f"{REDHOME}/lib/0.1") == ["root:root 755"] * 3
    # the private folders from tmpfiles.d; the sudo rules as visudo -c demands; the sshd snippet readable
    assert modes(box, *(f"{REDHOME}/{folder}" for folder in ("env", "etc", "log", "tmp"))) == ["redsys:redftp 750"] * 4
    assert modes(box, *SUDO_RULES) == ["root:root 440"] * 2
    assert modes(box, "/etc/ssh/sshd_config.d/redpss-redftp.conf") == ["root:root 644"]
    assert box.check("systemctl is-enabled redsys.service").strip() == "enabled"
    # what the next boot follows (systemd reads it then; the preset ran with --no-reload as RHEL's macro does)
    wants = "/etc/systemd/system/multi-user.target.wants/redsys.service"
    assert box.check(f"readlink {wants}").strip().endswith("/lib/systemd/system/redsys.service")
    checked = box.check("visudo -c")  # the sudo rules parse, with the owner and mode visudo wants
    assert all(f"{rule}: parsed OK" in checked for rule in SUDO_RULES), checked
    # sudo runs the redftp program as root through the launcher and the venv's /bin/sh-started script
    assert "usage" in box.check("sudo -n /app/redsys/bin/redftp_useradd --help", user="redsys").lower()
    # -- an instance with the embedded database, marked for autostart, made by the installed redsysctl
    box.check(
        "set -e; redsysctl create TST1 >/dev/null; conf=env/tst1/etc/red_params.conf\n"
        "sed -i 's/^exa_password = $/exa_password = secret-pw/' $conf\n"
        "sed -i 's/^#devdb_enabled = false$/devdb_enabled = true/' $conf\n"
        "touch env/tst1/.autostart; redinfo -i TST1 --check >/dev/null",
        user="redsys",
        timeout=180,
    )
    assert box.check(f"cat {REDHOME}/env/tst1/.version").strip() == "0.1"
    assert box.check(f"readlink {REDHOME}/env/tst1/bin/redpss-jmon").strip() == f"{REDHOME}/bin/redpss-launch"
    # redsys adds an sFTP user: the command re-runs itself through sudo as the rule names it ($REDHOME/bin/...),
    # not as the series' own program the launcher started
    key = ed25519_key("zoe").public_line.strip()
    added = box.check(f"echo '{key}' > /tmp/zoe.pub && redftp_useradd TST1 zoe --key /tmp/zoe.pub", user="redsys")
    assert "added redftp_tst1_zoe" in added
    # -- boot: multi-user.target's redsys.service starts the autostart instance on its version
    box.check("systemctl start redsys.service", timeout=240)
    first = wait_for(lambda: running(box, JMON, "0.1"), 120, 0.5, "JMON of TST1 on 0.1")
    assert running(box, DEVDB, "0.1")
    # -- upgrade within 0.1 (release 2): edited config kept, the instance's daemons restarted on the new files
    box.check("echo '# edited here' | tee -a /etc/profile.d/redpss.sh >> /etc/sudoers.d/redpss-redftp")
    rpm(box, "-U --nodeps /rpms/r2/redpss-common-*.rpm /rpms/r2/redpss0.1-*.rpm")
    assert box.check("rpm -q redpss0.1").strip() == "redpss0.1-0.1.0-2.x86_64"
    assert "# edited here" in box.check("cat /etc/profile.d/redpss.sh /etc/sudoers.d/redpss-redftp")
    # the same rules shipped again: the edited one stays as it is, without a .rpmnew beside it
    assert box.check("ls /etc/sudoers.d").split() == ["README", "redpss-redftp", "redpss-units"]
    assert modes(box, *SUDO_RULES) == ["root:root 440"] * 2
    second = wait_for(lambda: running(box, JMON, "0.1", other_than=first), 120, 0.5, "JMON restarted after upgrade")
    assert box.check("systemctl is-enabled redsys.service").strip() == "enabled"
    # -- a second version beside the first: nothing moves until asked
    rpm(box, "-U --nodeps /rpms/v2/redpss-common-*.rpm /rpms/v2/redpss0.2-*.rpm")
    assert box.check("rpm -q redpss0.1 redpss0.2").split() == ["redpss0.1-0.1.0-2.x86_64", "redpss0.2-0.2.0-1.x86_64"]
    assert running(box, JMON, "0.1") == second
    table = box.check("redsysctl versions", user="redsys")
    assert any(line.split() == ["0.1", "0.1.0", "TST1"] for line in table.splitlines()), table
    assert any(line.split() == ["0.2", "0.2.0", "-"] for line in table.splitlines()), table
    moved = box.sh("redsysctl move TST1 0.2", user="redsys", timeout=240)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "version 0.1 -> 0.2" in moved.stdout
    wait_for(lambda: running(box, JMON, "0.2", other_than=second), 120, 0.5, "JMON of TST1 on 0.2")
    assert running(box, DEVDB, "0.2")
    assert "0.2.0" in box.check("redsysctl list", user="redsys")
    # -- erase: everything stopped and disabled; data, config and edited files stay
    rpm(box, "-e --nodeps redpss0.1 redpss0.2 redpss-common")
    assert box.check("systemctl list-units --no-legend --plain --state=active 'redpss*' 'redsys*'").strip() == ""
    # no RED-PSS process left (redsys's own systemd --user from the login shells above may linger)
    left = box.sh("pgrep -f '[/]app/redsys/lib/'")  # [/]: the pattern does not match its own shell
    assert left.returncode == 1, box.sh("ps -o pid,user,args -u redsys").stdout
    assert box.sh("systemctl is-enabled redsys.service").stdout.strip() in ("", "not-found")
    assert box.sh(f"test -f {REDHOME}/env/tst1/etc/red_params.conf").returncode == 0
    assert box.sh("test -f /etc/profile.d/redpss.sh.rpmsave").returncode == 0
    # the sudo rules as %config files: the unchanged one removed, the edited one kept aside where sudo skips it
    assert box.check("ls /etc/sudoers.d").split() == ["README", "redpss-redftp.rpmsave"]
    assert modes(box, *(f"{REDHOME}/{folder}" for folder in ("env", "etc", "log", "tmp"))) == ["redsys:redftp 750"] * 4
    assert box.sh(f"test -e {REDHOME}/lib/0.1/bin/python").returncode == 1
