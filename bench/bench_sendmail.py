"""SENDMAIL: mails/s accepted (spooled with fsync, then acknowledged) beside the same relay fed by smtplib, same run.

Ours: the real SENDMAIL daemon (`python -m redpss.mail.service`) of a temporary instance, relaying to a local relay
(aiosmtpd, plain SMTP on loopback: the relay under test is the same for both sides). `--clients` threads, each with
the stdlib client the UDF scripts embed (redpss/sql/udf/pss_client.py), send `--mails` mails in all, one request at
a time; a mail counts as accepted when its durable acknowledgement arrived (file and folder fsync'd). Also shown: the
rate at which the relay received them (SENDMAIL relaying in the background, one SMTP session per round).
Anchor: smtplib feeding the same relay directly (the same number of threads, one SMTP session each), no spool; each
mail counts when the relay's 250 arrived. Both sides send the same ~1 KB message (subject, body).

    .venv/bin/python bench/bench_sendmail.py [--mails 2000] [--clients 4] [--rounds 3]

The fsync dominates ours: on a disk with a volatile cache it is far cheaper than on one that honours flushes; the
figures are for this machine's disk, compare the ratio within one run.
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.daemons import bench_instance, start_pss_daemon  # noqa: E402
from redpss.core.net import free_port  # noqa: E402
from redpss.demo.mail import SmtpRelay  # noqa: E402
from redpss.sql.udf.pss_client import PssClient  # noqa: E402

BODY = "The nightly load finished.\n" + "detail line of the report\n" * 36  # ~1 KB


def in_threads(clients: int, count: int, send: Callable[[int, int], None]) -> float:
    """Run send(client, n_mails) in `clients` threads started together; seconds until the last one finished."""
    share = count // clients
    start = threading.Barrier(clients + 1)
    failures: list[BaseException] = []

    def run(client: int) -> None:
        start.wait()
        try:
            send(client, share)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"a sender failed: {failures[0]!r}")
    return time.perf_counter() - began


def anchor(relay: SmtpRelay, count: int, clients: int) -> float:
    def send(client: int, share: int) -> None:
        with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
            for number in range(share):
                message = (
                    f"From: redsys@bench.example\r\nTo: ops@example.com\r\nSubject: mail {client}-{number}\r\n\r\n"
                )
                smtp.sendmail("redsys@bench.example", ["ops@example.com"], message + BODY.replace("\n", "\r\n"))

    before = len(relay.received)
    seconds = in_threads(clients, count, send)
    if len(relay.received) - before != count // clients * clients:
        raise SystemExit("the relay did not receive every mail of the anchor")
    return seconds


def ours(relay: SmtpRelay, count: int, clients: int, workdir: Path) -> tuple[float, float]:
    """(seconds until every mail was acknowledged, seconds until the relay had them all)."""
    port = free_port()
    redctl = {**relay.config("redsys@bench.example"), "sendmail_port": str(port)}
    paths, secret = bench_instance(workdir / "redsys", redctl)
    daemon = start_pss_daemon("redpss.mail.service", paths, port, secret)
    try:

        def send(client: int, share: int) -> None:
            with PssClient("127.0.0.1", port, secret, client=f"bench {client}") as pss:
                for number in range(share):
                    pss.send_mail("ops@example.com", f"mail {client}-{number}", BODY)

        expected = len(relay.received) + count // clients * clients
        began = time.perf_counter()
        accepted = in_threads(clients, count, send)
        relay.wait_for(expected, 600)
        return accepted, time.perf_counter() - began
    finally:
        daemon.terminate()
        daemon.wait(60)
        shutil.rmtree(paths.home.parent.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="anchor and SENDMAIL in turn, N times; medians shown")
    args = parser.parse_args()
    print(f"{args.mails:,} mails of ~{len(BODY)} bytes from {args.clients} concurrent senders, plain SMTP relay")
    anchors, accepted, relayed = [], [], []
    with (
        tempfile.TemporaryDirectory(prefix="bench-sendmail-") as temporary,
        SmtpRelay(Path(temporary), "PLAIN") as relay,
    ):
        for number in range(args.rounds):
            anchors.append(anchor(relay, args.mails, args.clients))
            with tempfile.TemporaryDirectory(dir=temporary) as workdir:
                took, done = ours(relay, args.mails, args.clients, Path(workdir))
            accepted.append(took)
            relayed.append(done)
            relay.received.clear()
            print(
                f"  round {number + 1}: SENDMAIL accepted {args.mails / took:8,.0f} mails/s, relayed "
                f"{args.mails / done:8,.0f}/s; smtplib -> relay {args.mails / anchors[-1]:8,.0f} mails/s"
            )
    bare, ours_accepted, ours_relayed = (statistics.median(x) for x in (anchors, accepted, relayed))
    print(f"  SENDMAIL accepted (spooled, fsync'd, acknowledged) {args.mails / ours_accepted:8,.0f} mails/s")
    print(f"  SENDMAIL accepted and relayed to the relay          {args.mails / ours_relayed:8,.0f} mails/s")
    print(f"  smtplib straight to the relay (anchor, no spool)    {args.mails / bare:8,.0f} mails/s")
    print(f"  ratio accepted/anchor: {bare / ours_accepted:.2f}x, relayed/anchor: {bare / ours_relayed:.2f}x")


if __name__ == "__main__":
    main()
