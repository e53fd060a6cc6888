"""SENDFILE delivering by mail through a real SENDMAIL and a real aiosmtpd relay, and the refusals that need no sshd.

The export comes from a real devdb through pyexasol's HTTP transport; the mail is handed to SENDMAIL's service port
(never into its spool folder), so what arrives at the relay went the way production mail goes.
"""

from __future__ import annotations

import io
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from redpss.core.db import DatabaseQueryError
from redpss.core.wire import WireError
from tests.sendfile.conftest import Sender
from tests.support.smtp_relay import SmtpRelay
from tests.support.wait import wait_for

SenderFor = Callable[..., Sender]


def reference_csv(sender: Sender, query: str, tmp_path: Path) -> bytes:
    """What the database itself writes for `query` through pyexasol's export_to_file (the anchor)."""
    target = tmp_path / "reference.csv"
    with target.open("wb") as out:
        sender.inst.db().connection().export_to_file(out, query, export_params={"with_column_names": True})
    return target.read_bytes()


def test_mail_delivery_attaches_the_csv_and_parquet_files(sender_for: SenderFor, tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, "STARTTLS", user="relayuser", password="relay-pw") as relay:
        sender = sender_for(**relay.config())
        sender.start("devdb", "sendmail", "sendfile")
        sender.inst.redctl("db_register", "APP1")
        sender.make_view("APP1", "V_ORDERS", 2000, new_schema=False)
        reply = sender.send(
            source="app1.v_orders", format="CSV", to="ops@example.com", schema="APP1", file_name="orders.csv", wait=True
        )
        assert reply["ok"] and reply["durable"] and reply["rows"] == 2000, reply
        reply = sender.send(
            source="APP1.V_ORDERS",
            format="parquet",
            to=["ops@example.com"],
            where="ID < 1000",
            schema="APP1",
            wait=True,
        )
        assert reply["rows"] == 1000, reply
        received = relay.wait_for(2, 60)
        by_subject = {r.message()["Subject"]: r.message() for r in received}
        csv_mail = by_subject["APP1.V_ORDERS: orders.csv"]
        [attachment] = list(csv_mail.iter_attachments())
        assert attachment.get_filename() == "orders.csv"
        assert attachment.get_payload(decode=True) == reference_csv(sender, "SELECT * FROM APP1.V_ORDERS", tmp_path)
        [parquet_mail] = [m for s, m in by_subject.items() if s != "APP1.V_ORDERS: orders.csv"]
        [attachment] = list(parquet_mail.iter_attachments())
        assert str(attachment.get_filename()).endswith(".parquet")
        payload = attachment.get_payload(decode=True)
        assert isinstance(payload, bytes)
        table = pq.read_table(io.BytesIO(payload))
        assert table.num_rows == 1000
        assert sorted(table.column("ID").to_pylist()) == list(range(1000))
        names = dict(zip(table.column("ID").to_pylist(), table.column("NAME").to_pylist(), strict=True))
        assert (names[13], names[17], names[35], names[5]) == ("NA", "null", None, 'say "hi", ok')  # text, not NULL
        # SENDFILE left nothing behind in data/work, and the schema's LOG_MESSAGES has both outcomes.
        assert not any((sender.paths.data_work / "sendfile").rglob("*.*"))
        wait_for(
            lambda: len(sender.rows("SELECT * FROM APP1.LOG_MESSAGES WHERE \"SOURCE\" = 'SENDFILE'")) == 2,
            30,
            what="two LOG_MESSAGES rows",
        )


