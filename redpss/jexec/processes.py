"""All the processes of one run, also those that left its process group, so that none outlives the run.

Killing the script's process group is not enough: a child that calls setsid() (a daemonising tool, `setsid cmd &`)
has a group of its own, and once its parent exits it is re-parented, out of reach of a group kill. So JEXEC makes
itself a *child subreaper* (prctl PR_SET_CHILD_SUBREAPER, Linux 3.4): an orphaned descendant of a script becomes
JEXEC's child instead of init's, and the descendants of a run stay one tree below JEXEC. A run's processes are the
tree below its script, plus every child of JEXEC that carries the run's id in its environment (REDPSS_RUN_ID, which
the script and everything it starts inherit) and the trees below those. They are found in /proc, signalled, and
looked for again until none is left alive (a process may fork between a look and the kill; its child keeps the
id and is found the next time).

An orphan whose environment does not name its run (cleared, or hidden by a process that made itself non-dumpable,
which a JEXEC that is not root may not read) is not found at its run's end. It is killed once no action runs: every
child of JEXEC that is not a script is then left over from a run that ended (`kill_strays`).

Orphans that ended become zombies of JEXEC, which must reap them. asyncio's child watcher waits for the scripts
themselves by pid, so JEXEC reaps only pids that are not a script of a running action, and not while a script is
being started (asyncio knows that pid before JEXEC does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("redpss.jexec")

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
KILL_WAIT = 5.0  # seconds to wait for a run's processes to end after SIGKILL (one in uninterruptible sleep may not)
KILL_POLL = 0.005  # seconds between looks for processes of a run still alive


class ProcessEntry(NamedTuple):
    parent: int
    zombie: bool
    group: int  # process group id


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False (logged) where the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
        return True
    error = ctypes.get_errno()
    log.warning(
        "could not become the reaper of the actions' orphaned processes (%s): a process an action detaches with "
        "setsid() may outlive its run",
        os.strerror(error),
    )
    return False


def process_table() -> dict[int, ProcessEntry]:
    """Every process in /proc: its parent, whether it has ended (a zombie, not reaped yet) and its group."""
    table: dict[int, ProcessEntry] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended meanwhile
        table[int(entry.name)] = ProcessEntry(int(fields[1]), fields[0] == b"Z", int(fields[2]))
    return table


def _carries(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def run_processes(table: dict[int, ProcessEntry], script: int, run_id: str) -> set[int]:
    """The processes of the run `run_id` whose script has pid `script`, alive or not yet reaped."""
    marker = f"REDPSS_RUN_ID={run_id}".encode()
    return _trees_below(table, lambda pid: pid == script or _carries(pid, marker))


def _trees_below(table: dict[int, ProcessEntry], chosen: Callable[[int], bool]) -> set[int]:
    """The children of this process that `chosen` picks, and every process below them."""
    me = os.getpid()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, entry in table.items():
        children[entry.parent].append(pid)
    found: set[int] = set()
    pending = [pid for pid in children[me] if chosen(pid)]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.add(pid)
            pending.extend(children[pid])
    return found


def signal_run(script: int, run_id: str, signum: signal.Signals) -> set[int]:
    """Send `signum` to the script's group and to every live process of the run; the processes that were alive.

    The group is signalled only while it is still the run's: the script not reaped yet (its pid, and so its group
    id, cannot be taken while it is), or a live process in the group naming the run (REDPSS_RUN_ID; found anywhere,
    also re-parented to init where JEXEC could not become their reaper). Once the script is reaped and its group
    empty, the number may be any process's group (pids wrap), and killpg() would have signalled that group. One look
    at /proc serves both steps (kill_run looks again until none is left)."""
    table = process_table()
    if _group_is_ours(table, script, run_id):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(script, signum)
    alive = {pid for pid in run_processes(table, script, run_id) if not table[pid].zombie}
    for pid in alive:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    return alive


def _group_is_ours(table: dict[int, ProcessEntry], group: int, run_id: str) -> bool:
    """Whether process group `group` is the run's: its leader is a child of this process (the script, alive or a
    zombie), or a live member carries the run's id."""
    leader = table.get(group)
    if leader is not None and leader.parent == os.getpid():
        return True
    marker = f"REDPSS_RUN_ID={run_id}".encode()
    return any(entry.group == group and not entry.zombie and _carries(pid, marker) for pid, entry in table.items())


def run_alive(script: int, run_id: str) -> set[int]:
    """The run's processes still alive (not zombies): those of its tree and those naming its run."""
    table = process_table()
    return {pid for pid in run_processes(table, script, run_id) if not table[pid].zombie}


async def kill_run(script: int, run_id: str) -> set[int]:
    """SIGKILL every process of the run, and again until none is left alive: a process may fork between a look and
    its kill, and its child, found the next time, is killed too. Gives up (WARNING) after KILL_WAIT seconds; the
    processes still alive then (asleep in the kernel, e.g. on a hung mount), or none."""
    give_up = time.monotonic() + KILL_WAIT
    while alive := signal_run(script, run_id, signal.SIGKILL):
        if time.monotonic() > give_up:
            log.warning("run %s: %d process(es) still alive %g s after SIGKILL", run_id, len(alive), KILL_WAIT)
            return alive
        await asyncio.sleep(KILL_POLL)
    return set()


def kill_strays(scripts: set[int]) -> set[int]:
    """SIGKILL the live children of this process that are no script, with their trees; the pids killed.

    Called only while no action runs: every child of JEXEC is then an orphan of a run that ended and that its end
    could not tell as its own, because its environment does not say so: cleared (`setsid env -i cmd &`), or hidden
    from a JEXEC that is not root by a process that made itself non-dumpable (ssh-agent, `eval $(ssh-agent -s)`).
    """
    table = process_table()
    killed = set()
    for pid in sorted(_trees_below(table, lambda pid: pid not in scripts)):
        if table[pid].zombie:
            continue
        name = _name(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
            log.warning("killed process %d (%s): left behind by an action, it no longer named its run", pid, name)
    return killed


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def reap_orphans(watched: set[int]) -> int:
    """Reap the ended children of this process that are not in `watched` (the scripts asyncio waits for); how many."""
    me = os.getpid()
    reaped = 0
    for pid, entry in process_table().items():
        if entry.parent == me and entry.zombie and pid not in watched:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    reaped += 1
    return reaped
