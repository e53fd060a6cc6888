"""JEXEC as a real daemon: real scripts in cmd/, real process groups, real signals; the client is the stdlib one the
database's PSS_EXEC embeds."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from redpss.core.config import render_config
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret
from redpss.jexec.resolve import ActionRefused
from redpss.jexec.runner import ActionRequest, shell_word
from redpss.sql.udf.pss_client import PssClient, PssError
from tests.dbls.conftest import JournalCollector
from tests.support.daemons import DaemonProcess
from tests.support.private_tmp import PrivateTmp
from tests.support.processes import alive
from tests.support.wait import wait_for


@pytest.fixture
def jexec(instance: InstancePaths, tmp_path: Path) -> Iterator[tuple[DaemonProcess, int]]:
    with running_jexec(instance, tmp_path) as started:
        yield started


@contextlib.contextmanager
def running_jexec(
    instance: InstancePaths,
    tmp_path: Path,
    launcher: Sequence[str] = (),
    env: dict[str, str] | None = None,
    **redctl: str,
) -> Iterator[tuple[DaemonProcess, int]]:
    """JEXEC on a free port, with more [redctl] settings, environment and a command prefix (e.g. into a mount
    namespace)."""
    port = free_port()
    instance.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "pw"}, "redctl": {"jexec_port": str(port), **redctl}})
    )
    daemon = DaemonProcess("redpss.jexec.service", instance, tmp_path / "jexec", launcher=launcher, env=env)
    try:
        daemon.wait_ready()
        yield daemon, port
    finally:
        daemon.stop()
        daemon.close()


def script(instance: InstancePaths, name: str, body: str, mode: int = 0o750) -> Path:
    path = instance.cmd / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def client(instance: InstancePaths, port: int) -> PssClient:
    return PssClient("127.0.0.1", port, instance_secret(instance), client="test")


def test_runs_a_cmd_script_with_its_arguments_and_environment_without_a_shell(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = jexec
    script(
        instance,
        "reports/show.sh",
        'for a in "$@"; do echo "arg=$a"; done\n'
        'echo "env=$REDENV $REDENV_HOME $REDHOME $REDPSS_JOB_ID $REDPSS_RUN_ID"\n'
        'echo "script=$REDPSS_SCRIPT"\n'
        'echo "secret=${REDPSS_TEST_SECRET:-none}" >&2\n'
        "exit 3\n",
    )
    args = ["a b", "$(touch /tmp/jexec-injected)", "; rm -rf x", "*"]
    with client(instance, port) as conn:
        usual = conn.sock.gettimeout()
        reply = conn.run_action("reports/show.sh", args, timeout=30, job_id=7, run_id="run-1")
        assert conn.sock.gettimeout() == usual  # the run's longer wait does not stay on the connection
    assert (reply["status"], reply["exit_code"], reply["message"]) == ("FAILED", 3, "exit code 3")
    lines = reply["tail"].splitlines()
    assert lines[:4] == [f"arg={a}" for a in args]
    assert lines[4] == f"env=TST1 {instance.home} {instance.redhome} 7 run-1"
    assert lines[5] == f"script={instance.cmd / 'reports/show.sh'}"  # $0 is /proc/self/fd/N for a `#!` script
    assert lines[6] == "[stderr] secret=none"  # JEXEC's own environment does not leak into the script
    assert not Path("/tmp/jexec-injected").exists()
    log_file = Path(reply["log_file"])
    assert log_file == instance.log / "JEXEC" / "run-1.log"
    assert "stdout: arg=a b" in log_file.read_text() and "exit code 3 after" in log_file.read_text()
    daemon.wait_log("run run-1: cmd/reports/show.sh exit code 3")


MEGABYTE_OF_OUTPUT = "i=0; while [ $i -lt 10000 ]; do printf '%0100d\\n' $i; i=$((i+1)); done\n"  # 10,000 lines


def test_a_full_disk_neither_fails_nor_hangs_a_run(instance: InstancePaths, tmp_path: Path) -> None:
    """The run's file fills a small file system mid-run: the script's output must still be read (else its pipe
    fills and the script blocks until its timeout); the run ends with its own exit code and says the file is
    incomplete, the output goes on to the tail."""
    runs = instance.log / "JEXEC"
    runs.mkdir(parents=True, exist_ok=True)
    disk = PrivateTmp(runs, "64k")
    try:
        with running_jexec(instance, tmp_path, launcher=disk.launcher()) as (daemon, port):
            script(instance, "chatty.sh", MEGABYTE_OF_OUTPUT + "echo done\n")
            with client(instance, port) as conn:
                reply = conn.run_action("chatty.sh", timeout=60, run_id="full-disk")
            assert (reply["status"], reply["exit_code"]) == ("OK", 0)
            assert reply["message"].startswith("exit code 0; full-disk.log is incomplete: it cannot be written")
            assert reply["tail"].splitlines()[-1] == "done" and reply["duration"] < 30
            daemon.wait_log("run full-disk: ")
            assert "cannot be written (No space left on device)" in daemon.log
    finally:
        disk.close()


def test_a_run_s_file_keeps_output_up_to_its_limit(instance: InstancePaths, tmp_path: Path) -> None:
    with running_jexec(instance, tmp_path, jexec_output_limit_mb="1") as (_daemon, port):
        script(instance, "chatty.sh", MEGABYTE_OF_OUTPUT + MEGABYTE_OF_OUTPUT + "echo done\n")
        with client(instance, port) as conn:
            reply = conn.run_action("chatty.sh", timeout=60, run_id="limited")
    assert (reply["status"], reply["exit_code"]) == ("OK", 0)
    assert reply["message"] == ("exit code 0; limited.log is incomplete: its output reached the limit of 1048576 bytes")
    kept = Path(reply["log_file"])
    assert kept.stat().st_size <= 1024 * 1024 + 200
    assert kept.read_text().endswith("the journal has it (journalctl RUN_ID=limited)\n") and reply["tail"].endswith(
        "done"
    )


def test_a_run_past_its_timeout_is_killed_with_its_children(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = jexec
    pids = instance.tmp / "pids"
    script(instance, "hang.sh", f"sleep 300 &\necho $! > {pids}\necho $$ >> {pids}\necho started\nsleep 300\n")
    with client(instance, port) as conn:
        reply = conn.run_action("hang.sh", timeout=1.5)
    assert reply["status"] == "TIMEOUT"
    assert reply["message"] == "timed out after 1.5 s; its processes were killed"
    assert reply["tail"] == "started"
    assert 1.5 <= reply["duration"] < 10
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda p=pid: not alive(p), 10, what=f"process {pid} of the run gone")  # type: ignore[misc]


def test_at_a_timeout_the_scripts_children_get_the_grace_to_clean_up_too(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A wrapper (the script) dies at SIGTERM at once while the program it started cleans up (a lock removed, a file
    flushed): the grace before SIGKILL waited for the script only, so the program was killed some 20 ms later."""
    _, port = jexec
    cleaned = instance.tmp / "cleaned"
    child = f"trap 'sleep 0.5; echo done > {cleaned}; exit 0' TERM; while :; do sleep 0.1; done"
    script(instance, "wrapper.sh", f'sh -c "{child}" &\necho started\nsleep 300\n')
    with client(instance, port) as conn:
        reply = conn.run_action("wrapper.sh", timeout=1.0)
    assert reply["status"] == "TIMEOUT"
    assert cleaned.read_text() == "done\n"  # its cleanup ran to its end within the 2 s


