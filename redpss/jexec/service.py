"""The JEXEC daemon: runs the scripts of application actions from $REDENV_HOME/cmd on request.

Requests (JSON lines, see redpss.core.wire and docs/jexec.md): `run` {action, args, timeout, run_id, job_id} answered
when the run ends with status (OK, FAILED, TIMEOUT), exit_code, duration, the tail of its output and its log file;
while it runs, JEXEC pushes `{"event": "running", ...}` every HEARTBEAT seconds, which is also how it notices a
requester that went away: then the run's process group is killed. `ping`, `status`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.entry import run_instance_daemon
from redpss.core.logging.repeated import RepeatedWarnings
from redpss.core.paths import InstancePaths
from redpss.core.secret import accepted_secrets
from redpss.core.services import service_spec
from redpss.core.wire import Code, Connection, JsonLineServer, Limits, Message, RequestError, unknown_op
from redpss.core.wire.tls import TlsFiles, server_context
from redpss.jexec.journal import output_journal
from redpss.jexec.processes import become_subreaper, kill_strays
from redpss.jexec.resolve import ActionRefused
from redpss.jexec.runner import ActionRequest, ActionRun, RunOutcome, reap_ended_orphans

log = logging.getLogger("redpss.jexec")

HEARTBEAT = 1.0  # seconds between `running` events (and checks that the requester is still there)
OPS = ("run", "ping", "status")
INTERRUPTED_REPLY_WAIT = 5.0  # seconds a forced stop waits for the killed runs' replies (within the 10 s abort)


class RequesterGone(Exception):
    """The connection that asked for a run closed while it ran."""


class JexecService(Service):
    name = "jexec"
    tick_interval = 5.0
    drain_timeout = service_spec("jexec").drain_timeout  # running actions may finish; longer ones are killed

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        self.server: JsonLineServer | None = None
        self.accepting = True
        self.running: dict[str, ActionRun] = {}
        self.finished_runs = 0
        self.runs_ended_since_strays_killed = False  # then a tick with no action running kills what is left
        self.idle = asyncio.Event()
        self.journal = output_journal(paths.redenv)
        self.refusals = RepeatedWarnings(log)  # a refusal each, for the same client and reason: once a minute

    async def start(self) -> None:
        self.idle.set()
        become_subreaper()  # the orphans of a run stay below JEXEC, where the run's end finds and kills them
        self.server = JsonLineServer(
            self.handle,
            accepted_secrets(self.paths, "JEXEC"),
            "JEXEC",
            limits=Limits(max_message=1024 * 1024),
        )
        redctl = self.config.redctl
        context = server_context(TlsFiles.of(self.paths, "JEXEC")) if redctl.jexec_tls else None
        await self.listen(self.server, redctl.jexec_host, redctl.jexec_port, "[redctl] jexec_host/jexec_port", context)

    async def handle(self, request: Message, connection: Connection) -> Message:
        op = request["op"]
        if op == "run":
            return await self._run(request, connection)
        if op == "ping":
            return self.ping_reply()
        if op == "status":
            return {"ok": True, "running": sorted(self.running), "finished": self.finished_runs}
        return unknown_op(op, OPS)

    async def _run(self, message: Message, connection: Connection) -> Message:
        if not self.accepting:
            raise RequestError("JEXEC is stopping; the action was not started", Code.REFUSED)
        try:
            request = ActionRequest.from_message(message, uuid.uuid4().hex)
            if request.run_id in self.running:
                raise ActionRefused(f"run {request.run_id} is running already")
            most = self.config.redctl.jexec_max_running
            if len(self.running) >= most:  # no await from here to its entry in self.running: the count holds
                raise ActionRefused(
                    f"cmd/{request.action} was not started: {len(self.running)} actions are running, the most "
                    f"JEXEC runs at once (jexec_max_running = {most} in red_params.conf); run it again later, or "
                    "raise the limit"
                )
            limit = self.config.redctl.jexec_output_limit_mb * 1024 * 1024
            run = ActionRun(self.paths, request, limit, self.journal)
            script = run.check()
        except ActionRefused as exc:
            # one per request: a per-row query beyond the limit or naming a missing script logged a line per row
            self.refusals.warn(
                f"{connection.client}: {exc}", f"refused to run for {connection.client} at {connection.peer}: {exc}"
            )
            raise RequestError(str(exc), Code.REFUSED) from None
        log.info(
            "run %s: cmd/%s with %d argument(s), timeout %g s, for %s",
            request.run_id,
            request.action,
            len(request.args),
            request.timeout,
            connection.client,
            extra={"RUN_ID": request.run_id, "ACTION": request.action, "JOB_ID": request.job_id or None},
        )
        self.running[request.run_id] = run
        self.idle.clear()
        try:
            outcome = await self._watched(run, script, connection)
        except ActionRefused as exc:  # the checked script could not be started
            log.warning("run %s: %s", request.run_id, exc, extra={"RUN_ID": request.run_id})
            raise RequestError(str(exc), Code.REFUSED) from None
        except RequesterGone:
            log.warning(
                "run %s: the requester %s went away; the processes of cmd/%s were killed",
                request.run_id,
                connection.client,
                request.action,
                extra={"RUN_ID": request.run_id},
            )
            raise RequestError(f"run {request.run_id} ended: its requester went away", Code.REFUSED) from None
        finally:
            self.running.pop(request.run_id, None)
            self.finished_runs += 1
            self.runs_ended_since_strays_killed = True
            if not self.running:
                self.idle.set()
        log.log(
            logging.INFO if outcome.status == "OK" else logging.WARNING,
            "run %s: cmd/%s %s after %.1f s",
            request.run_id,
            request.action,
            outcome.message,
            outcome.duration,
            extra={"RUN_ID": request.run_id, "ACTION": request.action},
        )
        return outcome.reply(request.run_id)

    async def _watched(self, run: ActionRun, script: int, connection: Connection) -> RunOutcome:
        """The run's outcome; cancelled (its group killed) as soon as the requesting connection is gone."""
        task = asyncio.create_task(run.run(script))
        started = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT)
                if done:
                    return task.result()
                if connection.writer.transport.is_closing():
                    raise RequesterGone
                event = {"event": "running", "run_id": run.request.run_id, "seconds": int(time.monotonic() - started)}
                try:
                    await connection.send(event)
                except (ConnectionError, OSError):
                    raise RequesterGone from None
        except (RequesterGone, asyncio.CancelledError):  # the requester left, or JEXEC is stopped by force
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise

    async def tick(self, now: float) -> None:
        self.refusals.flush()
        reap_ended_orphans()  # the orphans of a running action that ended on their own
        if self.runs_ended_since_strays_killed and not self.running and not ActionRun.starting:
            self.runs_ended_since_strays_killed = False
            kill_strays(ActionRun.scripts)  # no action runs: a child left is an orphan its run did not find

    def status(self) -> str:
        return f"{len(self.running)} action(s) running, {self.finished_runs} finished"

    async def drain(self) -> None:
        self.accepting = False
        if self.running:
            log.info("waiting for %d running action(s) to finish", len(self.running))
        await self.idle.wait()
        if self.server is not None:
            await self.server.close()
        await asyncio.to_thread(self.journal.close)

    async def abort(self) -> None:
        self.accepting = False
        if self.running:  # killed here, so each requester gets its run's outcome before the connections close
            log.warning("stopped by force: killing %d running action(s)", len(self.running))
            for run in self.running.values():
                run.interrupt("killed: JEXEC was stopped before the action ended")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INTERRUPTED_REPLY_WAIT):
                    await self.idle.wait()
        if self.server is not None:
            await self.server.close()  # cancels the runs still going: their process groups are killed
        await asyncio.to_thread(self.journal.close, 1.0)


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return JexecService(config, paths)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("jexec", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
