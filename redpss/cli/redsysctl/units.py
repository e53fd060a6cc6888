"""The systemd units of RED-PSS, rendered from one template per kind so they cannot drift apart.

Every daemon of redpss.core.services.SERVICES gets units/redpss-<name>@.service from SERVICE_TEMPLATE; the instance
target and redsys.service are fixed texts kept here too, so `python -m redpss.cli.redsysctl.units units/` rewrites
the whole folder and a test fails when the checked-in files differ from what this module renders.

systemd 239 (RHEL 8) has no lower-case specifier, while an instance folder is lower case ($REDHOME/env/tst1). The
units therefore reach an instance through `$REDHOME/env/.units/<INSTANCE>`, a symlink to the lower-case folder that
`redsysctl create` (and every start through redsysctl/redctl) maintains. systemd follows it for ExecStart=,
AssertPathIsDirectory= and ReadWritePaths=, so each daemon may write only its own instance's tree and runs the code
its instance's bin/ points at (instances may run different versions).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from redpss.core.paths import DEFAULT_REDHOME
from redpss.core.services import SERVICES, ServiceSpec

# Seconds a daemon may take to stop before systemd sends SIGKILL: its drain_timeout (ServiceSpec) + abort
# (ABORT_TIMEOUT, 10 s) + a margin. A shorter stop timeout would kill a draining SCHED while a run is still
# finishing and its log row was not yet written.
STOP_MARGIN = 10
TIMEOUT_STOP_SEC = 50  # at least this long for every daemon
# Seconds a daemon may take to report READY: JMON waits up to 60 s for the database at start-up (then systemd
# restarts it), SCHED starts all its workers first. A start-up that takes longer is killed and restarted.
TIMEOUT_START_SEC = 90
WATCHDOG_SEC = 30
# Open files per daemon, soft and hard alike (RHEL 8's default soft limit is 1024): a wire server holds up to 256
# authenticated and 64 unauthenticated connections per listener (core.wire.Limits), devdb 64 waiting logins plus
# its sessions and DuckDB's files, SCHED two pipes per worker, every daemon its logs and journald stream. 4096 is
# several times that, and a flood beyond the caps is refused by the caps, not by EMFILE in an accept loop.
LIMIT_NOFILE = 4096
UNIT_LINKS = "env/.units"  # below REDHOME: <INSTANCE> -> ../<instance>
# The daemons that archive or remove sFTP uploads (JSON2CSV, PARQ2CSV, SCHED's LOAD jobs) or serve them (CFISRV)
# may also write this instance's sFTP tree, reached through the root-owned link redftp_useradd makes
# (redpss.redftp.layout.UNIT_LINKS); `-`: an instance without sFTP users has no tree, and the unit starts anyway.
# Every other unit keeps the sFTP trees read-only: a rename from the tree into data/archive needs both writable.
SFTP_WRITERS = frozenset({"cfi", "json2csv", "parq2csv", "sched"})
# The daemons that decide when an upload is finished (core.filestable): CAP_LEASE lets them ask the kernel whether
# a file they do not own (an sFTP user's) is still open for writing, by a read lease they drop at once. No file may
# be read, written or opened that the user redsys could not; a lease can delay other processes' opens of a file it
# may read by up to 45 s (docs/decisions.md weighs that).
UPLOAD_JUDGES = frozenset({"json2csv", "parq2csv", "sched"})
# The daemons that decode files uploaded by others (JSON2CSV, PARQ2CSV) may take at most this much memory: they
# keep to ~150-300 MiB on any file they accept (batches sized by bytes, records limited), but a file can still decode
# to more than it holds (a record nested or repeated for it). Beyond the limit the kernel kills the daemon, not the
# database's or another process's memory; systemd restarts it, and a file that ends it twice goes to data/error
# (redpss.convert.crashes). 239 on cgroup v1 applies MemoryMax= as MemoryLimit=. An operator raises it with a
# drop-in (`systemctl edit redpss-parq2csv@TST1`, docs/operations.md).
MEMORY_MAX = {"json2csv": "2G", "parq2csv": "2G"}
MEMORY_LIMIT = """\
# At most {memory_max} of memory: beyond it the kernel kills this daemon, not the database or another process;
# a file whose conversion ends it twice goes to data/error (see MEMORY_MAX in units.py; raise it with a drop-in).
MemoryMax={memory_max}
"""
NO_CAPABILITIES = """\
# No capabilities at all: ports are above 1024, files belong to redsys.
CapabilityBoundingSet=
AmbientCapabilities=
"""
LEASE_ONLY = """\
# One capability: CAP_LEASE, to tell an sFTP upload still open for writing (its client stalled) from a finished
# one by a read lease taken and dropped at once (core/filestable.py). Ports are above 1024, files belong to redsys.
CapabilityBoundingSet=CAP_LEASE
AmbientCapabilities=CAP_LEASE
"""


def sftp_tree_links() -> Path:
    """/app/redftp/env/.units: where a unit finds an instance's sFTP tree by its upper-case name."""
    from redpss.redftp.layout import RedftpLayout  # noqa: PLC0415 - redftp (dataclasses) only when rendering

    return RedftpLayout().unit_links