def test_a_run_whose_requester_goes_away_is_killed(jexec: tuple[DaemonProcess, int], instance: InstancePaths) -> None:
    daemon, port = jexec
    pids = instance.tmp / "pids"
    script(instance, "long.sh", f"sleep 300 &\necho $! > {pids}\necho $$ >> {pids}\nsleep 300\n")
    conn = client(instance, port)
    conn.sock.sendall(b'{"op":"run","action":"long.sh","timeout":600,"run_id":"gone"}\n')
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10, what="the script running")
    conn.close()
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda p=pid: not alive(p), 10, what=f"process {pid} gone after the requester left")  # type: ignore[misc]
    daemon.wait_log("run gone: the requester test went away; the processes of cmd/long.sh were killed")
    assert "Traceback" not in daemon.log
    last = (instance.log / "JEXEC" / "gone.log").read_text().splitlines()[-1]  # not a file a crash cut short
    assert last.startswith("# killed after ") and last.endswith(" s: the requester went away"), last


def test_only_executable_scripts_of_our_user_inside_cmd_run(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths, tmp_path: Path
) -> None:
    daemon, port = jexec
    script(instance, "plain.txt", "echo no\n", mode=0o640)
    script(instance, "shared.sh", "echo no\n", mode=0o777)
    outside = tmp_path / "outside"
    outside.mkdir()
    script(instance, "../../../../outside/x.sh", "echo escaped\n")  # lands outside cmd/, reached only by links
    (instance.cmd / "leave.sh").symlink_to(outside / "x.sh")
    (instance.cmd / "away").symlink_to(outside)
    (instance.cmd / "inside.sh").symlink_to(instance.cmd / "plain.txt")
    (instance.cmd / "folder").mkdir()
    script(instance, "open/x.sh", "echo no\n")
    (instance.cmd / "open").chmod(0o770)  # a group member could rename another script to the name asked for
    expected = {
        "../x": "must be a relative path below cmd/ without '..'",
        "a/../../x": "must be a relative path below cmd/ without '..'",
        "/bin/sh": "is an absolute path; only scripts in cmd/ run",
        "leave.sh": "is a symbolic link; links are not followed in cmd/",
        "inside.sh": "is a symbolic link; links are not followed in cmd/",
        "away/x.sh": "cmd/away is a symbolic link or not a folder",
        "plain.txt": "is not executable: chmod u+x cmd/plain.txt",
        "shared.sh": "is writable by group or others: chmod go-w cmd/shared.sh",
        "folder": "is not a regular file",
        "open/x.sh": "cmd/open is writable by group or others, who could rename a script to the name: chmod go-w",
        "missing.sh": "cmd/missing.sh does not exist",
        "": 'an action names its script in cmd/: "action": "<relative path>"',
    }
    assert (outside / "x.sh").exists()
    with client(instance, port) as conn:
        for action, message in expected.items():
            with pytest.raises(PssError) as refused:
                conn.run_action(action)
            assert refused.value.code == "REFUSED"
            assert message in str(refused.value), action
        with pytest.raises(PssError, match='"args" must be a list of strings'):
            conn.request("run", action="plain.txt", args="a b")
        assert conn.ping()["server"] == "jexec"  # the connection stays usable
    daemon.wait_log("refused to run for test at")
    assert "escaped" not in (instance.log / "jexec.log").read_text()
    assert not (instance.log / "JEXEC").exists()


