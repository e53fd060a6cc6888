"""The DBLS daemon: receives log buffers from the database on dbls_host:dbls_port and keeps every line.

Requests (JSON lines, protocol version 2, see redpss.core.wire and docs/dbls.md): `log` {blocks: [[schema, bytes], ...]}
with the schemas' lines as a payload, answered with a durable acknowledgement once the lines are written to
log/DB/<SCHEMA>/ and the ERROR and ALERT lines are in the row writer's spool; `ping`; `status`. Rows reach LOG_MESSAGES
after the acknowledgement, from the spool, so a script that logs from inside a writing transaction never waits on its
own database, and a database that is away never holds up the files.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redpss.core.config import Config
from redpss.core.daemon import Service
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.rowwriter import LOG_MESSAGE_IDS, Busy, RowWriter
from redpss.core.entry import run_instance_daemon
from redpss.core.logging.journal_queue import JournalQueue
from redpss.core.paths import InstancePaths
from redpss.core.secret import accepted_secrets
from redpss.core.services import service_spec
from redpss.core.wire import (
    PAYLOAD_VERSION,
    Code,
    Connection,
    JsonLineServer,
    Limits,
    Message,
    RequestError,
    durable,
    unknown_op,
)
from redpss.core.wire.tls import TlsFiles, server_context
from redpss.dbls.batch import BatchError, DbLine, parse_blocks
from redpss.dbls.files import SchemaFiles
from redpss.dbls.journal import journal_forwarder

log = logging.getLogger("redpss.dbls")

MAX_BATCH_BYTES = 8 * 1024 * 1024  # one log request; a UDF sends far smaller buffers
OPS = ("log", "ping", "status")
OLD_CLIENT = (
    "DBLS takes log lines as per-schema blocks (protocol 2), this client sends them as protocol 1 did: the "
    "database's scripts embed an older pss_client.py; run `redctl db_install` to create them anew"
)


class DblsService(Service):
    name = "dbls"
    tick_interval = 5.0
    drain_timeout = service_spec("dbls").drain_timeout

    def __init__(self, config: Config, paths: InstancePaths) -> None:
        self.config = config
        self.paths = paths
        self.files = SchemaFiles(paths.log_db)
        session = DbSession(DbSettings.from_config(config, client_name="RED-PSS DBLS"))
        self.rows = RowWriter(
            "DB log messages",
            paths.tmp / "dbls-messages.spool",
            session,
            row_ids=LOG_MESSAGE_IDS,
            fsync_appends=False,  # as durable as the lines in the files: written, not fsync'd (docs/decisions.md)
        )
        self.journal: JournalQueue[DbLine] | None = None
        self.server: JsonLineServer | None = None
        self.lines = 0
        self.batches = 0
        self.write_error = ""

    async def start(self) -> None:
        self.server = JsonLineServer(
            self.handle,
            accepted_secrets(self.paths, "DBLS"),
            "DBLS",
            limits=Limits(max_message=MAX_BATCH_BYTES),
            durable_ops=("log",),
            payload_ops=("log",),  # version 1 stays spoken: redctl's and JMON's pings say 1
            foldable_ops=("log",),  # a client's buffers in a row: one acknowledgement (docs/protocols.md)
        )
        self.journal = journal_forwarder(self.paths.redenv)
        self.rows.start()
        redctl = self.config.redctl
        context = server_context(TlsFiles.of(self.paths, "DBLS")) if redctl.dbls_tls else None
        await self.listen(self.server, redctl.dbls_host, redctl.dbls_port, "[redctl] dbls_host/dbls_port", context)

    async def handle(self, request: Message, connection: Connection) -> Message:
        op = request["op"]
        if op == "log":
            return await self._log(request, connection)
        if op == "ping":
            return self.ping_reply()
        if op == "status":
            return {"ok": True, "lines": self.lines, "batches": self.batches, "rows": self.rows.backlog().to_dict()}
        return unknown_op(op, OPS)

    async def _log(self, request: Message, connection: Connection) -> Message:
        if connection.version < PAYLOAD_VERSION or "lines" in request:
            log.warning("refused a log request of protocol 1 from %s at %s", connection.client, connection.peer)
            raise RequestError(OLD_CLIENT)
        try:
            batch = parse_blocks(request.get("blocks"), request.get("payload"))
        except BatchError as exc:
            log.warning("refused a log buffer from %s at %s: %s", connection.client, connection.peer, exc)
            raise RequestError(f"log buffer refused, nothing was written: {exc}") from None
        held: list[int] = []
        if batch.to_database:
            # The ERROR/ALERT rows go on disk first, held back from the database until the lines are in the files:
            # so a refusal leaves nothing behind that the client's resend would duplicate, and an acknowledgement
            # never covers rows in memory only (lost with DBLS). Written on the loop, not fsync'd, like the lines:
            # a hand-over to a thread and back cost more than the whole buffer's check. Only while the row
            # writer's thread holds the spool (rewriting it, with an fsync) is the append left to a thread.
            # (a stop that cuts the request off there: the row writer's stop withdraws what is still held)
            rows = _rows_by_table(batch.to_database)
            spooled = self.rows.append_held(rows, wait=False)
            if isinstance(spooled, Busy):
                spooled = await asyncio.to_thread(self.rows.append_held, rows)
            if spooled is None:
                problem = self.rows.spool_failing or "the spool could not be written"
                log.error("refused a log buffer with ERROR/ALERT lines from %s: the row spool cannot be written (%s)",
                          connection.client, problem)  # fmt: skip
                raise RequestError(
                    f"DBLS cannot keep ERROR/ALERT rows on disk now ({problem}); nothing was written, "
                    "send the buffer again",
                    Code.REFUSED,
                )
            held = spooled
        try:
            self.files.write(batch.files)
        except BaseException as exc:
            self.rows.cancel(held)  # no acknowledgement: the client sends the buffer again
            if not isinstance(exc, OSError):
                raise
            self.write_error = str(exc)
            log.error("cannot write the DB log files below %s: %s", self.paths.log_db, exc)
            raise RequestError(
                f"DBLS cannot write its log files ({exc.strerror or exc}); the buffer was not kept, send it again",
                Code.REFUSED,
            ) from None
        self.write_error = ""
        connection.committed = True  # the lines are in the files: a stop must let the reply go out (core.wire)
        if batch.to_database:
            self.rows.release(held)
            assert self.journal is not None
            self.journal.submit(batch.to_database)
        self.lines += batch.lines
        self.batches += 1
        return durable(lines=batch.lines)

    def status(self) -> str:
        backlog = self.rows.backlog()
        text = f"{self.lines} lines in {self.batches} buffers; {backlog.rows} row(s) wait for LOG_MESSAGES"
        if self.write_error:
            text += f"; cannot write files: {self.write_error}"
        elif backlog.last_error:
            text += f" ({backlog.last_error[:120]})"
        return text

    def healthy(self) -> bool:
        """Serving. Files that cannot be written (a full disk) are not a reason: a restart frees no space, and
        restarts would soon hit the unit's start limit, leaving DBLS failed once space is back (docs/decisions.md).
        Each refused buffer is logged at ERROR, STATUS= names the problem, and the next write that works clears it."""
        return self.server is not None

    async def drain(self) -> None:
        await self._close(rows_timeout=15.0)

    async def abort(self) -> None:
        await self._close(rows_timeout=3.0)

    async def _close(self, rows_timeout: float) -> None:
        if self.server is not None:
            await self.server.close()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
        await asyncio.to_thread(self.rows.stop, rows_timeout)
        self.files.close()


def _rows_by_table(lines: list[DbLine]) -> dict[str, list[dict[str, Any]]]:
    """The ERROR/ALERT lines' rows for LOG_MESSAGES, by schema: one held append for them all."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_table.setdefault(f"{line.schema}.LOG_MESSAGES", []).append(line.row())
    return by_table


def _build(config: Config, paths: InstancePaths, args: argparse.Namespace) -> Service:
    return DblsService(config, paths)


def main(argv: Sequence[str] | None = None) -> int:
    return run_instance_daemon("dbls", _build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