HEADER = """\
# {file}: {what}
# Rendered by `python -m redpss.cli.redsysctl.units units/` from redpss/cli/redsysctl/units.py; edit there.
"""

SERVICE_TEMPLATE = """\
[Unit]
Description=RED-PSS {upper} of instance %i: {description}
Documentation=file://{redhome}/doc/operations.md
# Stopping or restarting the instance (redpss@%i.target, `redctl stop`) reaches this daemon too.
PartOf=redpss@%i.target
# Started after the instance's daemons listed before it (the embedded database first) and so stopped before them:
# a draining daemon still reaches the database to write its last log rows. Ordering only; nothing is pulled in.
After=network.target{after}
# A missing instance fails the start loudly (a Condition= would let `systemctl start` succeed doing nothing).
# {links}/%i is the link `redsysctl create` makes to the lower-case instance folder.
AssertPathIsDirectory={links}/%i
# At most 5 starts in 5 minutes, then the unit stays failed and the operator looks at `journalctl -u`.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
# READY=1 comes from the daemon once its sockets are bound: `systemctl start` returns when it really serves.
Type=notify
# Only the daemon itself may send READY/STATUS/WATCHDOG, not a child it starts.
NotifyAccess=main
# Open files: above every connection cap the daemon enforces itself (see LIMIT_NOFILE in units.py).
LimitNOFILE={limit_nofile}
{memory}# The instance's own code: each instance runs the version its bin/ points at.
ExecStart={links}/%i/bin/redpss-{name} --instance %i
WorkingDirectory={links}/%i
# Where the instance lives; pyexasol must never send telemetry.
Environment=REDHOME={redhome} REDENV=%i EXASOL_TELEMETRY_DISABLE=1 PYTHONDONTWRITEBYTECODE=1
# The daemon pings every {half} s from its main loop; a hung daemon is killed and restarted.
WatchdogSec={watchdog}
# Crashes, kills and watchdog timeouts restart the daemon after 2 s ...
Restart=on-failure
RestartSec=2
# ... but exit 3 (bad config, failed start-up) does not: a restart would fail the same way.
RestartPreventExitStatus=3
# SIGTERM to the daemon only, so it drains its own children; whatever is left after the timeout gets SIGKILL.
KillMode=mixed
# Above the daemon's drain timeout ({drain} s) plus its abort ({abort} s).
TimeoutStopSec={timeout_stop}
# READY within this many seconds (JMON waits up to 60 s for the database), else killed and restarted.
TimeoutStartSec={timeout_start}
# The unprivileged owner of the instance tree; group redftp reads the sFTP users' uploads.
User=redsys
Group=redftp
# New files: owner read/write, group read, nothing for others.
UMask=0027
{hardening}"""

HARDENING = """\
# --- Hardening (every option below exists in systemd 239). ---
# The whole file system is read-only except {writable_why}.
ProtectSystem=strict
ReadWritePaths={writable}
# /home, /root and /run/user are invisible.
ProtectHome=yes
# A private /tmp and /var/tmp, emptied when the unit stops.
PrivateTmp=yes
# No physical devices (only /dev/null, /dev/zero, /dev/urandom, ...).
PrivateDevices=yes
# No new mounts leak in or out of the process's mount namespace.
PrivateMounts=yes
{network}# setuid binaries and file capabilities cannot raise privileges.
NoNewPrivileges=yes
{capabilities}# /proc/sys, /sys, kernel modules and the cgroup tree are read-only or out of reach.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
# {families_why}
RestrictAddressFamilies={families}
# No namespaces, realtime scheduling, setuid/setgid files or personality changes.
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# System V IPC objects of redsys are removed when the unit stops.
RemoveIPC=yes
# Native system calls only, from the set a system service needs, without the privileged and resource-changing
# ones; a refused call fails with EPERM instead of killing the daemon.
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""


def hardening(
    writable: str, writable_why: str, families: str, families_why: str, *, network: bool = True, lease: bool = False
) -> str:
    """The sandbox every RED-PSS unit runs in (systemd 239 options only), each directive explained."""
    no_network = (
        ""
        if network
        else "# No network at all: only AF_UNIX sockets (D-Bus, journald) are needed.\nPrivateNetwork=yes\n"
    )
    return HARDENING.format(
        writable=writable,
        writable_why=writable_why,
        families=families,
        families_why=families_why,
        network=no_network,
        capabilities=LEASE_ONLY if lease else NO_CAPABILITIES,
    )


TARGET = """\
[Unit]
Description=RED-PSS instance %i
Documentation=file://{redhome}/doc/operations.md
# Groups the daemons of one instance: each redpss-*@%i.service is PartOf= this target, so stopping or restarting
# the target stops or restarts them all. Which daemons start is decided by `redctl start` from the config.
"""

REDSYS_SERVICE = """\
[Unit]
Description=RED-PSS: start the instances marked for autostart
Documentation=file://{redhome}/doc/operations.md
# redsysctl drives the instance units through systemd's D-Bus API, authorised by polkit for the redsys user.
Wants=network-online.target
After=network-online.target dbus.service polkit.service