def test_the_same_refusal_per_row_is_logged_once_not_per_request(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A query calling a missing action per row was refused per row, each refusal a WARNING of its own: the first
    is logged, the rest of its minute counted (tests/core/test_repeated_warnings.py: their summary)."""
    daemon, port = jexec
    with client(instance, port) as conn:
        for _ in range(20):
            with pytest.raises(PssError, match=r"cmd/missing\.sh does not exist"):
                conn.run_action("missing.sh")
        with pytest.raises(PssError, match=r"cmd/other\.sh does not exist"):
            conn.run_action("other.sh")  # another reason: logged whole, after the twenty
    daemon.wait_log("cmd/other.sh does not exist")
    logged = (instance.log / "jexec.log").read_text()
    assert logged.count("cmd/missing.sh does not exist") == 1


def test_a_script_that_cannot_be_started_is_refused_saying_why_and_logged(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """exec's own words ("No such file or directory" for a file that exists) led nowhere, and nothing was logged."""
    daemon, port = jexec
    (instance.cmd / "dos.sh").write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    script(instance, "missing-interpreter.sh", "echo hi\n").write_text("#!/usr/bin/no-such-shell\necho hi\n")
    script(instance, "no-interpreter.sh", "").write_text("echo hi\n")
    for name in ("dos.sh", "missing-interpreter.sh", "no-interpreter.sh"):
        (instance.cmd / name).chmod(0o750)
    expected = {
        "dos.sh": "its first line '#!/bin/sh' ends with a carriage return: save the script with Unix line ends",
        "missing-interpreter.sh": "the interpreter its first line names ('#!/usr/bin/no-such-shell') does not exist",
        "no-interpreter.sh": "neither a program nor a script whose first line names its interpreter",
    }
    with client(instance, port) as conn:
        for action, message in expected.items():
            with pytest.raises(PssError) as refused:
                conn.run_action(action, run_id=action.replace(".sh", ""))
            assert refused.value.code == "REFUSED" and message in str(refused.value), action
            assert message in (instance.log / "JEXEC" / action.replace(".sh", ".log")).read_text()
    daemon.wait_log("run dos: action 'dos.sh' could not be started: its first line")


def test_an_argument_with_a_line_break_cannot_forge_a_line_of_the_run_file(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """The run file's header showed the arguments joined by blanks: one holding a line break and `# exit code 0`
    wrote a false end line into the file an operator reads."""
    _, port = jexec
    script(instance, "fails.sh", "exit 4\n")
    forged = "x\n# exit code 0 after 0.001 s"
    with client(instance, port) as conn:
        reply = conn.run_action("fails.sh", [forged, "two words"], timeout=30, run_id="forged")
    assert reply["status"] == "FAILED"
    comments = [line for line in Path(reply["log_file"]).read_text().splitlines() if line.startswith("#")]
    assert len(comments) == 2 and "exit code 4" in comments[1], comments
    assert comments[0].endswith(": cmd/fails.sh $'x\\n# exit code 0 after 0.001 s' 'two words'"), comments[0]


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "two words",
        "it's",
        "x\n# y",
        "tab\there",
        "back\\slash\n",
        "\x01\x7f",
        "é\u2028",
        "a\u00a0b\u0085",  # not printable, beyond ASCII: one UTF-8 character each, not one byte
        "\U000e0001x",  # beyond U+FFFF, followed by a hex digit
    ],
)
def test_arguments_in_the_run_file_read_back_in_bash_as_they_were_sent(text: str) -> None:
    shown = subprocess.run(
        ["bash", "-c", f"printf %s {shell_word(text)}"],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    ).stdout
    assert shown == text.encode()


