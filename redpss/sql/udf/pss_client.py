"""The database side of RED-PSS's services: a client that needs nothing but Python's standard library.

Exasol's script container cannot import redpss, so this one file is what the UDF scripts embed (PSS_LOG, PSS_EXEC),
and it is also the client the tests and the benchmark use, so the wire format is exercised in one place. It speaks
RED-PSS's JSON-line wire (docs/protocols.md): one JSON object per line, a hello carrying the protocol version and
the instance secret first, then one reply per request. Pushed messages carrying an "event" key (JEXEC's heartbeat
while an action runs) are skipped while waiting for a reply. Protocol version 2: log lines travel as a raw payload
after their request line, one block per schema in the form they take in DBLS's files (docs/dbls.md), so neither
side spends time on JSON per line.

    with PssClient("10.0.0.5", 7402, secret, client="PSS_LOG") as client:
        buffer = LogBuffer(client, source="APP1.LOAD_ORDERS")
        buffer.add("APP1", "ERROR", "order 17 has no customer")
        buffer.flush()  # returns once DBLS has the lines on disk
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

PROTOCOL_VERSION = 2  # 2: a request may carry a payload (DBLS's log blocks); DBLS speaks only 2, others 1 and 2
SOURCE_MAX = 256  # LOG_MESSAGES.SOURCE is VARCHAR(256)
_NOT_IN_SOURCE = re.compile(r"[\s:]")  # a source is one word: the file line is `timestamp LEVEL source: text`
MAX_REPLY = 16 * 1024 * 1024  # a reply longer than this is refused (the servers' own limit)
# seconds send_mail waits for SENDMAIL's answer: it reads, encodes and fsyncs up to 25 MiB of attachments first, behind
# other callers' mails (composed two at a time). Given up on sooner, a mail SENDMAIL then spooled was sent again.
MAIL_ACCEPT_TIMEOUT = 300.0
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "ALERT")
# A message may be as long as PSS_LOG's VARCHAR(2000000), DBLS takes 8 MiB per request: a line is cut to this many
# characters (at most 1 MiB of UTF-8) with a note of what was left out, and a buffer goes out at this many characters
# (with the line that crosses it, at most about 5 MiB) or at its lines, whichever comes first, so no buffer of lines
# is ever refused for its size.
MAX_LINE_CHARS = 256 * 1024
MAX_BUFFER_CHARS = 1024 * 1024
# How long a client waits for a service that serves as many clients as it takes (TOO_MANY_CONNECTIONS): a big
# cluster may run more UDF instances at once; each waits its turn instead of failing its statement.
BUSY_WAIT = 60.0
# Seconds without a byte from JEXEC after which a running action's connection counts as dead: JEXEC sends a `running`
# event every second while the script runs (docs/jexec.md).
RUN_SILENCE = 60.0
_LEVEL_SET = frozenset(LEVELS)


class PssError(Exception):
    """A refusal by the server (`code` is its stable code, e.g. AUTH_FAILED), or a broken connection (code None)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class _Clock:
    """What now_text() formatted last: the microsecond and its text, the second and its text up to the "." (an
    instance's attributes: writing a class's costs every later read of them their quick path)."""

    __slots__ = ("micro", "second", "second_text", "text")

    def __init__(self) -> None:
        self.micro = self.second = -1
        self.text = self.second_text = ""


_CLOCK = _Clock()


def now_text() -> str:
    """The current local time as Exasol TIMESTAMP text: what a log line carries unless the caller gives one.

    Formatting a time costs several microseconds, more than the rest of a line; the text up to the seconds is kept
    for as long as the second lasts, and the whole text for as long as the microsecond lasts (lines added one right
    after another may share it), so a line pays at most for its six digits."""
    micro = time.time_ns() // 1000
    clock = _CLOCK
    if micro == clock.micro:
        return clock.text
    second = micro // 1_000_000
    if second != clock.second:
        clock.second, clock.second_text = second, time.strftime("%Y-%m-%d %H:%M:%S.", time.localtime(second))
    clock.micro = micro
    clock.text = text = clock.second_text + str(micro)[-6:]  # the microseconds, zeros in front
    return text


