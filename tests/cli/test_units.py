"""The checked-in units: rendered from one template, systemd 239 directives only, hardened to 2.0 or below."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from redpss.cli.redsysctl.units import LIMIT_NOFILE, render_units, stale_units
from redpss.core.services import SERVICES

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "units"
# systemd 239's directive names (RHEL 8.10's load-fragment table), kept in the repository so the check always runs.
DIRECTIVES_239 = Path(__file__).resolve().parent / "data" / "systemd-239-directives.txt"
MAX_EXPOSURE = 2.0


def test_units_match_their_rendering() -> None:
    stale = stale_units(UNITS)
    assert not stale, f"units/ differs from the rendering; run: python -m redpss.cli.redsysctl.units units/ ({stale})"


def test_every_service_has_a_unit() -> None:
    for spec in SERVICES:
        text = (UNITS / f"redpss-{spec.name}@.service").read_text()
        assert f"/bin/redpss-{spec.name} --instance %i" in text


def test_only_systemd_239_directives() -> None:
    known = {line.strip() for line in DIRECTIVES_239.read_text().splitlines() if line.strip() and line[0] != "#"}
    used = {
        (unit, match)
        for unit, text in render_units().items()
        for match in re.findall(r"^([A-Za-z]+)=", text, flags=re.MULTILINE)
    }
    assert used
    unknown = sorted(f"{unit}: {name}" for unit, name in used if name not in known)
    assert not unknown, f"directives systemd 239 does not know: {unknown}"


def test_daemon_unit_essentials() -> None:
    text = render_units()["redpss-devdb@.service"]
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "RestartPreventExitStatus=3",
        "User=redsys",
        "Group=redftp",
        "PartOf=redpss@%i.target",
        "KillMode=mixed",
        "UMask=0027",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "Environment=REDHOME=/app/redsys REDENV=%i EXASOL_TELEMETRY_DISABLE=1",
    ):
        assert re.search(rf"^{re.escape(line)}", text, flags=re.MULTILINE), line
    # every directive line is explained by a comment above it or belongs to a commented group
    assert int(re.search(r"^TimeoutStopSec=(\d+)", text, flags=re.MULTILINE)[1]) > 30 + 10  # type: ignore[index]


def test_only_the_ingest_daemons_and_sched_may_write_the_instance_sftp_tree() -> None:
    """CFISRV, JSON2CSV, PARQ2CSV and SCHED move uploads out of /app/redftp/env/<instance>: they (and no other
    unit) get exactly this instance's sFTP tree writable, through the root-owned link named after %i."""
    writers = {"cfi", "json2csv", "parq2csv", "sched"}
    for name, text in render_units().items():
        writable = re.findall(r"^ReadWritePaths=(.*)$", text, flags=re.MULTILINE)
        if name.endswith(".target"):
            continue
        assert len(writable) == 1, name
        paths = writable[0].split()
        service = name.removeprefix("redpss-").removesuffix("@.service")
        if service in writers:
            assert paths == ["/app/redsys/env/.units/%i", "-/app/redftp/env/.units/%i"], name
        else:
            assert not any("redftp" in path for path in paths), name


def test_the_daemons_scheds_jobs_use_stop_after_sched() -> None:
    """systemd stops units in the reverse of their After= order: JEXEC, SENDMAIL, SENDFILE, CFISRV (and DBLS) are
    before SCHED, so the ACTION runs, alert mails, SENDFILE jobs and LOAD imports of SCHED's drain find them serving
    (JEXEC stopped first turned the queued ACTION runs of a routine stop into FAILED ones); JMON, MAIL2CMD and the
    REST API, which drive SCHED, come after it."""
    units = render_units()
    after = re.search(r"^After=(.*)$", units["redpss-sched@.service"], flags=re.MULTILINE)
    assert after is not None
    before_sched = {name.removeprefix("redpss-").removesuffix("@%i.service") for name in after[1].split()}
    assert {"devdb", "dbls", "jexec", "sendmail", "sendfile", "cfi", "json2csv", "parq2csv"} <= before_sched
    for later in ("jmon", "mail2cmd", "rest"):
        assert "redpss-sched@%i.service" in units[f"redpss-{later}@.service"], later


def test_unknown_directive_is_caught() -> None:
    """The check above can fail: a directive systemd 239 lacks (added in 240+) is not in the list."""
    known = set(DIRECTIVES_239.read_text().split())
    assert "ProtectSystem" in known and "LimitNOFILE" in known
    assert "ProtectHostname" not in known and "ProtectKernelLogs" not in known


def test_open_file_limit_is_set_deliberately() -> None:
    """Every daemon unit sets LimitNOFILE= (soft and hard) above RHEL 8's default soft limit of 1024."""
    for name, text in render_units().items():
        if name.startswith("redpss-"):
            match = re.search(r"^LimitNOFILE=(\d+)$", text, flags=re.MULTILINE)
            assert match, name
            assert int(match[1]) == LIMIT_NOFILE > 1024, name


def _analyze_version() -> int:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        return 0
    out = subprocess.run([exe, "--version"], check=False, capture_output=True, text=True).stdout
    match = re.match(r"systemd (\d+)", out)
    return int(match[1]) if match else 0


@pytest.mark.skipif(_analyze_version() < 252, reason="systemd-analyze >= 252 is needed for --offline=true")
def test_security_exposure_at_most_2() -> None:
    out = subprocess.run([str(REPO / "tools" / "unit_security")], check=True, capture_output=True, text=True).stdout
    scores = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}
    assert len(scores) == len(SERVICES) + 1, out
    assert all(score <= MAX_EXPOSURE for score in scores.values()), out


def test_only_the_daemons_that_judge_uploads_have_a_capability_and_it_is_cap_lease() -> None:
    """JSON2CSV, PARQ2CSV and SCHED (FILE watchers, LOAD jobs) ask the kernel whether an sFTP user's upload is still
    open for writing (core.filestable): CAP_LEASE, in the bounding set and ambient; every other unit has none."""
    judges = {"json2csv", "parq2csv", "sched"}
    for name, text in render_units().items():
        if name.endswith(".target"):
            continue
        bounding = re.findall(r"^CapabilityBoundingSet=(.*)$", text, flags=re.MULTILINE)
        ambient = re.findall(r"^AmbientCapabilities=(.*)$", text, flags=re.MULTILINE)
        service = name.removeprefix("redpss-").removesuffix("@.service")
        wanted = ["CAP_LEASE"] if service in judges else [""]
        assert (bounding, ambient) == (wanted, wanted), name
