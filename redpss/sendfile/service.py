"""The SENDFILE daemon: accepts export requests on sendfile_host:sendfile_port and carries them out one at a time.

Requests (JSON lines, redpss.core.wire; docs/sendfile.md): `sendfile` {source, where?, format, to | sftp, file_name?,
subject?, body?, schema?, key?, wait?} is checked whole, spooled (file and folder fsync'd) and acknowledged durably;
with `wait` the acknowledgement comes once the file is delivered (a SENDFILE job waits so its log row carries the
outcome), or the refusal says why it failed. A request sent again under the `key` of one held or ended within a day
gets that one's outcome (outcomes.py). `ping`, `status`. Exports run one at a time in a worker thread, so
memory and the database's load stay bounded whatever arrives. Every outcome is a log line, and a LOG_MESSAGES row of
the request's `schema` when it names one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.db import DatabaseError, DbSession, DbSettings
from redpss.core.db.errors import callback_cause, map_exa_error
from redpss.core.db.rowwriter import LOG_MESSAGE_IDS, RowWriter
from redpss.core.db.sqltext import timestamp
from redpss.core.durable import NO_SPACE
from redpss.core.entry import run_instance_daemon
from redpss.core.paths import InstancePaths
from redpss.core.secret import accepted_secrets
from redpss.core.services import service_spec
from redpss.core.wire import (
    PAYLOAD_VERSION,
    PROTOCOL_VERSION,
    Code,
    Connection,
    JsonLineServer,
    Limits,
    Message,
    RequestError,
    durable,
    unknown_op,
)
from redpss.sendfile.client import RUN_KEY_PREFIX
from redpss.sendfile.outcomes import Outcome, OutcomeStore
from redpss.sendfile.queuestat import spool_folder
from redpss.sendfile.request import FileRequest, RequestInvalid, parse_request
from redpss.sendfile.spool import RequestSpool
from redpss.sendfile.targets import TargetError, load_settings, target
from redpss.sendfile.work import Delivered, SendFailed, TryAgain, carry_out, sweep_work_folders

log = logging.getLogger("redpss.sendfile")

MAX_REQUEST_BYTES = 256 * 1024
FIRST_RETRY = 5.0  # seconds before a request that met an unreachable partner is tried again, doubling ...
LONGEST_RETRY = 600.0  # ... up to this
MAX_TRIES = 30  # then it fails for good (about four hours of tries)
OPS = ("sendfile", "ping", "status")


@dataclass
class Job:
    request_id: str
    request: FileRequest
    waiters: list[asyncio.Future[Delivered]] = field(default_factory=list)
    tries: int = 0


class SendfileService(Service):
    name = "sendfile"
    tick_interval = 5.0
    drain_timeout = service_spec("sendfile").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        self.spool = RequestSpool(spool_folder(paths))
        self.outcomes = OutcomeStore(spool_folder(paths) / "outcomes")
        self.keyed: dict[str, Job] = {}  # the requests held (queued or in progress) by their caller's key
        # one request of a key at a time from its look to its spooling: (lock, requests using it)
        self.key_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self.session = DbSession(DbSettings.from_config(config, client_name="RED-PSS SENDFILE"))
        self.rows = RowWriter(
            "SENDFILE outcomes", paths.tmp / "sendfile-messages.spool", self.session_for_rows(), row_ids=LOG_MESSAGE_IDS
        )
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.server: JsonLineServer | None = None
        self.current: Job | None = None
        self.idle = asyncio.Event()  # set while no request is being carried out
        self.idle.set()
        self.closing = False  # draining: no new request, queued ones stay spooled for the next start
        self.done = self.failed = 0
        self.last_error = ""

    def session_for_rows(self) -> DbSession:
        """The row writer's own session: it writes from its thread while the worker exports on the other."""
        return DbSession(DbSettings.from_config(self.config, client_name="RED-PSS SENDFILE log"))

    async def start(self) -> None:
        await asyncio.to_thread(self.outcomes.prune, time.time())
        kept: set[str] = set()
        for request_id, request in await asyncio.to_thread(self.spool.load):
            ended = await asyncio.to_thread(self.outcomes.get, request.key, time.time()) if request.key else None
            if ended is not None:
                log.info("request %s had ended just before the last stop; not run again", request_id)
                await asyncio.to_thread(self.spool.remove, request_id)
                continue
            log.info("request %s from before the start runs again: %s", request_id, request.destination())
            kept.add(request_id)
            self._enqueue(Job(request_id, request))
        for request_id in await asyncio.to_thread(sweep_work_folders, self.paths, kept):
            log.info("removed the export request %s left in %s", request_id, self.paths.sendfile_work)
        self.server = JsonLineServer(
            self.handle,
            accepted_secrets(self.paths, "SENDFILE"),
            "SENDFILE",
            limits=Limits(max_message=MAX_REQUEST_BYTES),
            durable_ops=("sendfile",),
            versions=(PROTOCOL_VERSION, PAYLOAD_VERSION),
        )
        self.rows.start()
        redctl = self.config.redctl
        await self.listen(self.server, redctl.sendfile_host, redctl.sendfile_port, "[redctl] sendfile_host/port")
        self.spawn(self._work_loop(), "worker")

    async def handle(self, request: Message, connection: Connection) -> Message:
        op = request["op"]
        if op == "sendfile":
            return await self._accept(request, connection)
        if op == "ping":
            return self.ping_reply()
        if op == "status":
            return {"ok": True, **self.figures()}
        return unknown_op(op, OPS)

    async def _accept(self, fields: Message, connection: Connection) -> Message:
        if self.closing:
            raise RequestError("SENDFILE is stopping; send the request again once it is back", Code.UNAVAILABLE)
        try:
            request = parse_request(fields)
            if request.sftp:
                target(await asyncio.to_thread(load_settings, self.paths), request.sftp)
        except (RequestInvalid, TargetError) as exc:
            log.warning("refused a request from %s at %s: %s", connection.client, connection.peer, exc)
            raise RequestError(f"SENDFILE refused the request: {exc}") from None
        if request.key.startswith(RUN_KEY_PREFIX) and not connection.own_client:
            # a database session that named a run's key first would take that run's delivery: its request would get
            # the answer of the run's and the run's own file would never be sent
            raise RequestError(
                f'SENDFILE refused the request: keys starting "{RUN_KEY_PREFIX}" belong to SCHED\'s SENDFILE runs; '
                "choose another key"
            )
        wait = fields.get("wait") is True
        if not request.key:
            return await self._answer(await self._spool_new(request, connection), wait)
        async with self._one_at_a_time(request.key):  # two requests of one key at once: the second finds the first
            answer = await self._same_key(request.key, connection)
            if answer is None:
                job = await self._spool_new(request, connection)
            elif isinstance(answer, Job):
                job = answer
            else:
                return answer
        return await self._answer(job, wait)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, key: str) -> AsyncIterator[None]:
        lock, users = self.key_locks.get(key, (asyncio.Lock(), 0))
        self.key_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self.key_locks[key]
            if users == 1:
                del self.key_locks[key]
            else:
                self.key_locks[key] = (lock, users - 1)

    async def _spool_new(self, request: FileRequest, connection: Connection) -> Job:
        """Spool `request` durably and queue it (RequestError when it cannot be kept)."""
        request_id = self.spool.new_id()
        try:
            await asyncio.to_thread(self.spool.put, request_id, request)
        except OSError as exc:
            log.error("cannot write the request spool %s: %s", self.spool.folder, exc)
            raise RequestError(
                f"SENDFILE cannot keep the request ({exc.strerror or exc}); send it again", Code.REFUSED
            ) from None
        job = Job(request_id, request)
        log.info(
            "request %s from %s: %s as %s, %s",
            request_id,
            connection.client,
            request.query()[:300],
            request.format,
            request.destination(),
            extra=_schema(request),
        )
        self._enqueue(job)
        return job

    def _enqueue(self, job: Job) -> None:
        if job.request.key:
            self.keyed[job.request.key] = job
        self.queue.put_nowait(job)

    async def _same_key(self, key: str, connection: Connection) -> Job | Message | None:
        """For a request sent again under the key of one held: that job; of one delivered: its answer; None for a
        key not seen (or one whose request failed: sent again, it is carried out again, as a retry means)."""
        held = self.keyed.get(key)
        if held is not None:
            log.info("request with key %s from %s is request %s, held already: not taken twice", key,
                     connection.client, held.request_id)  # fmt: skip
            return held
        ended = await asyncio.to_thread(self.outcomes.get, key, time.time())
        if ended is None:
            return None
        log.info("request with key %s from %s is request %s, delivered before: its outcome again", key,
                 connection.client, ended.request_id)  # fmt: skip
        return durable(**ended.reply())

    async def _answer(self, job: Job, wait: bool) -> Message:
        """The durable acknowledgement of `job`: at once, or with `wait` once it is delivered (or its failure)."""
        if not wait:
            return durable(id=job.request_id)
        waiter: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        job.waiters.append(waiter)
        try:
            delivered = await waiter
        except SendFailed as exc:
            raise RequestError(f"SENDFILE request {job.request_id} failed: {exc}", Code.REFUSED) from None
        return durable(**_outcome(job, delivered).reply())

    async def _work_loop(self) -> None:
        while True:
            job = await self.queue.get()
            if self.closing:
                return
            self.current = job
            self.idle.clear()
            try:
                outcome: Delivered | SendFailed | None = await asyncio.to_thread(self._run, job)
            finally:
                self.current = None
                self.idle.set()
            if outcome is None:  # kept for a later try; its waiters keep waiting
                delay = min(LONGEST_RETRY, FIRST_RETRY * 2 ** min(job.tries - 1, 20))
                asyncio.get_running_loop().call_later(delay, self.queue.put_nowait, job)
                continue
            if self.keyed.get(job.request.key) is job:
                del self.keyed[job.request.key]
            for waiter in job.waiters:
                if not waiter.done():
                    if isinstance(outcome, SendFailed):
                        waiter.set_exception(outcome)
                    else:
                        waiter.set_result(outcome)

    def _run(self, job: Job) -> Delivered | SendFailed | None:
        """Carry out one request and report it; the request leaves the spool once it has an outcome (None: not yet,
        a partner was out of reach and it is tried again later)."""
        request = job.request
        job.tries += 1
        try:
            try:
                connection = self._connection()
            except DatabaseError as exc:
                raise TryAgain(f"the database is out of reach: {exc}") from None
            try:
                delivered = carry_out(self.config, self.paths, connection, job.request_id, request)
            except (SendFailed, TryAgain, DatabaseError):
                raise
            except Exception as exc:  # pyexasol's export errors carry the database's reason
                if full := _out_of_space(exc):  # data/work full: space may come back, the request is not at fault
                    raise TryAgain(f"no space to write the export: {full}") from None
                cause = callback_cause(exc)
                text = str(map_exa_error(cause, dsn=self.session.settings.dsn, user=self.session.settings.user))
                if not self.session.connected:  # the session was lost under the export: a later try may do
                    self.session.close()
                    raise TryAgain(f"the database went away during the export: {text}") from None
                raise SendFailed(f"the export failed: {text}") from None
        except TryAgain as exc:
            if job.tries >= MAX_TRIES:
                return self._failed(job, f"{exc} (gave up after {job.tries} tries)")
            self.last_error = str(exc)
            log.warning(
                "request %s not sent (try %d), tried again later: %s",
                job.request_id,
                job.tries,
                exc,
                extra=_schema(request),
            )
            return None
        except SendFailed as exc:
            return self._failed(job, str(exc))
        except DatabaseError as exc:
            return self._failed(job, f"the database: {exc}")
        self._keep_outcome(job, _outcome(job, delivered))
        self.spool.remove(job.request_id)
        self.done += 1
        text = f"SENDFILE request {job.request_id}: sent {delivered.message(request)}"
        log.info("%s", text, extra=_schema(request))
        self._report(request, "INFO", text)
        return delivered

    def _connection(self) -> Any:
        return self.session.connection()

    def _failed(self, job: Job, reason: str) -> SendFailed:
        self.spool.remove(job.request_id)
        self.failed += 1
        self.last_error = reason
        text = (
            f"SENDFILE request {job.request_id} ({job.request.schema_name}.{job.request.object_name} as "
            f"{job.request.format}, {job.request.destination()}) failed: {reason}"
        )
        log.error("%s", text, extra=_schema(job.request))
        self._report(job.request, "ERROR", text)
        return SendFailed(reason)

    def _keep_outcome(self, job: Job, outcome: Outcome) -> None:
        """Keep a keyed request's outcome before it leaves the spool (outcomes.py)."""
        if not job.request.key:
            return
        try:
            self.outcomes.put(job.request.key, outcome)
        except OSError as exc:
            log.error("cannot keep the outcome of request %s (key %s) in %s: %s; the same request sent again is "
                      "carried out again", job.request_id, job.request.key, self.outcomes.folder, exc)  # fmt: skip

    def _report(self, request: FileRequest, level: str, text: str) -> None:
        if request.schema:
            row = {"LOG_TIME": timestamp(time.time()), "LOG_LEVEL": level, "SOURCE": "SENDFILE", "MESSAGE": text[:2000]}
            self.rows.append(f"{request.schema}.LOG_MESSAGES", [row])

    def figures(self) -> dict[str, Any]:
        return {
            "queued": self.queue.qsize(),
            "running": self.current.request_id if self.current else None,
            "done": self.done,
            "failed": self.failed,
            "last_error": self.last_error,
        }

    def status(self) -> str:
        running = f", sending {self.current.request_id}" if self.current else ""
        return f"{self.done} sent, {self.failed} failed, {self.queue.qsize()} queued{running}"

    def healthy(self) -> bool:
        return self.server is not None

    async def drain(self) -> None:
        """Stop accepting; the request in progress finishes and its caller gets the answer before the connections
        close (cut off, it failed the caller's run, whose retry sent the file again); queued ones stay spooled for
        the next start."""
        self.closing = True
        await self.idle.wait()
        if self.server is not None:
            await self.server.close()
        await asyncio.to_thread(self.rows.stop, 10.0)

    async def abort(self) -> None:
        """Queued and interrupted requests stay spooled and run again at the next start."""
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.close()
        await asyncio.to_thread(self.rows.stop, 3.0)


def _outcome(job: Job, delivered: Delivered) -> Outcome:
    return Outcome(job.request_id, "", delivered.rows, delivered.bytes, delivered.where, delivered.message(job.request))


def _schema(request: FileRequest) -> dict[str, str] | None:
    return {"SCHEMA": request.schema} if request.schema else None


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return SendfileService(config, paths)


def _out_of_space(exc: BaseException) -> str:
    """The text of a full-disk error (ENOSPC, EDQUOT) in `exc`'s chain of causes; "" when there is none."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 20:  # a chain may loop back on itself
        if isinstance(seen, OSError) and seen.errno in NO_SPACE:
            return str(seen)
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("sendfile", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
