"""A file-descriptor flood against every listening daemon and a full tmp/, at instance level with runs going on:
each daemon keeps serving its authenticated clients, and once space returns no run-log row is missing.

The listener-level floods are tests/faults/test_wire_*.py and test_devdb_*.py; here the whole instance runs in a
private mount namespace with a small tmpfs over its tmp/ (JMON's socket, SCHED's spools and in-flight records).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.core.paths import InstancePaths
from tests.support.fault_instance import FaultInstance
from tests.support.hostile import raised_fd_limit
from tests.support.instance_runner import instance_config
from tests.support.private_tmp import PrivateTmp
from tests.support.unit_limits import nofile_limit
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

FLOOD = 1200  # idle connections per listener: beyond select()'s 1023 and every cap on unauthenticated peers
TMP_SIZE = "4m"


@pytest.fixture
def contained(instance: InstancePaths, tmp_path: Path) -> Iterator[tuple[FaultInstance, PrivateTmp]]:
    instance.config_file.write_text(instance_config())
    private = PrivateTmp(instance.tmp, TMP_SIZE)
    running = FaultInstance(instance, tmp_path, launcher=private.launcher())
    try:
        running.start_all()
        yield running, private
    finally:
        running.close()
        private.close()


@contextlib.contextmanager
def flooded(addresses: list[tuple[str, int] | Path], count: int) -> Iterator[dict[str, int]]:
    """`count` idle connections to each address, held open; how many each accepted."""
    opened: list[socket.socket] = []
    accepted: dict[str, int] = {}
    refusals: dict[str, str] = {}
    folders: list[int] = []
    try:
        for address in addresses:
            accepted[str(address)] = 0
            target: str | tuple[str, int]
            if isinstance(address, Path):  # through a descriptor of its folder: a socket path has 107 bytes at most
                folders.append(os.open(address.parent, os.O_PATH | os.O_DIRECTORY))
                target = f"/proc/self/fd/{folders[-1]}/{address.name}"
            else:
                target = address
            for _ in range(count):
                sock = socket.socket(socket.AF_UNIX if isinstance(target, str) else socket.AF_INET, socket.SOCK_STREAM)
                opened.append(sock)
                sock.settimeout(2)
                try:
                    sock.connect(target)
                except OSError as exc:  # refused or not accepted in time: the listener defends itself
                    refusals.setdefault(str(address), f"{type(exc).__name__}: {exc}")
                    continue
                accepted[str(address)] += 1
        print(f"flood: accepted {accepted}; first refusals {refusals}")
        yield accepted
    finally:
        for sock in opened:
            sock.close()
        for fd in folders:
            os.close(fd)


def open_files_limit(pid: int) -> tuple[int, int]:
    """The soft and hard RLIMIT_NOFILE of a process, from /proc/<pid>/limits."""
    line = next(row for row in Path(f"/proc/{pid}/limits").read_text().splitlines() if row.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def sched_spool_error(faulty: FaultInstance) -> str:
    status = faulty.sched_status()
    return str(status["runlog"]["spool_error"]) if status else ""


def logged_run_ids(faulty: FaultInstance) -> set[str]:
    """Run ids SCHED's log file says it finished (the insert jobs only)."""
    return set(re.findall(r"job APP1\.INSERT_\d+ run (\w+): [A-Z]+", faulty.procs["sched"].log))


def test_fd_flood_and_full_tmp_lose_nothing_and_the_daemons_keep_serving(
    contained: tuple[FaultInstance, PrivateTmp], figures: list[str]
) -> None:
    faulty, private = contained
    for name in ("sched", "jmon", "devdb"):  # the limit the units set (LimitNOFILE), not the test runner's
        assert open_files_limit(faulty.pid(name)) == (nofile_limit(), nofile_limit()), name
    config = faulty.inst.config
    faulty.add_inserting_jobs(2)
    faulty.wait_committing("runs committing before the flood")
    listeners: list[tuple[str, int] | Path] = [
        ("127.0.0.1", int(config.redctl.sched_service_port)),
        private.inside(faulty.paths.tmp / "jmon.sock"),
        ("127.0.0.1", int(config.default.exa_connection.rsplit(":", 1)[1])),
    ]
    with raised_fd_limit(len(listeners) * FLOOD + 500), flooded(listeners, FLOOD) as accepted:
        assert all(accepted.values()), f"a listener took no connection at all: {accepted}"
        faulty.wait_committing("runs committing during the flood")  # established sessions keep being served
        assert faulty.sched_status() is not None, "SCHED answers a new authenticated client"
        faulty.redctl("show", "--json")  # JMON answers on its socket
        faulty.inst.close()
        assert faulty.rows_written() > 0  # devdb takes a new login
    filled = private.fill()
    wait_for(lambda: sched_spool_error(faulty), 60, what="SCHED's run-log spool failing on the full tmp/")
    faulty.wait_committing("runs committing while tmp/ is full")
    faulty.wait_committing("more runs committing while tmp/ is full")
    faulty.redctl("show", "--json")
    private.free()
    wait_for(lambda: not sched_spool_error(faulty), 60, what="SCHED's run-log spool working again")
    faulty.stop_jobs()
    result = faulty.reconcile()
    in_log_table = {
        str(row["RUN_ID"])
        for row in faulty.inst.rows("SELECT RUN_ID FROM APP1.ADM_JOB_LOG WHERE JOB_ID > 100 AND STATUS <> 'SKIPPED'")
    }
    missing = logged_run_ids(faulty) - in_log_table
    flood = ", ".join(f"{n} of {FLOOD}" for n in accepted.values())
    line = (
        f"fd flood (SCHED port, JMON socket, devdb: {flood} accepted) and full tmp/ ({filled >> 20} MiB): served; "
        f"rows reconciled {result.rows} of {result.ok_runs} OK runs; run-log rows lost {len(missing)}; "
        f"lost {result.lost}; duplicated {result.duplicated_run_ids + result.unlogged}"
    )
    print(line)
    figures.append(line)
    assert not missing, f"runs SCHED finished with no row in ADM_JOB_LOG: {sorted(missing)}"
    assert result.ok_runs > 0
    assert (result.lost, result.unlogged, result.duplicated_run_ids) == (0, 0, 0), line
    for name in ("sched", "jmon", "devdb"):
        assert "Traceback" not in faulty.procs[name].log, f"{name} logged a traceback"
