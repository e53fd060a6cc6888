"""The REST API under its real unit in a booted systemd: READY only once a worker answers, the watchdog fed past its
interval, and restctl and redsysctl with the API enabled and disabled. One container for the module, set up as
tests/system/test_lifecycle.py sets it up (the RPM's layout); instance TST1 with devdb and the API enabled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.wait import wait_for
from tests.system.box import VENV_IN_BOX, Box, host_ready
from tests.system.test_lifecycle import REDHOME, SETUP

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.allow_leaks]

UNIT = "redpss-rest@TST1.service"
CONF = f"{REDHOME}/env/tst1/etc/red_params.conf"
INSTANCE = f"""
set -e
export REDHOME={REDHOME}
redsysctl create TST1 >/dev/null
sed -i 's/^exa_password = $/exa_password = secret-pw/' {CONF}
sed -i 's/^#devdb_enabled = false$/devdb_enabled = true/' {CONF}
sed -i 's/^#rest_enabled = false$/rest_enabled = true/; s/^#exa_password = $/exa_password = rest-tu-pw/' {CONF}
grep -q '^rest_enabled = true$' {CONF}
{VENV_IN_BOX}/bin/python -c "from pathlib import Path; from redpss.devdb.tls import self_signed; \\
d = Path('{REDHOME}/env/tst1/etc/ssl/REST'); self_signed(d / 'rest.crt', d / 'rest.key')"
redinfo -i TST1 --check
"""
# A short watchdog for the test: being fed past it proves the pings, without waiting for the 30 s of the unit.
DROPIN = "/etc/systemd/system/redpss-rest@.service.d"


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    reason = host_ready()
    if reason:
        pytest.skip(reason)
    with Box(f"redpss-rest-{os.getpid()}") as booted:
        booted.check(SETUP)
        booted.check(INSTANCE, user="redsys")
        booted.check(
            f"mkdir -p {DROPIN} && printf '[Service]\\nWatchdogSec=3\\n' > {DROPIN}/watchdog.conf && "
            "systemctl daemon-reload"
        )
        yield booted


def show(box: Box, *props: str) -> dict[str, str]:
    out = box.check(f"systemctl show -p {','.join(props)} {UNIT}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def as_redsys(box: Box, command: str) -> tuple[int, str]:
    result = box.sh(f"REDHOME={REDHOME} {command}", user="redsys", timeout=240)
    return result.returncode, result.stdout + result.stderr


def set_enabled(box: Box, enabled: bool) -> None:
    old, new = ("false", "true") if enabled else ("true", "false")
    box.check(f"sed -i 's/^rest_enabled = {old}$/rest_enabled = {new}/' {CONF}", user="redsys")


def test_started_it_serves_and_is_fed_past_its_watchdog(box: Box) -> None:
    code, out = as_redsys(box, "redsysctl start TST1")
    assert code == 0, out
    state = show(box, "ActiveState", "SubState", "MainPID", "NRestarts", "StatusText")
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (state, out)
    assert state["StatusText"].startswith("serving HTTPS"), state  # READY came from a worker's answer
    first = int(show(box, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])

    def fed_past_the_interval() -> bool:
        return int(show(box, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]) > first + 3_000_000

    wait_for(fed_past_the_interval, 30, interval=0.5, what="watchdog pings more than WatchdogSec=3 after the start")
    after = show(box, "ActiveState", "MainPID", "NRestarts")
    assert after == {"ActiveState": "active", "MainPID": state["MainPID"], "NRestarts": "0"}, after
    code, out = as_redsys(box, "restctl -i TST1 status")
    assert code == 0 and "active (running)" in out, out
    plain = box.sh("curl -s --max-time 5 http://127.0.0.1:7443/health")
    assert plain.returncode != 0 or not plain.stdout.startswith("{"), plain


def test_redsysctl_stop_stops_the_api_and_restctl_reports_it(box: Box) -> None:
    as_redsys(box, "redsysctl start TST1")
    code, out = as_redsys(box, "redsysctl stop TST1")
    assert code == 0, out
    assert show(box, "ActiveState")["ActiveState"] == "inactive"
    code, out = as_redsys(box, "restctl -i TST1 status")
    assert code == 3, out  # LSB: enabled, not running


def test_disabled_the_api_is_not_started_and_stop_status_succeed(box: Box) -> None:
    set_enabled(box, False)
    try:
        code, out = as_redsys(box, "redsysctl start TST1")
        assert code == 0, out
        assert show(box, "ActiveState")["ActiveState"] == "inactive", out
        code, out = as_redsys(box, "restctl -i TST1 status")
        assert code == 0 and "rest_enabled = false" in out, out
        code, out = as_redsys(box, "restctl -i TST1 stop")
        assert code == 0, out
        code, out = as_redsys(box, "restctl -i TST1 start")
        assert code == 1 and "disabled" in out, out
        code, out = as_redsys(box, "redsysctl stop TST1")
        assert code == 0, out
    finally:
        set_enabled(box, True)
