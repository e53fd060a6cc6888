"""The real daemons under the real units, driven by redsysctl, redctl and the polkit rule, in a booted systemd.

One container for the whole module, set up the way the RPM installs RED-PSS: REDHOME=/app/redsys and its bin/
owned by root, env/ by redsys (group redftp), the CLIs linked into $REDHOME/bin, the units in /etc/systemd/system
unchanged, the polkit rule, the sudoers snippet and the profile snippet. Two instances:

- TST1 (.autostart, devdb_enabled = true): redpss-devdb, redpss-sched and redpss-jmon run as their units start them,
  with every line of the units (notify, watchdog, restart policy, ordering, hardening) in force.
- DEV1 (no .autostart, devdb_enabled = false): an instance bound to an external database, which here is TST1's
  embedded one, on its own service ports; it shows that an instance without devdb starts no devdb unit.

No daemon is stood in for: every test drives the programs the instance's bin/ points at. The tests share the
container, so each one first brings TST1 to the state it needs (running, APP1 installed with its job) itself.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from redpss.cli.redsysctl.units import MEMORY_MAX, timeout_stop_sec
from redpss.core.config import parse_config
from redpss.core.daemon import ABORT_TIMEOUT, Service
from redpss.core.services import SERVICES, enabled_services
from tests.support.wait import wait_for
from tests.system.box import REPO, SRC_IN_BOX, VENV_IN_BOX, Box, host_ready

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.allow_leaks]

REDHOME = "/app/redsys"
PROGRAMS = ("redsysctl", "redctl", "restctl", "redinfo")
SQL_HELPER = "/usr/local/lib/redpss-test-sql.py"
BEAT = 1  # the NOOP job every second in APP1
SLOW = 2  # an on-demand SQL job that sleeps, to have a run in flight

SETUP = f"""
set -e
# RHEL's /etc/hosts names localhost; the minimal rootfs has none, and exa_connection defaults to localhost:8563.
printf '127.0.0.1\\tlocalhost\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > /etc/hosts
groupadd -r redftp
useradd -r -M -d {REDHOME} -s /bin/bash -g redftp redsys
# As docs/operations.md says: redsys reads the daemons' journal as a member of systemd-journal.
usermod -a -G systemd-journal redsys
# REDHOME and bin/ are root's (code that sudo runs must sit where redsys cannot swap it); env/ is redsys's.
install -d -o root -g root -m 0755 {REDHOME} {REDHOME}/bin
install -d -o redsys -g redftp -m 0750 {REDHOME}/env
for p in {" ".join(PROGRAMS)}; do ln -s {VENV_IN_BOX}/bin/$p {REDHOME}/bin/$p; done
install -m 0644 {SRC_IN_BOX}/units/* /etc/systemd/system/
install -m 0644 {SRC_IN_BOX}/etc/polkit-1/rules.d/50-redpss.rules /etc/polkit-1/rules.d/
install -m 0440 {SRC_IN_BOX}/etc/sudoers.d/redpss-units /etc/sudoers.d/
visudo -cf /etc/sudoers.d/redpss-units
install -m 0644 {SRC_IN_BOX}/etc/profile.d/redpss.sh /etc/profile.d/
systemctl daemon-reload
systemctl enable redsys.service
"""

# Both instances are made by `redsysctl create` alone: it gives DEV1 its own ports (no port is touched by hand);
# DEV1's database is TST1's (same user and password).
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
redinfo -i DEV1 --check
"""
DOCS = REPO / "docs" / "operations.md"


# Runs inside as redsys: the statements given as arguments through the instance's own DbSession (pyexasol);
# prints one JSON line of rows per SELECT.
SQL_SCRIPT = """
import json, sys
from redpss.core.config import load_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.paths import InstancePaths

session = DbSession(DbSettings.from_config(load_config(InstancePaths.from_env().config_file), client_name="test"))
try:
    for sql in sys.argv[1:]:
        if sql.lstrip().upper().startswith("SELECT"):
            print(json.dumps(session.fetch_dicts(sql), default=str))
        else:
            session.execute(sql)
    session.commit()
finally:
    session.close()
"""


@pytest.fixture(scope="module")
def box() -> Iterator[Box]:
    reason = host_ready()
    if reason:
        pytest.skip(reason)
    with Box(f"redpss-sys-{os.getpid()}") as booted:
        booted.check(SETUP)
        booted.check(f"cat > {SQL_HELPER} <<'EOF'\n{SQL_SCRIPT}\nEOF\nchmod 0644 {SQL_HELPER}")
        booted.check(INSTANCES, user="redsys")
        yield booted


@pytest.fixture(scope="module")
def app1(box: Box) -> dict[str, subprocess.CompletedProcess[str]]:
    """TST1 running with REDSYS installed, APP1 registered and the job BEAT (NOOP every second) in ADM_JOBS."""
    running(box)
    install = redctl(box, "db_install")
    register = redctl(box, "db_register APP1")
    sql(
        box,
        "INSERT INTO APP1.ADM_JOBS (JOB_ID, JOB_NAME, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE) "
        f"VALUES ({BEAT}, 'BEAT', 'NOOP', '-', 1, TRUE)",
    )
    reload = redctl(box, "reload")
    return {"db_install": install, "db_register": register, "reload": reload}


# -- helpers --------------------------------------------------------------------------------------------------------
def show(box: Box, unit: str) -> dict[str, str]:
    props = "ActiveState,SubState,MainPID,NRestarts,Result,ExecMainStatus,ExecMainCode,StatusText"
    out = box.check(f"systemctl show -p {props} {unit}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# The instances' configs as INSTANCES leaves them: what `redsysctl create` writes, with devdb switched on.
DEFAULT_CONFIG = parse_config("[DEFAULT]\nexa_password = secret-pw\n[redctl]\ndevdb_enabled = true\n", "defaults")


def units(instance: str) -> list[str]:
    """The units of the daemons redctl starts and stops with the default config (optional daemons such as MAIL2CMD
    are off unless enabled; the REST API's unit is restctl's). DEV1's devdb unit is listed too: it must stay off."""
    return [s.unit(instance) for s in enabled_services(DEFAULT_CONFIG, controlled_by="redctl")]


def unit_of(service: str, instance: str = "TST1") -> str:
    return next(s.unit(instance) for s in SERVICES if s.name == service)


def redsys(box: Box, command: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return box.sh(command, user="redsys", timeout=timeout)


def redctl(box: Box, args: str, instance: str = "TST1", code: int | None = 0) -> subprocess.CompletedProcess[str]:
    """`redctl -i INSTANCE ARGS` as redsys; fails the test unless it exits `code` (None: any)."""
    result = redsys(box, f"redctl -i {instance} {args}")
    if code is not None:
        assert result.returncode == code, f"redctl {args} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    return result


def running(box: Box) -> None:
    """TST1's daemons up and JMON answering, whatever an earlier test left."""
    if redctl(box, "status", code=None).returncode != 0:
        box.sh(f"systemctl reset-failed {' '.join(units('TST1'))}")
        redctl(box, "start")
    wait_for(lambda: redctl(box, "show --json", code=None).returncode == 0, 60, 0.2, "JMON of TST1 answering")


def sql(box: Box, *statements: str) -> list[list[dict[str, Any]]]:
    quoted = " ".join("'" + s.replace("'", "'\\''") + "'" for s in statements)
    out = box.check(f"REDENV=TST1 {VENV_IN_BOX}/bin/python {SQL_HELPER} {quoted}", user="redsys", timeout=60)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def job_runs(box: Box, job_id: int, status: str = "OK") -> list[dict[str, Any]]:
    return sql(
        box,
        "SELECT RUN_ID, STATUS, SKIP_REASON, RUN_TRIGGER FROM APP1.ADM_JOB_LOG "
        f"WHERE JOB_ID = {job_id} AND STATUS = '{status}' ORDER BY SCHEDULED_AT",
    )[0]


def config_value(box: Box, folder: str, key: str) -> str:
    """The value of `key` as written in env/<folder>/etc/red_params.conf (uncommented)."""
    out = box.check(f"grep -E '^{key} = ' {REDHOME}/env/{folder}/etc/red_params.conf")
    return out.split("=", 1)[1].strip()


def unit_states(output: str) -> dict[str, str]:
    """unit -> state from the table redctl start/stop/status print."""
    return dict(line.split(None, 1) for line in output.splitlines() if line.startswith("redpss-"))


def jmon_show(box: Box) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(redctl(box, "show --json").stdout)
    return data


def journal(box: Box, match: str) -> list[dict[str, Any]]:
    out = box.check(f"journalctl {match} -o json --no-pager")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- tests ----------------------------------------------------------------------------------------------------------
def test_units_verify_in_systemd(box: Box) -> None:
    names = " ".join(units("TST1")) + " redpss@TST1.target redsys.service"
    result = box.sh(f"systemd-analyze verify {names}")
    assert result.returncode == 0, result.stderr
    assert "redpss" not in result.stderr, result.stderr


def test_the_converters_run_under_a_memory_limit_and_the_others_without(box: Box) -> None:
    """The daemons that decode uploads are held to MEMORY_MAX by the kernel (a file may decode to far more than it
    holds); systemd reads the value as bytes. Every other daemon keeps the default (no limit)."""
    for spec in SERVICES:
        out = box.check(f"systemctl show -p MemoryMax {spec.unit('TST1')}").strip()
        limit = MEMORY_MAX.get(spec.name)
        wanted = "infinity" if limit is None else int(limit[:-1]) << {"K": 10, "M": 20, "G": 30}[limit[-1]]
        assert out == f"MemoryMax={wanted}", (spec.name, out)


def test_stop_timeouts_cover_each_daemons_drain() -> None:
    """TimeoutStopSec= must outlast each daemon's real drain + abort (the service classes take it from SERVICES)."""
    from redpss.cfi.service import CfiService  # noqa: PLC0415
    from redpss.convert.service import ConvertService  # noqa: PLC0415
    from redpss.dbls.service import DblsService  # noqa: PLC0415 - heavy imports only for this check
    from redpss.devdb.service import DevDbService  # noqa: PLC0415
    from redpss.jexec.service import JexecService  # noqa: PLC0415
    from redpss.jmon.service import JmonService  # noqa: PLC0415
    from redpss.mail.mail2cmd import Mail2CmdService  # noqa: PLC0415
    from redpss.mail.service import SendmailService  # noqa: PLC0415
    from redpss.sched.service import SchedService  # noqa: PLC0415
    from redpss.sendfile.service import SendfileService  # noqa: PLC0415

    classes: dict[str, type[Service]] = {
        "devdb": DevDbService,
        "sched": SchedService,
        "dbls": DblsService,
        "jexec": JexecService,
        "sendmail": SendmailService,
        "sendfile": SendfileService,
        "mail2cmd": Mail2CmdService,
        "jmon": JmonService,
        "cfi": CfiService,
        "json2csv": ConvertService,
        "parq2csv": ConvertService,
    }
    daemons = [s for s in SERVICES if s.controlled_by == "redctl"]  # the REST API's drain: tests/rest/test_server.py
    assert set(classes) == {s.name for s in daemons}
    for spec in daemons:
        # One class serves both converters: each instance takes its drain from its own spec.
        drain = spec.drain_timeout if classes[spec.name] is ConvertService else classes[spec.name].drain_timeout
        assert timeout_stop_sec(spec) > drain + ABORT_TIMEOUT, spec.name


def test_boot_service_starts_only_the_autostart_instance(box: Box) -> None:
    box.check("systemctl start redsys.service", timeout=180)
    for unit in units("TST1"):
        state = show(box, unit)
        # Type=notify: "active (running)" only after the daemon's READY=1; its STATUS= line follows.
        assert (state["ActiveState"], state["SubState"]) == ("active", "running"), (unit, state)
        assert state["StatusText"], unit
        service = unit.split("-")[1].split("@")[0]
        assert f"{service} ready:" in box.check(f"journalctl -u {unit} --no-pager"), unit
    for unit in units("DEV1"):
        assert show(box, unit)["ActiveState"] == "inactive", unit
    assert box.sh("ss -ltn | grep -q '127.0.0.1:8563 '").returncode == 0  # devdb on exa_connection's port
    states = unit_states(redctl(box, "status").stdout)
    assert set(states) == set(units("TST1"))
    assert all(state.startswith("active (running)") for state in states.values()), states
    listing = json.loads(box.check("redsysctl list --json", user="redsys"))
    by_name = {row["instance"]: row for row in listing}
    assert by_name["TST1"]["autostart"] is True
    assert by_name["DEV1"]["autostart"] is False
    assert all(by_name["TST1"]["units"][unit] == "active" for unit in units("TST1"))


def test_db_install_register_and_a_noop_job_runs(box: Box, app1: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert "applied REDSYS" in app1["db_install"].stdout
    assert "registered schema APP1" in app1["db_register"].stdout
    assert "reloaded 1 definition(s)" in app1["reload"].stdout

    def two_runs() -> list[dict[str, Any]] | None:
        rows = job_runs(box, BEAT)
        return rows if len(rows) >= 2 else None

    ok = wait_for(two_runs, 30, 0.3, "two OK runs of APP1.BEAT")
    assert len({row["RUN_ID"] for row in ok}) == len(ok)
    listing = redctl(box, "show").stdout
    assert any(line.split()[:4] == ["JOB", "APP1", str(BEAT), "BEAT"] for line in listing.splitlines()), listing
    entry = next(e for e in jmon_show(box)["entries"] if e["key"] == ["JOB", "APP1", BEAT])
    assert entry["interval_seconds"] == 1


def test_journal_fields_are_queryable(box: Box, app1: object) -> None:
    running(box)
    sched = wait_for(
        lambda: [e for e in journal(box, "REDENV=TST1 REDPSS_SERVICE=sched") if "APP1.BEAT run" in e["MESSAGE"]],
        30,
        0.3,
        "SCHED's run lines in the journal",
    )
    assert {e["_SYSTEMD_UNIT"] for e in sched} == {unit_of("sched")}
    assert {e["REDENV"] for e in sched} == {"TST1"}
    by_schema = journal(box, "REDENV=TST1 SCHEMA=APP1")
    assert {e["SCHEMA"] for e in by_schema} == {"APP1"}
    run_lines = [e for e in by_schema if e.get("JOB_ID") == str(BEAT)]
    assert run_lines and all(e.get("RUN_ID") for e in run_lines)


def test_daemons_write_their_own_tree_only(box: Box, app1: object) -> None:
    """ReadWritePaths through the unit link: logs and the database file land in env/tst1, mode 0640 (UMask)."""
    for path in (f"{REDHOME}/env/tst1/log/sched.log", f"{REDHOME}/env/tst1/lib/devdb/devdb.duckdb"):
        # -L: a log file may be a link to the current day's file
        assert box.check(f"stat -L -c '%U:%G %a' {path}").split() == ["redsys:redftp", "640"], path
    probe = box.sh(
        f"systemd-run --wait --pipe -p User=redsys -p Group=redftp -p ProtectSystem=strict "
        f"-p ReadWritePaths={REDHOME}/env/.units/TST1 /bin/sh -c 'touch {REDHOME}/env/tst1/tmp/ok && "
        f"touch {REDHOME}/env/dev1/tmp/no'"
    )
    assert probe.returncode != 0
    assert "Read-only file system" in probe.stdout + probe.stderr
    assert box.sh(f"test -e {REDHOME}/env/tst1/tmp/ok").returncode == 0


def test_kill_9_of_jmon_is_restarted_and_serves_again(box: Box, app1: object) -> None:
    running(box)
    unit = unit_of("jmon")
    before = show(box, unit)
    box.check(f"kill -9 {before['MainPID']}")

    def restarted() -> dict[str, str] | None:
        state = show(box, unit)
        return state if state["SubState"] == "running" and state["MainPID"] != before["MainPID"] else None

    after = wait_for(restarted, 60, 0.1, "systemd restarting the killed JMON")
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert "Main process exited, code=killed, status=9/KILL" in box.check(f"journalctl -u {unit} --no-pager")
    assert any(e["key"] == ["JOB", "APP1", BEAT] for e in jmon_show(box)["entries"])  # the new JMON serves
    count = len(job_runs(box, BEAT))
    wait_for(lambda: len(job_runs(box, BEAT)) > count, 30, 0.3, "BEAT running again after the restart")


def test_hung_jmon_is_restarted_by_the_watchdog(box: Box, app1: object) -> None:
    running(box)
    unit = unit_of("jmon")
    dropin = f"/run/systemd/system/{unit}.d"
    box.check(
        f"mkdir -p {dropin} && printf '[Service]\\nWatchdogSec=2\\n' > {dropin}/watchdog.conf && "
        f"systemctl daemon-reload && systemctl restart {unit}",
        timeout=120,
    )
    try:
        before = show(box, unit)
        assert before["SubState"] == "running"
        box.check(f"kill -STOP {before['MainPID']}")
        wait_for(
            lambda: (s := show(box, unit))["SubState"] == "running" and s["MainPID"] != before["MainPID"],
            60,
            0.2,
            "the watchdog restarting the stopped JMON",
        )
        log = box.check(f"journalctl -u {unit} --no-pager")
        assert "Watchdog timeout" in log, log[-3000:]
        assert int(show(box, unit)["NRestarts"]) == int(before["NRestarts"]) + 1
        wait_for(lambda: redctl(box, "show --json", code=None).returncode == 0, 60, 0.2, "JMON answering")
    finally:
        box.check(f"rm -rf {dropin} && systemctl daemon-reload && systemctl restart {unit}", timeout=120)


def test_suspend_survives_stop_and_start_until_restart(box: Box, app1: object) -> None:
    running(box)
    marker = f"{REDHOME}/env/tst1/.suspended"
    redctl(box, "stop")
    assert redctl(box, "status", code=3).returncode == 3
    box.check(f"systemctl start {unit_of('devdb')}")  # the database alone, as an Exasol would be
    ok_count = len(job_runs(box, BEAT))  # final: the stop drained SCHED, which wrote every run it finished

    start = redctl(box, "start -S")
    assert "suspended" in start.stdout
    assert box.sh(f"test -e {marker}").returncode == 0
    status = redctl(box, "status")
    assert "instance TST1 is suspended" in status.stdout
    assert all(state.startswith("active (running)") for state in unit_states(status.stdout).values())
    assert jmon_show(box)["suspended"] is True
    skipped = wait_for(
        lambda: [r for r in job_runs(box, BEAT, "SKIPPED") if r["SKIP_REASON"] == "SUSPENDED"],
        30,
        0.3,
        "ticks of BEAT skipped while suspended",
    )

    redctl(box, "stop")
    redctl(box, "start")  # a plain start keeps the suspended mode
    assert jmon_show(box)["suspended"] is True
    wait_for(
        lambda: len([r for r in job_runs(box, BEAT, "SKIPPED") if r["SKIP_REASON"] == "SUSPENDED"]) > len(skipped),
        30,
        0.3,
        "ticks skipped after the stop and start",
    )
    assert len(job_runs(box, BEAT)) == ok_count

    redctl(box, "restart")  # ends the suspended mode
    assert box.sh(f"test -e {marker}").returncode != 0
    wait_for(lambda: redctl(box, "show --json", code=None).returncode == 0, 60, 0.2, "JMON answering")
    assert jmon_show(box)["suspended"] is False
    wait_for(lambda: len(job_runs(box, BEAT)) > ok_count, 30, 0.3, "BEAT running after the restart")


def test_abort_kills_at_once_and_nothing_restarts(box: Box, app1: object) -> None:
    running(box)
    pids = [show(box, u)["MainPID"] for u in units("TST1")]
    abort = redctl(box, "abort")
    assert "SIGKILL" in abort.stdout
    for pid in pids:
        assert box.sh(f"kill -0 {pid}").returncode != 0
    for unit in units("TST1"):
        assert show(box, unit)["ActiveState"] == "inactive", unit  # stopped, not failed, not restarting
    assert redctl(box, "status", code=3).returncode == 3
    # The database was killed too: it comes back from its file and the jobs go on.
    redctl(box, "start")
    count = len(job_runs(box, BEAT))
    wait_for(lambda: len(job_runs(box, BEAT)) > count, 30, 0.3, "BEAT running after abort and start")


def start_slow_run(box: Box) -> str:
    """Start the on-demand job SLOW (3 s in the database) and wait until a worker runs it; return a journal cursor."""
    running(box)
    sql(
        box,
        f"DELETE FROM APP1.ADM_JOBS WHERE JOB_ID = {SLOW}",
        f"DELETE FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {SLOW}",
        "INSERT INTO APP1.ADM_JOBS (JOB_ID, JOB_NAME, JOB_TYPE, COMMAND, INTERVAL_SECONDS, ACTIVE, TIMEOUT_SECONDS) "
        f"VALUES ({SLOW}, 'SLOW', 'SQL', 'EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(3)', NULL, TRUE, 60)",
    )
    redctl(box, "reload")
    cursor = box.check("journalctl -n 0 --show-cursor --no-pager").strip().rpartition("cursor: ")[2]
    redctl(box, f"start_db_job APP1.{SLOW}")

    def in_flight() -> bool:
        pools = jmon_show(box)["sched"]["pools"]
        return any(w["job"] == "APP1.SLOW" for p in pools for w in p["workers"])

    wait_for(in_flight, 30, 0.1, "SLOW running in a worker")
    return cursor


def assert_drained(box: Box, cursor: str) -> None:
    """Every daemon of TST1 stopped by its own clean exit (0) after SCHED waited for the run in flight."""
    for spec in enabled_services(DEFAULT_CONFIG, controlled_by="redctl"):
        state = show(box, spec.unit("TST1"))
        assert (state["ActiveState"], state["Result"], state["ExecMainStatus"]) == ("inactive", "success", "0"), (
            spec.name,
            state,
        )
        log = box.check(f"journalctl -u {spec.unit('TST1')} --after-cursor='{cursor}' --no-pager")
        assert f"{spec.name} stopped cleanly" in log, log
        if spec.name == "sched":
            assert "waiting for 1 running run(s) to finish" in log, log


def slow_runs(box: Box) -> list[tuple[str, str]]:
    rows = sql(box, f"SELECT STATUS, RUN_TRIGGER FROM APP1.ADM_JOB_LOG WHERE JOB_ID = {SLOW}")[0]
    return [(r["STATUS"], r["RUN_TRIGGER"]) for r in rows]


def test_redctl_stop_drains_a_run_in_flight(box: Box, app1: object) -> None:
    """`redctl stop` with a run in flight: SCHED waits for it, every daemon exits 0, and because redctl stops the
    units last first, the database is still there when the run ends: its row says OK.
    """
    cursor = start_slow_run(box)
    stop = redctl(box, "stop")
    states = unit_states(stop.stdout)  # every unit of the instance, those of daemons switched off too
    assert set(states) >= set(units("TST1"))
    assert set(states.values()) == {"inactive (dead)"}, states
    assert_drained(box, cursor)
    running(box)
    assert wait_for(lambda: slow_runs(box), 30, 0.3, "SLOW's row") == [("OK", "MANUAL")]


def test_stop_in_reverse_start_order_keeps_the_database_for_the_drain(box: Box, app1: object) -> None:
    """The units' After= ordering: stopped JMON, SCHED, database, SCHED's run in flight finishes OK and is logged."""
    cursor = start_slow_run(box)
    box.check(f"systemctl stop {' '.join(reversed(units('TST1')))}", timeout=300)
    assert_drained(box, cursor)
    assert (
        "Stopped redpss-sched@TST1"
        in box.check(
            f"journalctl -u {unit_of('devdb')} -u {unit_of('sched')} --after-cursor='{cursor}' --no-pager "
            "| grep -E 'Stopped|Stopping redpss-devdb' | head -2"
        ).splitlines()[0]
    )
    box.check(f"systemctl start {unit_of('devdb')}")
    assert slow_runs(box) == [("OK", "MANUAL")]
    running(box)


def test_bad_config_fails_without_restart_loop(box: Box, app1: object) -> None:
    running(box)
    conf = f"{REDHOME}/env/tst1/etc/red_params.conf"
    box.check(f"cp {conf} {conf}.good && sed -i 's/^#log_retention = 30$/log_retention = soon/' {conf}", user="redsys")
    try:
        result = box.sh(f"systemctl restart {' '.join(units('TST1'))}", timeout=180)
        assert result.returncode != 0
        for unit in units("TST1"):
            state = show(box, unit)
            assert (state["ActiveState"], state["SubState"], state["ExecMainStatus"]) == ("failed", "failed", "3")
            assert state["NRestarts"] == "0", unit
        log = box.check(f"journalctl -u {unit_of('jmon')} --no-pager")
        assert "log_retention" in log and "soon" in log
        check = redsys(box, "redinfo -i TST1 --check")
        assert check.returncode == 3 and "log_retention" in check.stderr
        start = redctl(box, "start", code=3)  # redctl reads the config first and starts nothing
        assert "log_retention" in start.stdout + start.stderr
    finally:
        box.check(f"mv {conf}.good {conf}", user="redsys")
        box.sh(f"systemctl reset-failed {' '.join(units('TST1'))}")
    running(box)


def test_redsys_drives_only_its_own_units(box: Box) -> None:
    running(box)
    own = redsys(box, f"systemctl --no-ask-password restart {unit_of('jmon')}")
    assert own.returncode == 0, own.stderr
    foreign = redsys(box, "systemctl --no-ask-password restart systemd-journald.service")
    assert foreign.returncode != 0
    assert "denied" in foreign.stderr.lower() or "authentication required" in foreign.stderr.lower()
    sudo = redsys(box, "sudo -n /usr/bin/systemctl restart systemd-journald.service")
    assert sudo.returncode != 0


def test_a_stop_that_cannot_ask_systemd_fails_instead_of_stopping_nothing(box: Box) -> None:
    """systemctl cannot reach systemd (no bus): the units' states are unknown. Before, they read as not installed,
    so `redctl stop` stopped nothing and exited 0."""
    running(box)
    broken = redsys(box, "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent redctl -i TST1 stop")
    assert broken.returncode != 0, broken.stdout + broken.stderr
    assert "the state of the units is unknown" in broken.stderr
    assert show(box, unit_of("jmon"))["SubState"] == "running"  # nothing was stopped, and nothing said it was


def test_instance_without_devdb_and_stop_all(box: Box, app1: object) -> None:
    """DEV1 (devdb_enabled = false) starts SCHED and JMON only, against TST1's database; stop-all stops both."""
    running(box)
    box.check("systemctl start redsys.service", timeout=180)  # active (RemainAfterExit) so that stop runs stop-all
    start = redctl(box, "start", instance="DEV1")
    assert unit_of("devdb", "DEV1") not in start.stdout
    assert show(box, unit_of("devdb", "DEV1"))["ActiveState"] == "inactive"
    for unit in (unit_of("sched", "DEV1"), unit_of("jmon", "DEV1")):
        assert show(box, unit)["SubState"] == "running", unit
    sched_port = config_value(box, "dev1", "sched_service_port")
    assert sched_port != config_value(box, "tst1", "sched_service_port")  # given by `redsysctl create`
    assert box.sh(f"ss -ltn | grep -q '127.0.0.1:{sched_port} '").returncode == 0  # DEV1's SCHED on its own port
    status_all = redsys(box, "redsysctl status-all")
    assert status_all.returncode == 0, status_all.stdout + status_all.stderr  # LSB: everything runs
    assert "running: DEV1, TST1" in status_all.stdout
    assert "redpss-rest" not in status_all.stdout  # a unit that is not installed is not listed
    # restart-all (as start-all at boot) takes the instances side by side, each one's output shown whole, in order
    restarted = redsys(box, "redsysctl restart-all", timeout=300)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    blocks = re.split(r"^--- (\w+) \(", restarted.stdout, flags=re.MULTILINE)[1:]
    assert blocks[0::2] == ["DEV1", "TST1"], restarted.stdout
    for name, block in zip(blocks[0::2], blocks[1::2], strict=True):
        assert f"redpss-jmon@{name}.service" in block and "redpss-sched@" + name in block, restarted.stdout
    assert "running: DEV1, TST1" in redsys(box, "redsysctl status-all").stdout

    def when(unit: str, event: str) -> int:
        return int(box.check(f"systemctl show -p {event}TimestampMonotonic --value {unit}"))

    tst1_began = min(when(unit, "InactiveExit") for unit in units("TST1"))
    assert tst1_began < when(unit_of("jmon", "DEV1"), "ActiveEnter")  # TST1 began before DEV1 was ready
    result = box.sh("systemctl stop redsys.service", timeout=300)
    assert result.returncode == 0, result.stderr
    for unit in units("TST1") + units("DEV1"):
        state = show(box, unit)
        assert state["ActiveState"] == "inactive", (unit, state)
        assert state["ExecMainStatus"] == "0", (unit, state)
    redsys_state = show(box, "redsys.service")  # ExecStop= (redsysctl stop-all) succeeded: not failed
    assert (redsys_state["ActiveState"], redsys_state["Result"]) == ("inactive", "success"), (
        redsys_state,
        box.check("journalctl -u redsys.service --no-pager -n 40"),
    )
    stopped = redsys(box, "redsysctl status-all")
    assert stopped.returncode == 3, stopped.stdout  # stopped on purpose, nothing failed
    assert "stopped: DEV1, TST1" in stopped.stdout


def test_restctl_stops_and_shows_the_api_while_the_config_is_broken(box: Box) -> None:
    """A config broken after the API started must not keep restctl, and with it `redsysctl stop`, from stopping it;
    `status` says stopped; `start` refuses naming the problem."""
    conf = f"{REDHOME}/env/dev1/etc/red_params.conf"
    box.check(f"cp {conf} {conf}.good && sed -i 's/^#log_retention = 30$/log_retention = soon/' {conf}", user="redsys")
    try:
        stop = redsys(box, "restctl -i DEV1 stop")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "log_retention" in stop.stderr and "stop goes on with the unit redpss-rest@DEV1.service" in stop.stderr
        assert redsys(box, "restctl -i DEV1 status").returncode == 3  # LSB: not running
        start = redsys(box, "restctl -i DEV1 start")
        assert start.returncode == 3 and "log_retention" in start.stderr
        stop_all = redsys(box, "redsysctl stop DEV1")
        assert stop_all.returncode == 0, stop_all.stdout + stop_all.stderr
    finally:
        box.check(f"mv {conf}.good {conf}", user="redsys")


def test_instance_switching_in_an_interactive_shell(box: Box) -> None:
    """`su - redsys`, then `tst1`: banner, prompt, REDENV, PATH; CTRL-D goes back to redsys's shell."""
    pid, fd = pty.fork()
    if pid == 0:  # the child becomes the terminal session inside the container
        argv = box.command(["su", "-", "redsys"], env={"TERM": "dumb"})
        os.execvp(argv[0], argv)  # noqa: S606 - the test is the terminal of an interactive login
    output = b""

    def read_until(marker: bytes, timeout: float = 15.0, after: int = 0) -> bytes:
        """Read until `marker` appears in the output past position `after`."""
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output[after:]:
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
        read_until(b"tst1]$ ", after=output.rindex(b"/bin/redctl]"))  # the shell waits for input again
        text = output.decode(errors="replace")
        assert "current environment: TST1" in text and "exit with CTRL-D" in text
        assert f"[TST1|{REDHOME}/env/tst1|{REDHOME}/env/tst1|{REDHOME}/env/tst1/bin/redctl]" in text
        assert "tst1]$ " in text
        mark = len(output)
        os.write(fd, b"\x04")  # CTRL-D leaves the instance shell
        read_until(b"redsys@", after=mark)  # redsys's own prompt again
        os.write(fd, b'echo "back-[${REDENV:-none}]"\n')
        read_until(b"back-[none]")
        os.write(fd, b"exit\n")
    finally:
        os.close(fd)
        os.waitpid(pid, 0)


def documented_journal_commands() -> list[str]:
    """Every journalctl command line docs/operations.md and the README show, following (-f) turned into a read."""
    text = DOCS.read_text() + (REPO / "README.md").read_text()
    commands = re.findall(r"(journalctl (?:-u \S+|'?[A-Z_]+=\S+'?|\s)+?(?:-f)?)(?=\s{2,}|\s*#|$)", text, re.MULTILINE)
    found = sorted({c.strip().removesuffix(" -f") for c in commands if "@TST1" in c or "REDENV=TST1" in c})
    assert found, "no journalctl command found in the docs"
    return found


def test_redsys_reads_the_journal_with_the_documented_commands(box: Box, app1: object) -> None:
    """As redsys (a member of systemd-journal), each documented command shows the daemons' lines (exit 0)."""
    running(box)
    commands = documented_journal_commands()
    assert "journalctl -u 'redpss-*@TST1.service'" in commands
    for command in commands:
        result = redsys(box, f"{command} --no-pager -n 200")
        assert result.returncode == 0, (command, result.stderr)
        if " -u " in f" {command} ":
            assert "No entries" not in result.stdout, command
    whole = redsys(box, "journalctl -u 'redpss-*@TST1.service' --no-pager -o json")
    assert {json.loads(line).get("_SYSTEMD_UNIT") for line in whole.stdout.splitlines()} >= set(units("TST1"))
    broken = redsys(box, "journalctl -u 'redpss-*@TST1' --no-pager")  # the form the docs no longer show
    assert broken.returncode != 0 and "No data available" in broken.stderr


def test_start_resets_a_unit_that_hit_the_start_limit(box: Box, app1: object) -> None:
    """Restarts beyond StartLimitBurst leave JMON failed; status says so (exit 1, no stale STATUS=), start heals."""
    running(box)
    unit = unit_of("jmon")
    for _ in range(10):
        if box.sh(f"systemctl restart {unit}", timeout=120).returncode != 0:
            break
    assert show(box, unit)["Result"] == "start-limit-hit", show(box, unit)
    status = redctl(box, "status", code=1)  # LSB: something failed
    line = unit_states(status.stdout)[unit]
    assert line.startswith("failed (failed), result start-limit-hit"), line
    assert "ready" not in line  # the dead process's STATUS= text is not shown
    start = redctl(box, "start")  # resets the failed state first
    assert unit_states(start.stdout)[unit].startswith("active (running)"), start.stdout
    wait_for(lambda: redctl(box, "show --json", code=None).returncode == 0, 60, 0.2, "JMON answering")


def test_a_taken_port_fails_once_naming_its_holder_and_the_hint_works(box: Box, app1: object) -> None:
    """SCHED's port held by another process of redsys: SCHED exits 3 (no restart loop) naming the holder; the
    journalctl command redctl prints runs and shows that line."""
    running(box)
    redctl(box, "stop")
    port = config_value(box, "tst1", "sched_service_port")
    hog = (  # SO_REUSEADDR as the daemons set it: the port may still hold TIME_WAIT connections of the last SCHED
        "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)"
    )
    box.check(f'systemd-run --unit=porthog --uid=redsys --gid=redftp /usr/bin/python3 -c "{hog}"')
    try:
        wait_for(
            lambda: box.sh(f"ss -ltn | grep -q '127.0.0.1:{port} '").returncode == 0,
            30,
            0.1,
            f"the port hog ({box.sh('systemctl status porthog --no-pager').stdout})",
        )
        start = redctl(box, "start", code=1)
        state = show(box, unit_of("sched"))
        assert (state["ActiveState"], state["ExecMainStatus"], state["NRestarts"]) == ("failed", "3", "0"), state
        hint = re.search(r"see: (journalctl .*)$", start.stdout, re.MULTILINE)
        assert hint, start.stdout
        log = redsys(box, f"{hint[1]} --no-pager")
        assert log.returncode == 0, log.stderr
        assert f"port {port} on 127.0.0.1 is already in use, held by pid" in log.stdout, log.stdout[-3000:]
        assert "python3 -c import socket" in log.stdout
    finally:
        box.sh("systemctl stop porthog")
    redctl(box, "start")  # the port is free again: the failed unit is reset and starts
    wait_for(lambda: redctl(box, "show --json", code=None).returncode == 0, 60, 0.2, "JMON answering")


def test_sudo_rule_refuses_a_foreign_unit_through_every_allowed_command_line(box: Box) -> None:
    """etc/sudoers.d/redpss-units, as installed: each action reaches an own unit, none takes victim.service along."""
    from tests.redftp.sudoers_units import ACTIONS, SYSTEMCTL  # noqa: PLC0415 - the rule's own command lines

    box.check("systemd-run --unit=victim /bin/sleep 600")
    try:
        for action in ACTIONS.values():
            own = redsys(box, f"sudo -n -l {SYSTEMCTL} {action} redpss-jmon@TST1.service")
            assert own.returncode == 0, (action, own.stdout, own.stderr)
            for foreign in (
                "victim.service",
                "redpss@NOPE.target victim.service",
                "redpss-jmon@TST1.service victim.service",
            ):
                asked = redsys(box, f"sudo -n -l {SYSTEMCTL} {action} {foreign}")
                assert asked.returncode != 0, (action, foreign)
        ran = redsys(box, f"sudo -n {SYSTEMCTL} stop -- redpss@NOPE.target victim.service")
        assert ran.returncode != 0
        assert show(box, "victim.service")["ActiveState"] == "active"
    finally:
        box.sh("systemctl stop victim.service")


def test_a_rotated_log_older_than_the_retention_disappears(box: Box, app1: object) -> None:
    """Daily files <daemon>-YYYY-MM-DD.log: a started daemon removes the days beyond log_retention (30 by default)."""
    running(box)
    log = f"{REDHOME}/env/tst1/log"
    box.check(f"echo old > {log}/jmon-2020-01-01.log", user="redsys")
    box.check(f"systemctl restart {unit_of('jmon')}", timeout=120)  # retention runs at start, then daily
    wait_for(lambda: box.sh(f"test -e {log}/jmon-2020-01-01.log").returncode != 0, 30, 0.2, "the old day removed")
    assert box.sh(f"test -s {log}/sched.log").returncode == 0, box.check(f"ls -la {log}")  # today's file stays
    wait_for(lambda: redctl(box, "show --json", code=None).returncode == 0, 60, 0.2, "JMON answering")