def test_a_file_above_the_mail_limit_is_refused_clearly(sender_for: SenderFor, tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        sender = sender_for(**relay.config())
        (sender.paths.etc / "sendfile.conf").write_text("[mail]\nmax_mb = 0.05\n")
        sender.start("devdb", "sendmail", "sendfile")
        sender.make_view("APP1", "V_BIG", 5000)
        with pytest.raises(WireError, match="grew beyond 52428 bytes, the limit for mail"):
            sender.send(source="APP1.V_BIG", to="ops@example.com", wait=True, schema="APP1")
        assert "failed: the CSV file of APP1.V_BIG grew beyond" in sender.log
        assert relay.received == []
        assert not any((sender.paths.data_work / "sendfile").rglob("*.*"))


def test_bad_requests_are_refused_naming_the_field(sender_for: SenderFor) -> None:
    sender = sender_for()
    sender.start("devdb", "sendfile")
    cases = {
        "SCHEMA.NAME": {"source": "V_ORDERS", "to": "a@b.example"},
        "'XLS' is not known": {"source": "A.B", "format": "XLS", "to": "a@b.example"},
        "exactly one destination": {"source": "A.B", "to": "a@b.example", "sftp": "partner"},
        '"where" holds ";"': {"source": "A.B", "to": "a@b.example", "where": "1=1; DROP TABLE A.B"},
        "closes a parenthesis never opened": {"source": "A.B", "to": "a@b.example", "where": "1=1) INTO CSV AT 'x'"},
        "holds a comment": {"source": "A.B", "to": "a@b.example", "where": "1=1 -- rest"},
        "is not defined in etc/sendfile.conf": {"source": "A.B", "sftp": "nowhere"},
        "not a mail address": {"source": "A.B", "to": "root"},
        "unknown field(s) colums": {"source": "A.B", "to": "a@b.example", "colums": "x"},
    }
    for expected, request in cases.items():
        with pytest.raises(WireError, match=re.escape(expected)):
            sender.send(**request)
    reply = sender.send(source="NOPE.MISSING", to="a@b.example", wait=False)
    assert reply["durable"] is True  # accepted; the export then fails and says why in the log
    sender.procs["sendfile"].wait_log("NOPE.MISSING as CSV, mail to a@b.example) failed: the export failed")


def test_pss_sendfile_from_sql_is_delivered_and_reported(sender_for: SenderFor, tmp_path: Path) -> None:
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        sender = sender_for(**relay.config())
        sender.start("devdb", "sendmail", "sendfile")
        sender.inst.redctl("db_register", "APP1")  # creates REDSYS.PSS_SENDFILE and the REDSYS_SENDFILE connection
        sender.make_view("APP1", "V_SALES", 100, new_schema=False)
        session = sender.inst.db()
        request_id = session.fetchall(
            "SELECT REDSYS.PSS_SENDFILE('APP1', 'APP1.V_SALES', 'ID >= 90', 'CSV', 'ops@example.com', NULL)"
        )[0][0]
        [received] = relay.wait_for(1, 60)
        [attachment] = list(received.message().iter_attachments())
        payload = attachment.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert payload.count(b"\n") == 11  # the header and ten rows
        wait_for(
            lambda: sender.rows(
                f"SELECT * FROM APP1.LOG_MESSAGES WHERE \"SOURCE\" = 'SENDFILE' AND MESSAGE LIKE '%{request_id}: sent%'"
            ),
            30,
            what="the outcome in LOG_MESSAGES",
        )
        with pytest.raises(DatabaseQueryError, match=re.escape("is not defined in etc/sendfile.conf")) as refused:
            session.fetchall("SELECT REDSYS.PSS_SENDFILE('APP1', 'APP1.V_SALES', NULL, 'CSV', NULL, 'nowhere')")
        assert "PSS_SENDFILE" in str(refused.value)


def test_with_sendmail_away_the_request_waits_and_is_delivered_once_it_is_back(
    sender_for: SenderFor, tmp_path: Path
) -> None:
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        sender = sender_for(**relay.config())
        sender.start("devdb", "sendfile")  # SENDMAIL not started yet
        sender.make_view("APP1", "V_LATE", 50)
        reply = sender.send(source="APP1.V_LATE", to="ops@example.com", file_name="late.csv", wait=False)
        sender.procs["sendfile"].wait_log(f"request {reply['id']} not sent (try 1), tried again later: SENDMAIL at")
        sender.start("sendmail")
        [received] = relay.wait_for(1, 60)
        assert [a.get_filename() for a in received.message().iter_attachments()] == ["late.csv"]
        sender.procs["sendfile"].wait_log(f"SENDFILE request {reply['id']}: sent APP1.V_LATE: 50 rows")
        assert not list((sender.paths.tmp / "sendfile").glob("*.json"))  # the spooled request is gone once sent


def test_a_request_accepted_before_a_kill_9_is_delivered_after_the_restart(
    sender_for: SenderFor, tmp_path: Path
) -> None:
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        sender = sender_for(**relay.config())
        sender.start("devdb", "sendfile")  # SENDMAIL away: the request waits in SENDFILE's spool
        sender.make_view("APP1", "V_KEPT", 30)
        reply = sender.send(source="APP1.V_KEPT", to="ops@example.com", file_name="kept.csv", wait=False)
        first = sender.procs.pop("sendfile")
        first.wait_log(f"request {reply['id']} not sent (try 1)")
        os.kill(first.pid, signal.SIGKILL)
        first.close()
        sender.start("sendmail", "sendfile")
        [received] = relay.wait_for(1, 60)
        assert [a.get_filename() for a in received.message().iter_attachments()] == ["kept.csv"]
        assert f"request {reply['id']} from before the start runs again" in sender.log
        sender.procs["sendfile"].wait_log(f"SENDFILE request {reply['id']}: sent")
        assert len(relay.received) == 1


def test_a_request_sent_again_under_its_key_is_delivered_once_also_across_a_stop(
    sender_for: SenderFor, tmp_path: Path
) -> None:
    """A SENDFILE job waits for its delivery on one connection. A stop of SENDFILE cut that wait off with the
    request still spooled: the run failed, its retry sent the request again, and the partner got the file twice.
    A job's requests carry the run's id as their key (a retry keeps it): sent again, the request is the one held,
    or, once that has ended, gets its outcome."""
    with SmtpRelay(tmp_path, "PLAIN") as relay:
        sender = sender_for(**relay.config())
        sender.start("devdb", "sendfile")  # SENDMAIL away: the request waits in SENDFILE's spool
        sender.make_view("APP1", "V_ONCE", 20)
        request = {"source": "APP1.V_ONCE", "to": "ops@example.com", "file_name": "once.csv", "key": "run:0123abc"}
        first = sender.send(**request, wait=False)
        assert sender.send(**request, wait=False)["id"] == first["id"]  # held: not taken twice
        stopped = sender.procs.pop("sendfile")
        stopped.wait_log(f"request {first['id']} not sent (try 1)")
        assert stopped.stop() == 0  # the request stays spooled for the next start
        stopped.close()
        sender.start("sendmail", "sendfile")
        [received] = relay.wait_for(1, 60)
        assert [a.get_filename() for a in received.message().iter_attachments()] == ["once.csv"]
        sender.procs["sendfile"].wait_log(f"SENDFILE request {first['id']}: sent")
        retried = sender.send(**request, wait=True)  # the job's retry, after the first request has ended
        assert retried["id"] == first["id"] and "20 rows" in retried["message"]
        assert len(relay.received) == 1
        assert f"request with key run:0123abc from test is request {first['id']}, delivered before" in sender.log
        # a request that failed keeps no outcome: sent again under its key (a retry), it is carried out again
        failing = {"source": "APP1.NO_SUCH_VIEW", "to": "ops@example.com", "key": "run:4567def", "wait": True}
        failures = []
        for _ in range(2):
            with pytest.raises(WireError, match=r"SENDFILE request (\S+) failed") as failed:
                sender.send(**failing)
            failures.append(str(failed.value))
        ids = [re.search(r"SENDFILE request (\S+) failed", text).group(1) for text in failures]  # type: ignore[union-attr]
        assert ids[0] != ids[1]


def test_an_export_a_killed_sendfile_left_behind_is_removed_at_the_next_start(sender_for: SenderFor) -> None:
    """A SENDFILE killed after a delivery (its outcome kept, the request then ended at the start) or with a request
    later set aside left the export in data/work/sendfile/<id> for good: a whole table, on disk indefinitely."""
    sender = sender_for()
    left = sender.paths.sendfile_work / "20261202-orphan"
    left.mkdir(parents=True)
    (left / "salaries.csv").write_text("ID,AMOUNT\n1,100\n")
    sender.start("devdb", "sendfile")
    work = sender.paths.sendfile_work
    sender.procs["sendfile"].wait_log(f"removed the export request 20261202-orphan left in {work}")
    assert not left.exists()


def test_a_runs_key_is_taken_from_red_pss_own_clients_only(sender_for: SenderFor) -> None:
    """SCHED's SENDFILE runs send their requests under `run:<run id>`. A database session that sent a request under
    such a key first took that run's place: the run got the session's outcome, and its own file was never sent."""
    sender = sender_for()
    sender.start("devdb", "sendfile")
    sender.make_view("APP1", "V_KEY", 5)
    request = {"source": "APP1.V_KEY", "to": "ops@example.com", "file_name": "k.csv", "wait": False}
    with pytest.raises(WireError, match='keys starting "run:" belong to SCHED'):
        sender.send_as_database(key="run:20261202-0001", **request)
    assert sender.send_as_database(key="nightly-export", **request)["id"]  # any other key is the caller's
    assert sender.send(key="run:20261202-0001", **request)["id"]  # SCHED's own client