[Service]
# Runs once at boot; stays "active" so that shutdown runs ExecStop=.
Type=oneshot
RemainAfterExit=yes
# Starts only the instances whose $REDENV_HOME/.autostart exists.
ExecStart={redhome}/bin/redsysctl start-all
ExecStop={redhome}/bin/redsysctl stop-all
Environment=REDHOME={redhome} EXASOL_TELEMETRY_DISABLE=1 PYTHONDONTWRITEBYTECODE=1
# Waiting for every instance's daemons to report READY may take a while; stopping waits for their drain.
TimeoutStartSec=300
TimeoutStopSec=300
User=redsys
Group=redftp
UMask=0027
{hardening}
[Install]
WantedBy=multi-user.target
"""


def timeout_stop_sec(spec: ServiceSpec) -> int:
    """TimeoutStopSec= of a daemon: its drain, its abort and a margin, so systemd never kills a clean stop."""
    from redpss.core.daemon import ABORT_TIMEOUT  # noqa: PLC0415 - the daemon base only when rendering

    drain = spec.drain_timeout
    return max(TIMEOUT_STOP_SEC, int(drain + ABORT_TIMEOUT) + STOP_MARGIN)


def render_service(spec: ServiceSpec, redhome: Path = DEFAULT_REDHOME) -> str:
    from redpss.core.daemon import ABORT_TIMEOUT  # noqa: PLC0415 - the daemon base only when rendering

    file = f"redpss-{spec.name}@.service"
    drain = spec.drain_timeout
    return HEADER.format(file=file, what=f"the {spec.name} daemon of one instance (%i, e.g. TST1)") + (
        SERVICE_TEMPLATE.format(
            upper=spec.name.upper(),
            name=spec.name,
            description=spec.description,
            redhome=redhome,
            links=redhome / UNIT_LINKS,
            watchdog=WATCHDOG_SEC,
            half=WATCHDOG_SEC // 2,
            after="".join(f" redpss-{before.name}@%i.service" for before in SERVICES[: SERVICES.index(spec)]),
            drain=f"{drain:.0f}",
            abort=f"{ABORT_TIMEOUT:.0f}",
            timeout_stop=timeout_stop_sec(spec),
            timeout_start=TIMEOUT_START_SEC,
            limit_nofile=LIMIT_NOFILE,
            memory=MEMORY_LIMIT.format(memory_max=MEMORY_MAX[spec.name]) if spec.name in MEMORY_MAX else "",
            hardening=hardening(
                writable=f"{redhome / UNIT_LINKS}/%i"
                + (f" -{sftp_tree_links()}/%i" if spec.name in SFTP_WRITERS else ""),
                writable_why="the instance's own tree"
                + (" and its sFTP users' tree" if spec.name in SFTP_WRITERS else ""),
                families="AF_UNIX AF_INET AF_INET6",
                families_why="Only local sockets (journald, notify, control socket) and IP.",
                lease=spec.name in UPLOAD_JUDGES,
            ),
        )
    )


def render_units(redhome: Path = DEFAULT_REDHOME) -> dict[str, str]:
    """File name -> text of every unit RED-PSS installs."""
    units = {f"redpss-{spec.name}@.service": render_service(spec, redhome) for spec in SERVICES}
    units["redpss@.target"] = HEADER.format(file="redpss@.target", what="one RED-PSS instance") + TARGET.format(
        redhome=redhome
    )
    units["redsys.service"] = HEADER.format(file="redsys.service", what="RED-PSS at boot") + REDSYS_SERVICE.format(
        redhome=redhome,
        hardening=hardening(
            writable=f"{redhome}/env",
            writable_why="the instance trees (redsysctl repairs the unit links there)",
            families="AF_UNIX",
            families_why="Only local sockets: D-Bus to systemd, journald.",
            network=False,
        ),
    )
    return units


def stale_units(folder: Path) -> list[str]:
    """Unit files in `folder` that are missing, differ from the rendering, or are no longer rendered."""
    wanted = render_units()
    present = {p.name for p in folder.glob("*.service")} | {p.name for p in folder.glob("*.target")}
    stale = [
        name
        for name, text in wanted.items()
        if not (folder / name).is_file() or (folder / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + [name for name in present if name not in wanted])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m redpss.cli.redsysctl.units", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the units (the repository's units/)")
    parser.add_argument("--check", action="store_true", help="only report units that differ; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_units(args.folder)
        for name in stale:
            print(f"stale: {args.folder / name}", file=sys.stderr)
        return 1 if stale else 0
    args.folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_units().items():
        (args.folder / name).write_text(text, encoding="utf-8")
    for name in stale_units(args.folder):  # units of daemons that left SERVICES
        (args.folder / name).unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
