"""How JEXEC ends a run's processes: never a process group that is no longer the run's."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from redpss.jexec.processes import PR_SET_CHILD_SUBREAPER, signal_run
from tests.support.processes import alive
from tests.support.wait import wait_for


def test_a_group_whose_number_is_no_longer_the_scripts_is_left_alone() -> None:
    """After a script is reaped and its group is empty, its number can be another process's group (pids wrap):
    signal_run(script, ...) sent SIGKILL to that group with killpg(). Here the other group is a `sleep` that
    setsid made a group leader and that belongs to init, not to this process: it must stay alive."""
    started = subprocess.run(
        ["sh", "-c", "setsid sleep 60 >/dev/null 2>&1 </dev/null & echo $!"],
        check=True,
        capture_output=True,
        text=True,
    )
    foreign = int(started.stdout)
    wait_for(lambda: os.getpgid(foreign) == foreign, 10, 0.01, "the sleep leading a group of its own")
    parent = int(Path(f"/proc/{foreign}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
    assert parent != os.getpid(), "this process reaps orphans (a subreaper): the sleep would be its own"
    try:
        assert signal_run(foreign, "run-that-ended", signal.SIGKILL) == set()
        assert alive(foreign)
    finally:
        os.kill(foreign, signal.SIGKILL)


@pytest.fixture
def reaper() -> Iterator[None]:
    """This process the reaper of its orphaned descendants while the test runs, as JEXEC makes itself."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def test_the_group_of_a_script_not_yet_reaped_and_its_members_are_signalled(reaper: None) -> None:
    """The script (a child of this process) leads its group: the group is signalled, and the member that left the
    script's group by setsid (an orphan of this process once the script is killed) is found by the run id in its
    environment."""
    env = {**os.environ, "REDPSS_RUN_ID": "run-7"}
    script = subprocess.Popen(["sh", "-c", "sleep 60 & setsid sleep 61 & wait"], start_new_session=True, env=env)
    processes: set[int] = set()
    try:

        def members() -> set[int] | None:
            found = {
                int(p.name)
                for p in Path("/proc").iterdir()
                if p.name.isdigit() and _in_group_or_run(int(p.name), script.pid, b"run-7")
            }
            return found if len(found) >= 3 else None

        processes = wait_for(members, 10, 0.01, "the script and its two sleeps")
        script_pid = script.pid
        signal_run(script_pid, "run-7", signal.SIGKILL)
        script.wait(10)

        def all_ended() -> bool:
            for pid in processes - {script_pid}:  # orphans of this process: reaped here, as JEXEC reaps them
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            return not any(alive(pid) for pid in processes - {script_pid})

        if not all_ended():
            signal_run(script_pid, "run-7", signal.SIGKILL)  # as kill_run looks again: the orphan is found now
        wait_for(all_ended, 10, 0.01, "the sleeps killed")
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
        for pid in processes - {script.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_reaped_scripts_group_is_signalled_while_a_member_names_the_run() -> None:
    """Where JEXEC could not become the reaper of orphans, a `cmd &` of a script that exited is re-parented to init,
    out of JEXEC's tree but still in the script's group and naming the run: the group is the run's, and signalled."""
    env = {**os.environ, "REDPSS_RUN_ID": "run-8"}
    script = subprocess.Popen(
        ["sh", "-c", "sleep 60 >/dev/null 2>&1 </dev/null & echo $!"],
        start_new_session=True,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    left, _ = script.communicate(timeout=10)  # the script exited and is reaped: its number is free
    member = int(left)
    try:
        assert os.getpgid(member) == script.pid
        signal_run(script.pid, "run-8", signal.SIGKILL)
        wait_for(lambda: not alive(member), 10, 0.01, "the member of the run's group killed")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _in_group_or_run(pid: int, group: int, run_id: bytes) -> bool:
    try:
        if os.getpgid(pid) == group:
            return True
        return b"REDPSS_RUN_ID=" + run_id in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