class PssClient:
    """One authenticated connection to a RED-PSS service (DBLS, JEXEC); requests are answered one at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        *,
        client: str = "pss_client",
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        busy_wait: float = BUSY_WAIT,
    ) -> None:
        self.address = f"{host}:{port}"
        deadline, pause = time.monotonic() + busy_wait, 0.05
        while True:
            try:
                self._open(host, port, secret, client=client, timeout=timeout, ssl_context=ssl_context)
                return
            except PssError as exc:
                if exc.code != "TOO_MANY_CONNECTIONS" or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause * (0.5 + random.random()))  # noqa: S311 - spreads the retries of waiting clients
            pause = min(pause * 2, 2.0)

    def _open(
        self, host: str, port: int, secret: str, *, client: str, timeout: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        """Connect and say hello; PssError (with the server's code when it refused) otherwise."""
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise PssError(f"cannot connect to {self.address}: {exc.strerror or exc}") from exc
        # Each request ends in a partial segment and waits for its reply: without TCP_NODELAY, Nagle's algorithm
        # holds that segment until the server's delayed ACK (up to 40 ms per request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise PssError(f"TLS with {self.address} failed: {exc}") from exc
        self.sock = sock
        self.file = sock.makefile("rb")
        self.events: list[dict[str, Any]] = []  # pushed messages seen while waiting for replies
        try:
            hello = {"op": "hello", "version": PROTOCOL_VERSION, "secret": secret, "client": client, "fold_acks": True}
            reply = self.exchange(hello)
            _check(reply, "hello")
        except PssError:
            self.close()
            raise

    # -- requests -------------------------------------------------------------------------------------------------
    def exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one message and return the next reply as it is (ok or not); PssError when the connection fails."""
        self.send(message)
        return self.next_reply()

    def send(self, message: dict[str, Any], payload: bytes | None = None) -> None:
        """Send one message without waiting for its reply (replies come in the order of the requests).

        A `payload` is declared in the message (`"payload": N`) and sent as raw bytes right after its line.
        """
        parts = [payload] if payload is not None else None
        self.send_parts(message, parts)

    def send_parts(self, message: dict[str, Any], parts: list[bytes] | None) -> None:
        """`send` with a payload in parts (sent one after the other, without joining them first)."""
        if parts is not None:
            message = {**message, "payload": sum(len(part) for part in parts)}
        line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            # one system call for the line and its payload: a line alone would wake the server for a few bytes
            if parts and not isinstance(self.sock, ssl.SSLSocket):
                _send_all(self.sock, [line, *parts])
            else:
                self.sock.sendall(line + b"".join(parts or ()))
        except OSError as exc:
            raise PssError(f"{self.address}: {exc.strerror or exc}") from exc

    def next_reply(self) -> dict[str, Any]:
        """The next reply (pushed events are kept in `events`); PssError when the connection fails."""
        try:
            while True:
                line = self.file.readline(MAX_REPLY + 1)
                if not line:
                    raise PssError(f"{self.address} closed the connection")
                if not line.endswith(b"\n"):
                    raise PssError(f"{self.address} sent a reply longer than {MAX_REPLY} bytes")
                reply = json.loads(line)
                if not isinstance(reply, dict):
                    raise PssError(f"{self.address} sent something that is not a JSON object")
                if "event" in reply:
                    self.events.append(reply)
                    del self.events[:-100]  # only the latest are of interest
                    continue
                return reply
        except OSError as exc:
            raise PssError(f"{self.address}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise PssError(f"{self.address} sent a reply that is not JSON: {exc}") from exc

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request; its reply, or PssError (with the server's code) when the server refused it."""
        return _check(self.exchange({**fields, "op": op}), op)

    def send_log(self, lines: list[list[str]]) -> dict[str, Any]:
        """Send log lines `[schema, level, timestamp, source, text]`; returns once DBLS says they are on disk."""
        blocks: dict[str, list[str]] = {}
        for schema, level, timestamp, source, text in lines:
            blocks.setdefault(schema, []).append(log_line(level, timestamp, clean_source(source), text))
        self.send_parts(*_log_parts(blocks))
        return _durable(_check(self.next_reply(), "log"), self.address)

    def run_action(
        self,
        action: str,
        args: list[str] | tuple[str, ...] = (),
        *,
        timeout: float = 3600.0,
        job_id: object = None,
        run_id: str | None = None,
        silence: float = RUN_SILENCE,
    ) -> dict[str, Any]:
        """Ask JEXEC to run the cmd/ script `action` with `args`; the reply has status, exit_code, duration, tail.

        While the script runs JEXEC sends a `running` event every second, so `silence` seconds without a byte mean
        that JEXEC, its machine or the network to it is gone: PssError then, instead of waiting up to `timeout`
        (an hour by default) for a reply that cannot come."""
        fields: dict[str, Any] = {"action": action, "args": list(args), "timeout": timeout}
        if job_id is not None:
            fields["job_id"] = job_id
        if run_id is not None:
            fields["run_id"] = run_id
        # JEXEC answers within `timeout` (it kills the run then); its events keep a longer run's connection busy
        wait = min(timeout + 30.0, silence)
        try:
            with self._waiting(wait):
                return self.request("run", **fields)
        except PssError as exc:
            if isinstance(exc.__cause__, TimeoutError):
                raise PssError(
                    f"{self.address} sent nothing for {wait:g} s while cmd/{action} ran "
                    "(JEXEC sends a sign of life every second): JEXEC, its server or the network to it is gone; "
                    "whether the action finished is not known"
                ) from exc
            raise

    def send_mail(
        self,
        to: list[str] | str,
        subject: str,
        body: str,
        attachments: list[str] | tuple[str, ...] = (),
        schema: str | None = None,
    ) -> dict[str, Any]:
        """Hand a mail to SENDMAIL; returns once it is spooled on disk (the reply names its mail_id).

        `attachments` are paths of files below the instance's data/ folder (relative to it, or absolute); their
        content is copied into the spool, so they may be removed after this returns. `schema` is the sending
        schema: if the relay refuses the mail for good, its LOG_MESSAGES gets an ALERT row."""
        fields: dict[str, Any] = {"to": to, "subject": subject, "body": body, "attachments": list(attachments)}
        if schema is not None:
            fields["schema"] = schema
        with self._waiting(max(self.sock.gettimeout() or 0.0, MAIL_ACCEPT_TIMEOUT)):
            return _durable(self.request("mail", **fields), self.address)

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    @contextlib.contextmanager
    def _waiting(self, seconds: float) -> Iterator[None]:
        """The socket waits `seconds` for the replies within the block; the connection's next requests wait as long
        as it was made to."""
        usual = self.sock.gettimeout()
        self.sock.settimeout(seconds)
        try:
            yield
        finally:
            self.sock.settimeout(usual)

    # -- connection -----------------------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.sock.close()

    def __enter__(self) -> PssClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_source(source: str) -> str:
    """A source fit for a log line: white space and ':' become '_', at most SOURCE_MAX characters."""
    return _NOT_IN_SOURCE.sub("_", source)[:SOURCE_MAX]


def log_line(level: str, timestamp: str, source: str, text: str) -> str:
    """One line as DBLS writes it: `timestamp LEVEL source: text`, further text lines continued after a tab."""
    if "\n" in text or "\r" in text:
        text = _continued(text)
    return f"{timestamp} {level.upper()} {source}: {text}\n"


def _cut(text: str) -> str:
    """A message too long for one log line: its start, and how much was left out."""
    note = f" [... {len(text) - MAX_LINE_CHARS + 100} more characters not logged]"
    return text[: MAX_LINE_CHARS - 100] + note


def _continued(text: str) -> str:
    """Text of several lines as one log line: each further line continues after a line break and a tab."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\n\t")


def log_request(blocks: dict[str, list[str]]) -> tuple[dict[str, Any], bytes]:
    """The `log` request and its payload: each schema's lines as one UTF-8 block, the blocks one after the other."""
    message, parts = _log_parts(blocks)
    return message, b"".join(parts)


def _log_parts(blocks: dict[str, list[str]]) -> tuple[dict[str, Any], list[bytes]]:
    spec: list[list[Any]] = []
    parts: list[bytes] = []
    for schema, lines in blocks.items():
        data = "".join(lines).encode("utf-8", "replace")  # "replace": a lone surrogate cannot be UTF-8
        spec.append([schema, len(data)])
        parts.append(data)
    return {"op": "log", "blocks": spec}, parts


def _send_all(sock: socket.socket, parts: list[bytes]) -> None:
    """sendall of several buffers with sendmsg (a socket with a timeout may take less than all of them at once)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        sent = sock.sendmsg(views[:512])
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if views and sent:
            views[0] = views[0][sent:]


class LogBuffer:
    """Log lines collected during one batch of UDF calls and sent in buffers of `max_lines`, as PSS_LOG does.

    Lines are formatted as they are added and kept per schema, so a buffer goes out as one block per schema.
    Up to `window` full buffers travel before their acknowledgements are awaited (the server answers in order, one
    reply for the buffers that came in a row: `acks`), so the client does not idle for a round trip per buffer;
    `flush()` sends the rest and returns only once DBLS has acknowledged every line as durable. A refusal or a lost
    connection raises PssError: the caller must assume that no line since its last successful flush() is safe.
    `pending` is the number of lines not sent yet.
    """

    def __init__(self, client: PssClient, source: str = "", max_lines: int = 1000, window: int = 4) -> None:
        self.client = client
        self.source = clean_source(source)
        self.max_lines = max_lines
        self.window = max(1, window)
        self.pending = 0
        self._blocks: dict[str, list[str]] = {}  # schema in upper case -> its lines
        self._by_name: dict[str, list[str]] = {}  # schema as the caller spells it -> the same list
        self._heads: dict[str, str] = {}  # level as the caller spells it -> " LEVEL source: "
        self.unacknowledged = 0  # buffers sent whose acknowledgement has not been read yet
        self.pending_chars = 0  # characters of the lines not sent yet

    def add(self, schema: str, level: str, text: str, timestamp: str | None = None) -> None:
        # Called once per line: two dictionary look-ups find the schema's block and the line's head (level and
        # source, formatted once per level); anything new takes the slow path in _route.
        try:
            block = self._by_name[schema]
            head = self._heads[level]
        except KeyError:
            block, head = self._route(schema, level)
        if len(text) > MAX_LINE_CHARS:
            text = _cut(text)
        if "\n" in text or "\r" in text:
            text = _continued(text)
        line = f"{timestamp or now_text()}{head}{text}\n"
        block.append(line)
        self.pending += 1
        self.pending_chars += len(line)
        if self.pending >= self.max_lines or self.pending_chars >= MAX_BUFFER_CHARS:
            self._send()
            self._await_acknowledgements(self.window - 1)

    def _route(self, schema: str, level: str) -> tuple[list[str], str]:
        """The block of `schema` and the head of `level`, made the first time either is seen."""
        block = self._by_name.get(schema)
        if block is None:
            # one block per schema however it is spelled, so lines keep their order ("app1" and "APP1" alike); a
            # name that cannot be valid goes as it is, for DBLS's refusal to show it
            key = schema.upper() if schema.isascii() and schema.isidentifier() else schema
            block = self._by_name[schema] = self._blocks.setdefault(key, [])
        head = self._heads.get(level)
        if head is None:
            head = self._heads[level] = f" {level if level in _LEVEL_SET else level.upper()} {self.source}: "
        return block, head

    def flush(self) -> None:
        """Send what is buffered and wait until DBLS acknowledged every buffer sent (durably)."""
        if self.pending:
            self._send()
        self._await_acknowledgements(0)

    def _send(self) -> None:
        blocks = self._blocks
        self._blocks, self._by_name, self.pending, self.pending_chars = {}, {}, 0, 0
        self.client.send_parts(*_log_parts(blocks))
        self.unacknowledged += 1

    def _await_acknowledgements(self, allowed: int) -> None:
        failure: PssError | None = None
        while self.unacknowledged > allowed:
            reply = self.client.next_reply()
            answered = reply.get("acks", 1)  # DBLS folds the acknowledgements of buffers that came in a row
            if type(answered) is not int or not 1 <= answered <= self.unacknowledged:
                raise PssError(
                    f"{self.client.address} acknowledged {answered!r:.20} buffers, {self.unacknowledged} were due"
                )
            self.unacknowledged -= answered
            try:
                _durable(_check(reply, "log"), self.client.address)
            except PssError as exc:
                failure = failure or exc
                allowed = 0  # read every reply still due, so the next request gets its own reply
        if failure is not None:
            raise failure


def _durable(reply: dict[str, Any], address: str) -> dict[str, Any]:
    if reply.get("durable") is not True:
        raise PssError(f"{address} acknowledged the log lines without saying they are safe")
    return reply


def _check(reply: dict[str, Any], op: str) -> dict[str, Any]:
    if reply.get("ok") is not True:
        raise PssError(str(reply.get("error") or f"{op} refused"), reply.get("code"))
    return reply


def client_for_connection(connection: Any, client: str, timeout: float = 30.0) -> PssClient:
    """A client for a CONNECTION object as a UDF reads it (`exa.get_connection(name)`): the address is `host:port`
    or `[IPv6 address]:port`, the password is the instance secret (docs/db-contract.md). A service with TLS has
    `tls://host:port?pin=<PEM>` (trust exactly that certificate) or `?ca=<PEM>` (a CA; the name must match), the
    PEM in URL-safe base64, as db_install writes it."""
    address = str(connection.address or "")
    context = None
    if address.startswith("tls://"):
        address, context = _tls_address(address)
    host, separator, port = address.rpartition(":")
    if not separator or not host or not (port.isascii() and port.isdigit()):
        raise PssError(f"the connection's address {address[:80]!r} is not host:port: run redctl db_install again")
    return PssClient(
        host.strip("[]"), int(port), str(connection.password or ""), client=client, timeout=timeout, ssl_context=context
    )


def tls_context(trusted_pem: str, pinned: bool) -> ssl.SSLContext:
    """A client context, TLS 1.2 or newer, that verifies the server against `trusted_pem`: a CA (and the server's
    name) or, `pinned`, the server's own certificate whatever names it carries."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=trusted_pem)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # a pinned certificate is an anchor of its own
    context.check_hostname = not pinned
    return context


def _tls_address(address: str) -> tuple[str, ssl.SSLContext]:
    """host:port and the client context of a `tls://host:port?pin=...` (or `?ca=...`) address."""
    where, _, trust = address[len("tls://") :].partition("?")
    kind, _, encoded = trust.partition("=")
    if kind not in ("pin", "ca") or not encoded:
        raise PssError(f"the connection's address tls://{where} names no certificate to trust: run redctl db_install")
    try:
        pem = base64.urlsafe_b64decode(encoded.encode("ascii")).decode("ascii")
        return where, tls_context(pem, pinned=kind == "pin")
    except (ValueError, ssl.SSLError) as exc:
        raise PssError(f"the certificate in the connection of tls://{where} does not load: {exc}") from None