def test_text_that_has_no_utf8_form_is_refused_not_an_internal_error() -> None:
    """JSON carries lone UTF-16 surrogates; no argv or file name can hold one. It was an INTERNAL error with a
    traceback in the log; now the request is refused naming the field."""
    for message, field in (
        ({"action": "a.sh", "args": ["\ud800"]}, '"args"'),
        ({"action": "a\udfff.sh", "args": []}, '"action"'),
    ):
        with pytest.raises(ActionRefused, match=f"{field} must be valid Unicode text"):
            ActionRequest.from_message(message, "run-1")


def test_an_unauthenticated_peer_runs_nothing(jexec: tuple[DaemonProcess, int], instance: InstancePaths) -> None:
    daemon, port = jexec
    script(instance, "touch.sh", f"touch {instance.tmp / 'ran'}\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b'{"op":"run","action":"touch.sh"}\n')
        assert b'"code":"BAD_HELLO"' in sock.recv(65536)
    with pytest.raises(PssError) as refused:
        PssClient("127.0.0.1", port, "not the secret" * 4)
    assert refused.value.code == "AUTH_FAILED"
    daemon.wait_log("[AUTH_FAILED]")
    assert not (instance.tmp / "ran").exists()


def test_a_forced_stop_kills_the_running_actions_with_their_children(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = jexec
    pids = instance.tmp / "pids"
    script(instance, "long.sh", f"sleep 300 &\necho $! > {pids}\necho $$ >> {pids}\nsleep 300\n")
    conn = client(instance, port)
    try:
        conn.send({"op": "run", "action": "long.sh", "timeout": 600, "run_id": "forced"})
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 10, what="the script running")
        daemon.process.send_signal(signal.SIGTERM)  # drains: the running action may finish ...
        daemon.wait_log("waiting for 1 running action(s) to finish")
        daemon.process.send_signal(signal.SIGTERM)  # ... until the second signal forces the stop
        reply = conn.next_reply()  # the requester learns that the script ran and was killed
        assert daemon.process.wait(30) == 1
    finally:
        conn.close()
    assert (reply["status"], reply["exit_code"]) == ("FAILED", -signal.SIGKILL)
    assert reply["message"] == "killed: JEXEC was stopped before the action ended (killed by signal SIGKILL)"
    assert "killed: JEXEC was stopped" in Path(reply["log_file"]).read_text()
    for pid in map(int, pids.read_text().split()):
        wait_for(lambda p=pid: not alive(p), 10, what=f"process {pid} gone after the forced stop")  # type: ignore[misc]
    assert "Traceback" not in daemon.log


def test_the_output_of_a_run_streams_to_journald_with_its_run_and_job(instance: InstancePaths, tmp_path: Path) -> None:
    port = free_port()
    instance.config_file.write_text(
        render_config({"DEFAULT": {"exa_password": "pw"}, "redctl": {"jexec_port": str(port)}})
    )
    journal = JournalCollector(tmp_path / "journal.socket")
    env = {"REDPSS_JOURNAL_SOCKET": str(journal.path)}
    daemon = DaemonProcess("redpss.jexec.service", instance, tmp_path / "jexec", env=env)
    try:
        daemon.wait_ready()
        script(instance, "talk.sh", "echo to stdout\necho to stderr >&2\n")
        with client(instance, port) as conn:
            assert conn.run_action("talk.sh", job_id=12, run_id="talk-1")["status"] == "OK"
        out = wait_for(lambda: journal.find("talk.sh: to stdout"), 10, what="the stdout line in the journal")
        err = wait_for(lambda: journal.find("talk.sh: to stderr"), 10, what="the stderr line in the journal")
    finally:
        daemon.stop()
        daemon.close()
        journal.close()
    assert (out["RUN_ID"], out["JOB_ID"], out["ACTION"], out["STREAM"]) == ("talk-1", "12", "talk.sh", "stdout")
    assert (err["STREAM"], err["SYSLOG_IDENTIFIER"], err["REDENV"]) == ("stderr", "redpss-jexec", "TST1")


def test_a_journald_that_takes_nothing_holds_up_no_run(instance: InstancePaths, tmp_path: Path) -> None:
    """A journal socket nobody reads (journald stuck): once its queue is full each send waits. The output of a
    chatty script must still be read at full speed (else the script blocks and runs into its timeout); the lines
    journald did not take are counted in JEXEC's log, and no output line is written to JEXEC's own log file."""
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(str(tmp_path / "stuck-journal.socket"))
    try:
        with running_jexec(
            instance, tmp_path, env={"REDPSS_JOURNAL_SOCKET": str(tmp_path / "stuck-journal.socket")}
        ) as (daemon, port):
            script(instance, "chatty.sh", MEGABYTE_OF_OUTPUT + MEGABYTE_OF_OUTPUT + MEGABYTE_OF_OUTPUT + "echo done\n")
            with client(instance, port) as conn:
                reply = conn.run_action("chatty.sh", timeout=60, run_id="flood")
            assert (reply["status"], reply["exit_code"]) == ("OK", 0) and reply["duration"] < 30
            assert reply["tail"].endswith("done")
            assert Path(reply["log_file"]).read_text().count("stdout: ") == 30_001
            daemon.stop()
            assert "output line(s) of actions were not sent to journald" in daemon.log
            assert "00000000000000000000001" not in daemon.log
    finally:
        stuck.close()


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def test_output_without_line_breaks_for_a_stuck_journald_costs_bounded_memory(
    instance: InstancePaths, tmp_path: Path
) -> None:
    """Output without line breaks is read in pieces of about 100 KiB, each an entry for journald: queued by count
    only, 300 MB of it waited in JEXEC's memory for a journald that took nothing (2 GB for 4 GB of output)."""
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stuck.bind(str(tmp_path / "stuck-journal.socket"))
    try:
        with running_jexec(
            instance,
            tmp_path,
            env={"REDPSS_JOURNAL_SOCKET": str(tmp_path / "stuck-journal.socket")},
            jexec_output_limit_mb="1",
        ) as (daemon, port):
            script(instance, "binary.sh", "head -c 300000000 /dev/zero | tr '\\000' x\necho\necho END\n")
            with client(instance, port) as conn:
                reply = conn.run_action("binary.sh", timeout=120, run_id="binary")
            assert (reply["status"], reply["tail"][-4:], len(reply["tail"])) == ("OK", "\nEND", 4000)
            assert peak_rss_mib(daemon.pid) < 150
            daemon.stop()
            assert "output line(s) of actions were not sent to journald" in daemon.log
    finally:
        stuck.close()


def test_a_script_that_exits_while_a_child_it_left_runs_on_ends_with_its_own_exit(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """The child holds the script's stdout: the run still ends when the script exits (OK, not TIMEOUT at the end of
    its timeout), and the child ends with the run's process group."""
    _, port = jexec
    pids = instance.tmp / "bg-pids"
    script(instance, "background.sh", f"sleep 300 &\necho $! > {pids}\necho done\nexit 0\n")
    with client(instance, port) as conn:
        reply = conn.run_action("background.sh", timeout=30)
    assert (reply["status"], reply["exit_code"], reply["tail"]) == ("OK", 0, "done")
    assert reply["duration"] < 10
    child = int(pids.read_text())
    wait_for(lambda: not alive(child), 10, what="the background child gone with the run")


def test_a_line_longer_than_the_stream_limit_reaches_the_log_whole(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = jexec
    script(instance, "long.sh", "head -c 200000 /dev/zero | tr '\\000' x\necho\necho END\n")
    with client(instance, port) as conn:
        reply = conn.run_action("long.sh", timeout=30)
    assert reply["status"] == "OK" and reply["tail"].endswith("END")
    written = Path(reply["log_file"]).read_text().splitlines()
    pieces = [line.removeprefix("stdout: ") for line in written if line.startswith("stdout: x")]
    assert sum(len(piece) for piece in pieces) == 200_000 and set("".join(pieces)) == {"x"}


def gone(pid: int) -> bool:
    """Ended and reaped: not even a zombie left (an orphan of a run is JEXEC's child, which must reap it)."""
    return not Path(f"/proc/{pid}").exists()


def test_processes_that_left_the_run_s_group_end_with_the_run(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """setsid() puts a process out of reach of the group kill; once its parent exits, init (before) or JEXEC (now)
    is its parent. Both kinds end with the run, at its timeout and when the script exits, and none stays a zombie."""
    _, port = jexec
    kept, orphan = instance.tmp / "kept", instance.tmp / "orphan"
    detach = "setsid sh -c 'echo $$ > {0}; exec sleep 300'"
    body = f"{detach.format(kept)} &\n({detach.format(orphan)} &)\n"
    wait = f"while [ ! -s {kept} ] || [ ! -s {orphan} ]; do sleep 0.01; done\necho started\n"
    for name, end, status in (("hang.sh", "sleep 300\n", "TIMEOUT"), ("leave.sh", "exit 0\n", "OK")):
        kept.unlink(missing_ok=True)
        orphan.unlink(missing_ok=True)
        script(instance, name, body + wait + end)
        with client(instance, port) as conn:
            reply = conn.run_action(name, timeout=2)
        assert (reply["status"], reply["tail"]) == (status, "started"), reply
        for pid in (int(kept.read_text()), int(orphan.read_text())):
            wait_for(lambda p=pid: gone(p), 10, what=f"{name}: process {pid} of the run gone")  # type: ignore[misc]


def test_an_orphan_that_no_longer_names_its_run_is_killed_once_no_action_runs(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """An orphan is found at its run's end by REDPSS_RUN_ID in its environment; `env -i` clears it, and a process
    that makes itself non-dumpable (ssh-agent) hides it from a JEXEC that is not root. Such a process outlived its
    run (one ssh-agent per run of `eval $(ssh-agent -s)`); it is killed once no action runs."""
    daemon, port = jexec
    orphan = instance.tmp / "orphan"
    script(instance, "cleared.sh", f"(setsid env -i sh -c 'echo $$ > {orphan}; exec sleep 300' &)\n")
    with client(instance, port) as conn:
        assert conn.run_action("cleared.sh", timeout=10)["status"] == "OK"
    wait_for(lambda: orphan.exists() and orphan.read_text().strip(), 10, what="the orphan's pid written")
    pid = int(orphan.read_text())
    wait_for(lambda: gone(pid), 10, what=f"the orphan {pid} that no longer named its run killed and reaped")
    assert "left behind by an action, it no longer named its run" in daemon.log


def test_an_orphan_that_ends_on_its_own_does_not_stay_a_zombie(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = jexec
    orphan, proceed = instance.tmp / "orphan", instance.tmp / "proceed"
    script(
        instance,
        "brief.sh",
        f"(setsid sh -c 'echo $$ > {orphan}' &)\nwhile [ ! -e {proceed} ]; do sleep 0.05; done\necho done\n",
    )
    with client(instance, port) as conn:
        conn.send({"op": "run", "action": "brief.sh", "timeout": 60, "run_id": "brief"})
        wait_for(lambda: orphan.exists() and orphan.read_text().strip(), 10, what="the orphan started")
        pid = int(orphan.read_text())
        wait_for(lambda: gone(pid), 15, what=f"the ended orphan {pid} reaped while its run goes on")
        proceed.touch()
        assert conn.next_reply()["status"] == "OK"


def test_a_requester_that_stops_answering_is_noticed_by_keepalive(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A database node that loses power closes nothing: JEXEC's side of the connection carries keepalive probes, so
    the run is killed within a minute rather than when TCP gives up (~15 min). `ss` shows what the kernel does."""
    _, port = jexec
    with client(instance, port):
        shown = subprocess.run(
            ["ss", "-tnoH", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert "timer:(keepalive," in shown, shown


def test_a_run_longer_than_the_silence_limit_is_kept_alive_by_jexec_s_signs_of_life(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = jexec
    script(instance, "slow.sh", "sleep 4\necho done\n")
    with client(instance, port) as conn:
        reply = conn.run_action("slow.sh", timeout=30, silence=2)
    assert (reply["status"], reply["tail"]) == ("OK", "done")
    assert reply["duration"] >= 4


def test_a_jexec_that_goes_silent_mid_run_fails_the_caller_after_the_silence_limit(
    jexec: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """JEXEC's server hangs or its network goes (here: JEXEC stopped with SIGSTOP, its connections left open). The
    database's statement waited for the action's whole timeout (an hour by default); it now fails once JEXEC's
    signs of life stop, saying that the action's outcome is not known."""
    daemon, port = jexec
    pids = instance.tmp / "pids"
    script(instance, "long.sh", f"echo $$ > {pids}\nsleep 300\n")

    def stop_jexec_once_running() -> None:
        wait_for(lambda: pids.exists() and pids.read_text().strip(), 10, what="the script running")
        os.kill(daemon.pid, signal.SIGSTOP)

    stopper = threading.Thread(target=stop_jexec_once_running)
    stopper.start()
    try:
        with client(instance, port) as conn:
            began = time.monotonic()
            with pytest.raises(PssError, match=r"sent nothing for 2 s while cmd/long.sh ran .* is not known"):
                conn.run_action("long.sh", timeout=600, silence=2)
        assert time.monotonic() - began < 20
    finally:
        stopper.join()
        os.kill(daemon.pid, signal.SIGCONT)
    pid = int(pids.read_text())
    wait_for(lambda: not alive(pid), 15, what="the run killed once JEXEC saw its requester gone")


def test_an_action_beyond_jexec_max_running_is_refused_naming_the_key(instance: InstancePaths, tmp_path: Path) -> None:
    """A query calling an action per row started one script per row at once, without bound. At most
    jexec_max_running run; one more is refused at once, saying so, and runs once a place is free."""
    proceed = instance.tmp / "proceed"
    script(instance, "wait.sh", f"while [ ! -e {proceed} ]; do sleep 0.05; done\necho done\n")
    with contextlib.ExitStack() as stack:
        _daemon, port = stack.enter_context(running_jexec(instance, tmp_path, jexec_max_running="2"))
        first, second, other = (stack.enter_context(client(instance, port)) for _ in range(3))
        first.send({"op": "run", "action": "wait.sh", "timeout": 60, "run_id": "one"})
        second.send({"op": "run", "action": "wait.sh", "timeout": 60, "run_id": "two"})
        wait_for(lambda: other.request("status")["running"] == ["one", "two"], 15, what="two actions running")
        with pytest.raises(PssError) as refused:
            other.run_action("wait.sh", timeout=60, run_id="three")
        assert "2 actions are running" in str(refused.value) and "jexec_max_running = 2" in str(refused.value)
        assert not (instance.log / "JEXEC" / "three.log").exists()  # never started
        proceed.touch()
        assert first.next_reply()["status"] == second.next_reply()["status"] == "OK"
        assert other.run_action("wait.sh", timeout=60, run_id="three")["status"] == "OK"
