"""Running one action: argv without a shell, a clean environment, its own process group, a timeout, its output kept.

The script runs in a new session (its own process group). When it ends, times out, or its run is cancelled (the
requesting connection dropped, JEXEC stopping), all its processes are killed, the group and those that left it
(redpss.jexec.processes), so children it left behind do not outlive the run. stdout and stderr are read line by
line as they come: each line goes to the run's file (log/JEXEC/<run_id>.log, while it can be written and up to its
size limit: redpss.jexec.runfile), to journald (RUN_ID, JOB_ID, ACTION, STREAM fields), and into the tail returned
with the exit code.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import re
import shlex
import signal
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redpss.core.logging.journal_queue import JournalQueue
from redpss.core.paths import InstancePaths
from redpss.jexec.journal import OutputLine
from redpss.jexec.processes import kill_run, reap_orphans, run_alive, signal_run
from redpss.jexec.resolve import ActionRefused, close_quietly, open_action
from redpss.jexec.runfile import RunFile

log = logging.getLogger("redpss.jexec")

TAIL_LINES = 50
TAIL_CHARS = 4000
MAX_ARGS = 256
MAX_ARG_CHARS = 64 * 1024
MAX_TIMEOUT = 7 * 86400.0
TERM_GRACE = 2.0  # seconds between SIGTERM and SIGKILL to the group at a timeout
# seconds to read what the ended run left in its pipes; only a process that escaped the run's kill can hold them
# open longer, and the reply must stay within SCHED's wait (the run's timeout + 5 s) after TERM_GRACE
OUTPUT_DRAIN = 1.0
EXIT_SEEN = 1.0  # seconds after the kill for the script's exit to be seen; longer: it outlived SIGKILL
EXIT_POLL = 0.02  # seconds between looks at whether the script has exited (ActionRun._exited)
GRACE_POLL = 0.05  # seconds between looks, within TERM_GRACE, at whether any process of the run is left
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PATH = "/usr/local/bin:/usr/bin:/bin"

OK, FAILED, TIMEOUT = "OK", "FAILED", "TIMEOUT"


@dataclass(frozen=True)
class ActionRequest:
    action: str
    args: tuple[str, ...]
    timeout: float
    run_id: str
    job_id: str = ""

    @classmethod
    def from_message(cls, message: dict[str, Any], default_run_id: str) -> ActionRequest:
        """The request's fields checked; ActionRefused naming the field and what is allowed."""
        args = message.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) and "\0" not in a for a in args):
            raise ActionRefused('"args" must be a list of strings (argv, no shell; NUL characters are not allowed)')
        if not all(_encodable(a) for a in args):
            raise ActionRefused('"args" must be valid Unicode text (a lone UTF-16 surrogate cannot be passed on)')
        if len(args) > MAX_ARGS or sum(map(len, args)) > MAX_ARG_CHARS:
            raise ActionRefused(f'"args" is limited to {MAX_ARGS} arguments and {MAX_ARG_CHARS} characters')
        timeout = message.get("timeout", 3600)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
            raise ActionRefused(f'"timeout" must be seconds, more than 0 and at most {MAX_TIMEOUT:.0f}')
        run_id = message.get("run_id", default_run_id)
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            raise ActionRefused('"run_id" must be 1 to 64 letters, digits, "_", "." or "-"')
        job_id = message.get("job_id", "")
        if not isinstance(job_id, str | int) or isinstance(job_id, bool):
            raise ActionRefused('"job_id" must be a number or a string')
        action = message.get("action")
        if isinstance(action, str) and not _encodable(action):
            raise ActionRefused('"action" must be valid Unicode text (a lone UTF-16 surrogate names no file)')
        return cls(str(action) if isinstance(action, str) else "", tuple(args), float(timeout), run_id, str(job_id))


_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shell_word(text: str) -> str:
    """`text` as bash would take it back: quoted where needed, and in $'...' with escapes when it holds a character
    that does not print (a line break in an argument wrote a line of its own, e.g. a false end line, into the run
    file an operator reads)."""
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join(_ESCAPES.get(c) or (c if c.isprintable() else _escape(ord(c))) for c in text) + "'"


def _escape(code: int) -> str:
    """bash's escape for a character in $'...' (read as UTF-8, e.g. LANG=C.UTF-8): \\xHH is one byte, so only below
    0x80; \\u takes at most four hex digits, \\U eight."""
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _encodable(text: str) -> bool:
    """Whether `text` has a UTF-8 form (JSON can carry lone surrogates, which no file name or argv can hold)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class RunOutcome:
    status: str
    exit_code: int | None
    duration: float
    tail: str
    log_file: str
    lines: int = 0
    killed_children: bool = False
    message: str = field(default="")

    def reply(self, run_id: str) -> dict[str, Any]:
        return {
            "ok": True,
            "run_id": run_id,
            "status": self.status,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 3),
            "tail": self.tail,
            "log_file": self.log_file,
            "message": self.message,
        }


def environment(paths: InstancePaths, request: ActionRequest) -> dict[str, str]:
    """What the script sees: the instance, the run, a plain PATH and locale; nothing of JEXEC's own environment."""
    return {
        **paths.environment(),
        "PATH": PATH,
        "LANG": "C.UTF-8",
        "HOME": str(paths.home),
        "REDPSS_RUN_ID": request.run_id,
        "REDPSS_JOB_ID": request.job_id,
        "REDPSS_ACTION": request.action,
        # a `#!` script runs through the checked descriptor, so its $0 is /proc/self/fd/N: this names the file
        "REDPSS_SCRIPT": str(paths.cmd / request.action),
    }


