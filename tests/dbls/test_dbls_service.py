"""DBLS with real processes: concurrent clients, refusals, kill -9, and the database away and back.

The client is the stdlib-only file the database's UDF scripts embed (redpss/sql/udf/pss_client.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from redpss.core.db.rowwriter import CLONE_CUTOFF_FILE
from redpss.core.secret import instance_secret, service_secret
from redpss.sql.udf.pss_client import LogBuffer, PssError, log_line, log_request
from tests.dbls.conftest import Dbls
from tests.support.private_tmp import PrivateTmp
from tests.support.wait import wait_for

STAMP = "2026-11-30 01:02:03.456789"


def level_of(number: int) -> str:
    """Every 100th line ERROR, every 1000th ALERT, the rest INFO."""
    if number % 1000 == 999:
        return "ALERT"
    if number % 100 == 49:
        return "ERROR"
    return "INFO"


def send_lines(dbls: Dbls, client_schema: tuple[str, str], count: int, failures: list[BaseException]) -> None:
    name, schema = client_schema
    try:
        with dbls.client(name) as client:
            buffer = LogBuffer(client, source=f"{schema.upper()}.JOB_{name}", max_lines=500)
            for number in range(count):
                buffer.add(schema, level_of(number), f"{name} line {number}", STAMP)
            buffer.flush()
    except BaseException as exc:
        failures.append(exc)


@pytest.mark.slow
def test_four_clients_100000_lines_land_in_order_and_errors_reach_log_messages(dbls: Dbls) -> None:
    per_client = 25_000
    clients = [("c1", "APP1"), ("c2", "APP1"), ("c3", "APP2"), ("c4", "app2")]  # the schema name in any case
    failures: list[BaseException] = []
    threads = [
        threading.Thread(target=send_lines, args=(dbls, (name, schema), per_client, failures))
        for name, schema in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures

    for schema, names in (("APP1", ("c1", "c2")), ("APP2", ("c3", "c4"))):
        lines = dbls.schema_lines(schema)
        assert len(lines) == 2 * per_client
        for name in names:
            texts = [line.split(": ", 1)[1] for line in lines if f" {schema}.JOB_{name}: " in line]
            assert texts == [f"{name} line {n}" for n in range(per_client)]  # all, once, in order
        assert (dbls.paths.log_db / schema / f"{schema}.log").resolve().parent == dbls.paths.log_db / schema

    expected = sum(level_of(n) in ("ERROR", "ALERT") for n in range(per_client))  # per client
    count_sql = "SELECT COUNT(*) AS N FROM {} WHERE LOG_LEVEL IN ('ERROR', 'ALERT')"
    for schema in ("APP1", "APP2"):
        table = f"{schema}.LOG_MESSAGES"
        wait_for(
            lambda t=table: dbls.rows(count_sql.format(t))[0]["N"] == 2 * expected,  # type: ignore[misc]
            60,
            interval=0.5,
            what=f"{2 * expected} rows in {table}",
        )
    assert dbls.rows("SELECT COUNT(*) AS N FROM APP1.LOG_MESSAGES WHERE LOG_LEVEL = 'INFO'")[0]["N"] == 0
    union = dbls.rows("SELECT SCHEMA_NAME, COUNT(*) AS N FROM REDSYS.ALL_LOG_MESSAGES GROUP BY SCHEMA_NAME")
    assert {r["SCHEMA_NAME"]: r["N"] for r in union} == {"APP1": 2 * expected, "APP2": 2 * expected}
    [row] = dbls.rows("SELECT * FROM APP1.LOG_MESSAGES WHERE MESSAGE = 'c1 line 999'")
    assert (row["LOG_LEVEL"], row["SOURCE"]) == ("ALERT", "APP1.JOB_c1")
    assert str(row["LOG_TIME"]).startswith("2026-11-30 01:02:03")


def test_error_and_alert_lines_reach_journald_with_schema_and_priority_lower_levels_do_not(dbls: Dbls) -> None:
    with dbls.client("journal") as client:
        client.send_log(
            [
                ["APP1", "INFO", STAMP, "APP1.J", "an info line"],
                ["APP1", "ERROR", STAMP, "APP1.J", "an error line"],
                ["APP2", "ALERT", STAMP, "APP2.J", "an alert line"],
            ]
        )
    wait_for(lambda: dbls.journal.find("an alert line"), 10, what="the ALERT line in the journal")
    ours = [e for e in dbls.journal.entries if e.get("REDPSS_LOGGER") == "redpss.dbls.database"]
    by_text = {e["MESSAGE"]: e for e in ours}
    assert set(by_text) == {"APP1.J: an error line", "APP2.J: an alert line"}
    error, alert = by_text["APP1.J: an error line"], by_text["APP2.J: an alert line"]
    assert (error["SCHEMA"], error["PRIORITY"], error["SYSLOG_IDENTIFIER"]) == ("APP1", "3", "redpss-dbls")
    assert (alert["SCHEMA"], alert["PRIORITY"], alert["DB_TIMESTAMP"]) == ("APP2", "1", STAMP)


def raw_exchange(dbls: Dbls, data: bytes) -> bytes:
    """Send raw bytes to DBLS and return everything it answers before it closes."""
    with socket.create_connection(("127.0.0.1", dbls.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_bad_clients_are_refused_with_a_reply_and_a_log_line_while_a_good_one_carries_on(
    dbls: Dbls, tmp_path: Path
) -> None:
    daemon = dbls.procs["dbls"]
    with dbls.client("good") as good:
        good.send_log([["APP1", "INFO", STAMP, "good", "before"]])

        with pytest.raises(PssError) as refused:
            dbls.client("intruder", secret="x" * 64)
        assert refused.value.code == "AUTH_FAILED"
        daemon.wait_log("[AUTH_FAILED]")
        for other in ("JEXEC", "SENDMAIL", "SENDFILE"):  # another service's secret opens that service only
            with pytest.raises(PssError, match="DBLS's own") as refused:
                dbls.client("other", secret=service_secret(instance_secret(dbls.paths), other))
        dbls.client("own", secret=service_secret(instance_secret(dbls.paths), "DBLS")).close()

        old_hello = {"op": "hello", "version": 1, "secret": instance_secret(dbls.paths), "client": "old"}
        old_log = {"op": "log", "lines": [["APP1", "INFO", STAMP, "old", "of protocol 1"]]}
        answer = raw_exchange(dbls, b"".join(json.dumps(m).encode() + b"\n" for m in (old_hello, old_log)))
        hello_reply, log_reply = (json.loads(line) for line in answer.splitlines())
        assert hello_reply["ok"] is True  # redctl's and JMON's pings speak protocol 1
        assert log_reply["code"] == "BAD_REQUEST" and "redctl db_install" in log_reply["error"]
        daemon.wait_log("refused a log request of protocol 1 from old")

        answer = raw_exchange(dbls, b"\x00\xffgarbage that is no JSON\n")
        assert b'"code":"BAD_FRAME"' in answer
        daemon.wait_log("[BAD_FRAME]")

        with dbls.client("big") as big:
            big.send({"op": "log", "blocks": [["APP1", 9 * 1024 * 1024]]}, b"x" * (9 * 1024 * 1024))
            reply = big.next_reply()
        assert reply["code"] == "TOO_LARGE"
        daemon.wait_log("[TOO_LARGE]")

        with dbls.client("escape") as escape:
            for schema in ("../../etc", "APP1/../../x", "", "1APP"):
                with pytest.raises(PssError) as bad:
                    escape.send_log([["APP1", "INFO", STAMP, "s", "fine"], [schema, "ERROR", STAMP, "s", "evil"]])
                assert bad.value.code == "BAD_REQUEST"
                assert "schema" in str(bad.value) and "nothing was written" in str(bad.value)
            with pytest.raises(PssError, match="schema APP1: line 2: level 'LOUD' is not one of"):
                escape.send_log([["APP1", "INFO", STAMP, "s", "x"], ["APP1", "LOUD", STAMP, "s", "x"]])
            with pytest.raises(PssError, match="line 1: 'yesterday INFO s: x' does not start with a timestamp"):
                escape.send_log([["APP1", "INFO", "yesterday", "s", "x"]])
            with pytest.raises(PssError, match="protocol 2") as no_payload:
                escape.request("log", blocks=[["APP1", 10]])
            assert no_payload.value.code == "BAD_REQUEST"
            escape.send_log([["APP1", "INFO", STAMP, "escape", "the connection stays usable"]])
        daemon.wait_log("refused a log buffer from escape")

        good.send_log([["APP1", "INFO", STAMP, "good", "after"]])
    texts = [line.split(": ", 1)[1] for line in dbls.schema_lines("APP1")]
    assert texts == ["before", "the connection stays usable", "after"]
    assert sorted(p.name for p in dbls.paths.log_db.iterdir()) == ["APP1"]
    assert not (dbls.paths.home / "etc" / "ETC").exists() and not (dbls.paths.log / "X").exists()
    assert "Traceback" not in daemon.log and "Traceback" not in daemon.stderr
    assert daemon.process.poll() is None


def test_kill_9_after_the_acknowledgement_loses_nothing_acknowledged(dbls: Dbls) -> None:
    acknowledged: list[str] = []
    with dbls.client("killed") as client:
        for batch in range(20):
            lines = [["APP2", "ERROR", STAMP, "k", f"b{batch} l{n}"] for n in range(50)]
            client.send_log(lines)
            acknowledged += [line[4] for line in lines]
    daemon = dbls.procs["dbls"]
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.process.wait()
    daemon.close()
    assert [line.split(": ", 1)[1] for line in dbls.schema_lines("APP2")] == acknowledged

    dbls.start("dbls")  # the rows still in its spool go to the database after the restart

    def logged_rows() -> list[dict[str, Any]]:
        rows = dbls.rows("SELECT MESSAGE, MESSAGE_KEY FROM APP2.LOG_MESSAGES")
        return rows if len(rows) >= len(acknowledged) else []

    logged = wait_for(
        logged_rows,
        60,
        interval=0.5,
        what="every acknowledged ERROR row in APP2.LOG_MESSAGES",
    )
    # once each: a batch the restart sends again (its commit's note may not have reached the spool) replaces its
    # first copy by the ids the row writer gave the rows
    assert sorted(r["MESSAGE"] for r in logged) == sorted(acknowledged)
    assert len({r["MESSAGE_KEY"] for r in logged}) == len(acknowledged) and all(r["MESSAGE_KEY"] for r in logged)


def test_a_write_that_fails_part_way_leaves_nothing_of_the_refused_buffer(dbls: Dbls) -> None:
    """A file size limit (as a full disk would) stops the second buffer part-way: it is refused "send it again",
    and the file holds exactly the first buffer, so the resent lines are not written twice nor glued to a torn
    line; a buffer that fits is then accepted."""
    daemon = dbls.procs.pop("dbls")
    daemon.stop()
    daemon.close()
    limited = dbls.start("dbls", launcher=["prlimit", "--fsize=300000", "--"], env={"WATCHDOG_USEC": "400000"})

    def lines(tag: str, count: int) -> list[list[str]]:
        return [["APP1", "INFO", STAMP, "s", f"{tag} {n:05d} " + "y" * 80] for n in range(count)]

    with dbls.client("limited") as client:
        client.send_log(lines("first", 2000))
        with pytest.raises(PssError, match="the buffer was not kept, send it again") as refused:
            client.send_log(lines("second", 2000))
        assert refused.value.code == "REFUSED"
        # still pinging the watchdog: a restart would free no space, only use up the unit's start limit
        pings = limited.notify.count("WATCHDOG", "1")
        limited.notify.wait_for("WATCHDOG", "1", nth=pings + 3, timeout=10)
        wait_for(
            lambda: any("cannot write files" in m.get("STATUS", "") for m in limited.notify.messages),
            15,
            what="STATUS= naming the files that cannot be written",
        )
        client.send_log(lines("third", 10))
    written = dbls.schema_lines("APP1")
    expected = [line[4] for line in lines("first", 2000) + lines("third", 10)]
    assert [line.split(": ", 1)[1] for line in written] == expected


OUTAGE = 60.0  # seconds the database stays away


@pytest.mark.slow
def test_database_away_for_a_minute_then_back_every_error_row_arrives_once(dbls: Dbls) -> None:
    dbls.inst.close()
    assert dbls.procs["devdb"].stop() == 0
    dbls.procs["devdb"].close()
    away_since = time.monotonic()
    sent: list[str] = []
    with dbls.client("outage") as client:
        batch = 0
        while time.monotonic() - away_since < OUTAGE:
            lines = [["APP1", "ERROR" if n % 2 else "ALERT", STAMP, "o", f"outage b{batch} l{n}"] for n in range(30)]
            lines.append(["APP1", "INFO", STAMP, "o", f"outage b{batch} info"])  # a file line only
            client.send_log(lines)  # acknowledged at once: the files never wait for the database
            sent += [line[4] for line in lines[:-1]]
            if batch == 0:
                dbls.procs["dbls"].wait_log("database unavailable")
            batch += 1
            time.sleep(3.0)  # pacing: buffers spread over the outage, while the row writer keeps retrying
        rows = client.request("status")["rows"]
    assert rows["rows"] == len(sent) and rows["last_error"]  # all waiting in the spool, the reason known
    assert len(dbls.schema_lines("APP1")) == len(sent) + batch
    assert time.monotonic() - away_since >= OUTAGE

    dbls.start("devdb")
    wait_for(
        lambda: dbls.rows("SELECT COUNT(*) AS N FROM APP1.LOG_MESSAGES")[0]["N"] >= len(sent),
        90,
        interval=0.5,
        what="the rows of the outage in APP1.LOG_MESSAGES",
    )
    rows_by_message = dbls.rows("SELECT MESSAGE, COUNT(*) AS N FROM APP1.LOG_MESSAGES GROUP BY MESSAGE")
    assert {r["MESSAGE"]: r["N"] for r in rows_by_message} == dict.fromkeys(sent, 1)  # every row, once
    with dbls.client("after") as client:
        wait_for(lambda: client.request("status")["rows"]["rows"] == 0, 30, what="an empty row spool")
    assert dbls.procs["dbls"].process.poll() is None


def test_rows_spooled_before_the_database_was_replaced_by_a_clone_are_dropped(dbls: Dbls) -> None:
    """A clone restore writes the cut-off (redpss.clone): the ERROR rows DBLS spooled for the database that is gone
    never reach the clone, while the lines stay in the log files and later rows are kept."""
    dbls.inst.close()
    assert dbls.procs["devdb"].stop() == 0
    dbls.procs["devdb"].close()
    with dbls.client("clone") as client:
        client.send_log([["APP1", "ERROR", STAMP, "c", f"before the clone {n}"] for n in range(3)])
        wait_for(lambda: client.request("status")["rows"]["rows"] == 3, 10, what="three rows in the spool")
        (dbls.paths.tmp / CLONE_CUTOFF_FILE).write_text(f"{time.time() + 0.001}\n")
        wait_for(lambda: client.request("status")["rows"]["rows"] == 0, 10, what="the spooled rows dropped")
        client.send_log([["APP1", "ERROR", STAMP, "c", "after the clone"]])
        assert client.request("status")["rows"]["rows"] == 1
    assert len(dbls.schema_lines("APP1")) == 4
    dbls.procs["dbls"].wait_log("from before the database was replaced by a clone discarded")


def test_a_refused_buffer_among_buffers_in_flight_is_reported_by_the_buffer(dbls: Dbls) -> None:
    with dbls.client("pipelined") as client:
        buffer = LogBuffer(client, source="p", max_lines=1, window=4)
        buffer.add("APP1", "INFO", "one", STAMP)
        buffer.add("APP1", "INFO", "two", STAMP)
        with pytest.raises(PssError, match=re.escape("schema '../../etc' is not a valid")) as refused:
            buffer.add("../../etc", "INFO", "bad", STAMP)
            buffer.add("APP1", "INFO", "four", STAMP)
            buffer.flush()
        assert refused.value.code == "BAD_REQUEST"
        assert client.send_log([["APP1", "INFO", STAMP, "p", "five"]])["durable"] is True
    texts = [line.split(": ", 1)[1] for line in dbls.schema_lines("APP1")]
    assert texts[:2] == ["one", "two"] and texts[-1] == "five" and "bad" not in texts


def test_a_graceful_stop_while_the_database_is_away_keeps_the_rows_for_the_next_start(dbls: Dbls) -> None:
    dbls.inst.close()
    assert dbls.procs["devdb"].stop() == 0
    dbls.procs["devdb"].close()
    sent = [["APP2", "ALERT", STAMP, "g", f"kept {n}"] for n in range(25)]
    with dbls.client("graceful") as client:
        client.send_log(sent)
    daemon = dbls.procs["dbls"]
    assert daemon.stop() == 0  # SIGTERM: drains and exits cleanly although the rows could not be written
    daemon.wait_log("row(s) stay in")
    daemon.close()
    dbls.start("devdb")
    dbls.start("dbls")
    wait_for(
        lambda: dbls.rows("SELECT COUNT(*) AS N FROM APP2.LOG_MESSAGES")[0]["N"] >= len(sent),
        60,
        interval=0.5,
        what="the rows kept over the stop in APP2.LOG_MESSAGES",
    )
    rows = dbls.rows("SELECT MESSAGE, COUNT(*) AS N FROM APP2.LOG_MESSAGES GROUP BY MESSAGE")
    assert {r["MESSAGE"]: r["N"] for r in rows} == {line[4]: 1 for line in sent}


@pytest.mark.parametrize(
    ("version", "request_line", "refusal"),
    [
        (2, {"op": "ping", "payload": 3}, "request 'ping' cannot carry a payload"),
        (2, {"op": "log", "blocks": [["APP1", 3]], "payload": "3"}, '"payload" must be the number of bytes'),
        (2, {"op": "log", "blocks": [["APP1", 3]], "payload": -3}, '"payload" must be the number of bytes'),
        (1, {"op": "log", "blocks": [["APP1", 3]], "payload": 3}, "with protocol version 1"),
    ],
)
def test_a_payload_where_none_may_be_closes_the_connection_with_bad_frame(
    dbls: Dbls, version: int, request_line: dict[str, object], refusal: str
) -> None:
    hello = {"op": "hello", "version": version, "secret": instance_secret(dbls.paths), "client": "payloads"}
    data = b"".join(json.dumps(m).encode() + b"\n" for m in (hello, request_line)) + b"xyz"
    hello_reply, reply = (json.loads(line) for line in raw_exchange(dbls, data).splitlines())
    assert hello_reply["ok"] is True
    assert reply["code"] == "BAD_FRAME" and refusal in reply["error"]
    dbls.procs["dbls"].wait_log(refusal)
    assert list(dbls.paths.log_db.iterdir()) == []


def test_a_payload_is_read_exactly_however_the_wire_cuts_it(dbls: Dbls) -> None:
    """DBLS reads a payload straight into a buffer of its own (core/wire's _WireProtocol): a payload sent in small
    pieces, two requests in one send (a payload's end and the next request line in one read; the client's hello
    asks for folded acknowledgements, so one reply answers both), and a connection closed within a payload each
    leave exactly the lines of the requests that were complete."""

    def request(text: str, count: int) -> bytes:
        lines = [log_line("INFO", STAMP, "cut", f"{text} {number}") for number in range(count)]
        message, payload = log_request({"APP1": lines})
        return json.dumps({**message, "payload": len(payload)}).encode() + b"\n" + payload

    with dbls.client("pieces") as client:
        pieces = request("piece", 300)
        for start in range(0, len(pieces), 997):
            client.sock.sendall(pieces[start : start + 997])
        assert client.next_reply()["lines"] == 300
        client.sock.sendall(request("first", 2) + request("second", 3))
        reply = client.next_reply()  # the two came in a row: one acknowledgement (the second's reply) for both
        assert (reply["acks"], reply["lines"], reply["durable"]) == (2, 3, True)

    cut = request("lost", 50)
    with dbls.client("cut") as client:
        client.sock.sendall(cut[: len(cut) // 2])
    with dbls.client("after") as client:
        client.send_log([["APP1", "INFO", STAMP, "cut", "after"]])
    texts = [line.split(": ", 1)[1] for line in dbls.schema_lines("APP1")]
    expected = [f"piece {n}" for n in range(300)] + ["first 0", "first 1"] + [f"second {n}" for n in range(3)]
    assert texts == [*expected, "after"]
    daemon = dbls.procs["dbls"]
    assert "Traceback" not in daemon.log and "Traceback" not in daemon.stderr


@pytest.mark.root  # a tmpfs in a mount namespace of its own: a real ENOSPC for DBLS's row spool alone
def test_while_the_row_spool_cannot_be_written_a_buffer_with_error_lines_is_refused_not_acknowledged(
    dbls: Dbls,
) -> None:
    """Once the spool had failed, every later ERROR row was held in memory only, until the writer's next retry
    worked, and acknowledged as durable all the same: a stop or a crash then lost acknowledged rows. Such a buffer
    is now refused, nothing of it written, the first one to find the disk full included (its rows are not kept in
    memory either, so its resend is in LOG_MESSAGES once); lines without a database row are still taken."""
    daemon = dbls.procs.pop("dbls")
    daemon.stop()
    daemon.close()
    private = PrivateTmp(dbls.paths.tmp, "4m")
    try:
        limited = dbls.start("dbls", launcher=private.launcher())

        def buffer(tag: str, level: str, count: int = 3) -> list[list[str]]:
            return [["APP1", level, STAMP, "s", f"{tag} {n} " + "z" * 200] for n in range(count)]

        with dbls.client("full") as client:
            client.send_log(buffer("before", "ERROR"))
            private.fill()
            with pytest.raises(PssError, match="cannot keep ERROR/ALERT rows on disk now") as first:
                client.send_log(buffer("finds it full", "ERROR", 100))  # more than the spool's last page holds
            assert first.value.code == "REFUSED"
            limited.wait_log("cannot write the spool")
            with pytest.raises(PssError, match="cannot keep ERROR/ALERT rows on disk now") as refused:
                client.send_log(buffer("refused", "ERROR"))
            assert refused.value.code == "REFUSED"
            client.send_log(buffer("info only", "INFO"))  # the files can be written: taken
            private.free()

            def taken() -> bool:
                try:
                    client.send_log(buffer("after", "ERROR"))
                except PssError:
                    return False
                return True

            wait_for(taken, 30, what="an ERROR buffer taken once the spool can be written again")
            client.send_log(buffer("finds it full", "ERROR", 100))  # the client sends the refused buffer again
        texts = [line.split(": ", 1)[1] for line in dbls.schema_lines("APP1")]
        assert not any(text.startswith("refused") for text in texts)
        assert sum(text.startswith("info only") for text in texts) == 3
        assert sum(text.startswith("finds it full") for text in texts) == 100

        def resent_rows() -> list[dict[str, Any]]:
            rows = dbls.rows("SELECT MESSAGE FROM APP1.LOG_MESSAGES WHERE MESSAGE LIKE 'finds it full%'")
            return rows if len(rows) >= 100 else []

        # rows go in the order appended: once the resend's are in, a copy kept from the refusal would be too
        wait_for(resent_rows, 30, interval=0.5, what="the resent buffer's ERROR rows in APP1.LOG_MESSAGES")
        assert len(dbls.rows("SELECT MESSAGE FROM APP1.LOG_MESSAGES WHERE MESSAGE LIKE 'finds it full%'")) == 100
    finally:
        stopped = dbls.procs.pop("dbls")
        stopped.stop()
        stopped.close()
        private.close()


def test_a_schema_folder_removed_by_hand_is_made_again(dbls: Dbls) -> None:
    """`rm -rf log/DB/APP1` while DBLS ran: its file was opened again in the missing folder (ENOENT), so every
    buffer for APP1 was refused until a restart, while the watchdog went on being fed."""
    with dbls.client("removed") as client:
        client.send_log([["APP1", "INFO", STAMP, "s", "before"]])
        shutil.rmtree(dbls.paths.log_db / "APP1")

        def written_again() -> bool:
            client.send_log([["APP1", "INFO", STAMP, "s", "again"]])  # a refusal raises: the test fails
            return (dbls.paths.log_db / "APP1").is_dir() and any("again" in line for line in dbls.schema_lines("APP1"))

        wait_for(written_again, 15, what="APP1's folder and file made again")