class ActionRun:
    """One run of one action; `run()` returns its outcome, and kills the run's processes however it ends."""

    scripts: ClassVar[set[int]] = set()  # pids of the scripts asyncio waits for: never reaped by reap_orphans
    starting: ClassVar[int] = 0  # scripts being started, whose pids asyncio knows before `scripts` does

    def __init__(
        self, paths: InstancePaths, request: ActionRequest, output_limit: int, journal: JournalQueue[OutputLine]
    ) -> None:
        self.paths = paths
        self.request = request
        self.output_limit = output_limit  # bytes of output kept in the run's file
        self.journal = journal
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.lines = 0
        self.log_path = paths.log / "JEXEC" / f"{request.run_id}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.interrupted = ""  # why JEXEC ended the run itself (a forced stop), "" otherwise
        self.unkillable = False  # a process of the run outlived SIGKILL: the run ends without waiting for it
        self.survivors: set[int] = set()  # those processes
        self.group_ended = False  # _end_group ran to its end: no process of the run is left
        self.ended = False  # the run's end line is written (its outcome, or why it was cut off)

    def interrupt(self, why: str) -> None:
        """Kill the run's processes now (JEXEC is stopped by force); run() then returns FAILED saying `why`, so the
        requester learns that the script ran and was killed, not that it was never run."""
        self.interrupted = why
        if self.process is not None and self.process.returncode is None:
            signal_run(self.process.pid, self.request.run_id, signal.SIGKILL)

    def check(self) -> int:
        """The checked script's descriptor (ActionRefused when it may not run); the caller passes it to run()."""
        return open_action(self.paths.cmd, self.request.action)

    async def run(self, script: int) -> RunOutcome:
        """Run the checked script (its descriptor, closed here whatever happens) to its outcome."""
        request = self.request
        out = RunFile(self.log_path, request.run_id, self.output_limit)
        started = time.monotonic()
        status = FAILED
        readers: asyncio.Future[Any] | None = None
        try:
            out.write(
                f"# {time.strftime('%Y-%m-%d %H:%M:%S')} run {request.run_id}: "
                f"{' '.join(map(shell_word, ['cmd/' + request.action, *request.args]))}\n"
            )
            ActionRun.starting += 1
            try:
                self.process = await asyncio.create_subprocess_exec(
                    request.action.rsplit("/", 1)[-1],
                    *request.args,
                    executable=f"/proc/self/fd/{script}",
                    pass_fds=(script,),
                    env=environment(self.paths, request),
                    cwd=self.paths.cmd,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as exc:
                why = f"action {request.action!r} could not be started: {start_failure(exc, script)}"
                out.write(f"# {why}\n")
                raise ActionRefused(why) from None
            finally:
                ActionRun.starting -= 1
                close_quietly(script)
                script = -1
            ActionRun.scripts.add(self.process.pid)
            readers = asyncio.gather(
                self._pump(self.process.stdout, "stdout", out), self._pump(self.process.stderr, "stderr", out)
            )
            try:
                async with asyncio.timeout(request.timeout):
                    await self._exited()
                status = OK if self.process.returncode == 0 else FAILED
            except TimeoutError:
                status = TIMEOUT
                await self._end_group(grace=TERM_GRACE)
            await self._end_group(grace=0.0)  # children the script left behind end with it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTPUT_DRAIN):
                    await readers
            return self._outcome(status, time.monotonic() - started, out)
        finally:
            # cancelled (the requester is gone, a stop): also when the script had exited and its children had not
            # been ended yet (the cancel landed in the poll that notices the exit), or a `cmd &` outlived the run
            exited = self.process is not None and self.process.returncode is not None  # before any kill here
            if self.process is not None and not self.group_ended:
                await asyncio.shield(self._end_group(grace=0.0))
            if self.process is not None and not self.ended:  # the file says so too: not a JEXEC that crashed
                out.write(self._cut_off_line(time.monotonic() - started, exited))
            if self.process is not None:
                ActionRun.scripts.discard(self.process.pid)
            if readers is not None:
                readers.cancel()
            if script >= 0:  # not started: the descriptor is still ours
                close_quietly(script)
            out.close()

    def _cut_off_line(self, took: float, exited: bool) -> str:
        """The run file's end line for a run whose requester went away (or a stop cut it off) before its outcome;
        `exited`: the script had ended by then (its exit is told, then why no outcome followed)."""
        assert self.process is not None
        why = self.interrupted or "the requester went away"
        code = self.process.returncode
        if exited and code is not None:
            return f"# {_message(OK if code == 0 else FAILED, code, self.request.timeout)} after {took:.3f} s; {why}\n"
        return f"# killed after {took:.3f} s: {why}\n"

    def _outcome(self, status: str, duration: float, out: RunFile) -> RunOutcome:
        """The ended run's outcome, its end line written to the run's file."""
        assert self.process is not None
        code = self.process.returncode
        message = _message(status, code, self.request.timeout)
        others = sorted(self.survivors - {self.process.pid})
        if code is None:  # SIGKILL did not end it: it waits in the kernel (a hung mount), and so would we
            status, message = FAILED, f"pid {self.process.pid} could not be killed (it waits in the kernel)"
        elif self.interrupted:
            status, message = FAILED, f"{self.interrupted} ({message})"
        if others:  # processes the script left (or an earlier try of this run id): the script's exit still decides
            message += f"; pid {', '.join(map(str, others))} of the run could not be killed (it waits in the kernel)"
        out.write(f"# {message} after {duration:.3f} s\n")
        self.ended = True
        if out.closed_because:
            message += f"; {self.log_path.name} is incomplete: {out.closed_because}"
        return RunOutcome(status, code, duration, self._tail_text(), str(self.log_path), self.lines, message=message)

    async def _end_group(self, grace: float) -> None:
        """End every process of the run: SIGTERM first when `grace` > 0 (the script may clean up within it), then
        SIGKILL, and reap those that JEXEC inherited as orphans."""
        assert self.process is not None
        if self.unkillable:
            return  # tried once: the script outlived SIGKILL, and trying again would hold the reply as long again
        pid, run_id = self.process.pid, self.request.run_id
        if grace and self.process.returncode is None:
            signal_run(pid, run_id, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):  # the script and its children may clean up (a wrapper's java)
                    await self._exited()
                    while run_alive(pid, run_id):
                        await asyncio.sleep(GRACE_POLL)
        self.survivors = await kill_run(pid, run_id)  # up to KILL_WAIT seconds until none is alive
        try:  # the script's exit is seen within a poll or two once it is dead
            async with asyncio.timeout(EXIT_SEEN):
                await self._exited()
        except TimeoutError:
            self.survivors.add(pid)
        self.unkillable = bool(self.survivors)  # in uninterruptible sleep (a hung mount): not waited for again
        reap_ended_orphans()
        self.group_ended = True

    async def _exited(self) -> None:
        """Return once the script has exited. Process.wait() of Python 3.11 may return only once the script's pipes
        are closed too, which a child it left running in the background (`cmd &`) keeps open: the run then ended
        at its timeout, TIMEOUT for a script that exited 0 (seen in some runs). The child watcher sets returncode
        at the exit itself."""
        assert self.process is not None
        while self.process.returncode is None:
            await asyncio.sleep(EXIT_POLL)

    async def _pump(self, stream: asyncio.StreamReader | None, name: str, out: RunFile) -> None:
        if stream is None:
            return
        request = self.request
        while True:
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:  # a line longer than the stream's limit: taken in pieces
                raw = await stream.read(exc.consumed or 65536)  # (readline would drop what it had buffered)
            except asyncio.IncompleteReadError as exc:  # the last line, without a line break
                raw = exc.partial
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines += 1
            cut = text[-TAIL_CHARS:]  # the tail shows at most TAIL_CHARS: a line of a MiB is not kept whole for it
            self.tail.append(cut if name == "stdout" else f"[stderr] {cut}")
            out.write(f"{name}: {text}\n")
            self.journal.submit((OutputLine(request.run_id, request.job_id, request.action, name, text),))

    def _tail_text(self) -> str:
        text = "\n".join(self.tail)
        return text[-TAIL_CHARS:]


def start_failure(exc: OSError, script: int) -> str:
    """Why exec failed, in words that lead to the fix: the file itself was checked and is open, so ENOENT means the
    interpreter its `#!` line names, and ENOEXEC a file that is neither a program nor such a script."""
    first = _first_line(script)
    if exc.errno == errno.ENOENT and first.startswith(b"#!"):
        line = first.decode("utf-8", "replace")
        if line.endswith("\r"):
            return f"its first line {line[:-1]!r} ends with a carriage return: save the script with Unix line ends"
        return f"the interpreter its first line names ({line!r}) does not exist"
    if exc.errno == errno.ENOEXEC:
        return "it is neither a program nor a script whose first line names its interpreter (#!/bin/sh ...)"
    return exc.strerror or str(exc)


def _first_line(script: int) -> bytes:
    """Up to 256 bytes of the script's first line, read through the checked descriptor; b"" when unreadable."""
    try:
        fd = os.open(f"/proc/self/fd/{script}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 256).split(b"\n", 1)[0]
    except OSError:
        return b""
    finally:
        os.close(fd)


def reap_ended_orphans() -> int:
    """Reap the orphans of runs that ended (JEXEC is their parent, see redpss.jexec.processes); how many."""
    if ActionRun.starting:
        return 0  # a script just started may have ended already, and asyncio's watcher must get its status
    return reap_orphans(ActionRun.scripts)


def _message(status: str, code: int | None, timeout: float) -> str:
    if status == TIMEOUT:
        return f"timed out after {timeout:g} s; its processes were killed"
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"
