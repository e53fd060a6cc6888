"""SCHED as a real daemon: pools of real worker processes, the service port, events, the spooled run log.

These tests need no database: NOOP jobs and file watchers run without one, and the run log waits in its spool
(which is what must happen while the database is away). The database path is covered with devdb in tests/e2e.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from redpss.core.config import Secret, render_config
from redpss.core.db import DbSession, DbSettings
from redpss.core.db.contract import install
from redpss.core.db.sqltext import timestamp
from redpss.core.net import free_port
from redpss.core.paths import InstancePaths
from redpss.core.secret import instance_secret, service_secret
from redpss.core.wire import BlockingClient, Code, WireError
from redpss.devdb.scripts import ScriptContext, register_script, unregister_script
from redpss.devdb.testing import InProcessDevDb
from redpss.sched.service import KILL_GRACE
from tests.support.daemons import DaemonProcess
from tests.support.wait import wait_for


@pytest.fixture
def sched(instance: InstancePaths, tmp_path: Path) -> Iterator[tuple[DaemonProcess, int]]:
    port = free_port()
    instance.config_file.write_text(
        render_config(
            {
                "DEFAULT": {"exa_password": "pw", "exa_connection": f"127.0.0.1:{free_port()}"},
                "redctl": {
                    "sched_service_port": str(port),
                    "sched_default_pool_size": "2",
                    "sched_loader_pool_size": "1",
                    "sched_action_pool_size": "1",
                },
            }
        )
    )
    daemon = DaemonProcess("redpss.sched.service", instance, tmp_path / "sched")
    try:
        daemon.wait_ready()
        yield daemon, port
    finally:
        daemon.close()


def client(instance: InstancePaths, port: int, secret: str | None = None) -> BlockingClient:
    return BlockingClient(("127.0.0.1", port), secret or instance_secret(instance), "test")


_TICKS = itertools.count()


def run(**fields: Any) -> dict[str, Any]:
    """A run request; each a tick of its own (SCHED answers a second submit of one tick with its run in flight)."""
    base = {
        "run_id": uuid.uuid4().hex,
        "kind": "JOB",
        "schema": "APP1",
        "id": 1,
        "name": "NOTHING",
        "job_type": "NOOP",
        "scheduled_at": 1_700_000_000.0 + next(_TICKS),
    }
    return {**base, **fields}


def spool_rows(instance: InstancePaths) -> list[dict[str, Any]]:
    """The run-log rows in SCHED's spool as {"schema", "table", "values"} (the writer's "done" notes left out)."""
    path = instance.tmp / "sched-runlog.spool"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [
        {"schema": r["table"].split(".")[0], "table": r["table"].split(".")[1], "values": r["row"]}
        for r in records
        if "row" in r
    ]


def finished_all(conn: BlockingClient, run_ids: set[str], timeout: float = 30.0) -> dict[str, dict[str, Any]]:
    """The `finished` events of all `run_ids`, whatever order they come in."""
    seen: dict[str, dict[str, Any]] = {}
    while not run_ids <= set(seen):
        event = conn.next_event(timeout)
        if event["event"] == "finished":
            seen[event["run_id"]] = event
    return seen


def loader_worker(conn: BlockingClient, run_id: str) -> int:
    """The pid of the LOADER worker while it carries out `run_id` (0 otherwise)."""
    [loader] = [p for p in conn.request("status")["pools"] if p["pool"] == "LOADER"]
    return next((int(w["pid"]) for w in loader["workers"] if w["run_id"] == run_id), 0)


def loader_pid(conn: BlockingClient) -> int:
    [loader] = [p for p in conn.request("status")["pools"] if p["pool"] == "LOADER"]
    return int(loader["workers"][0]["pid"])


@dataclass
class Hold:
    """EXECUTE SCRIPT REDPSS_TEST.HOLD() in devdb: counts itself in `entered`, then waits for a permit."""

    entered: list[int] = field(default_factory=list)
    permits: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __call__(self, context: ScriptContext) -> int:
        self.entered.append(1)
        while not self.permits.acquire(blocking=False):
            context.sleep(0.02)  # the statement's own pace inside the database, honouring abort and timeout
        return 0


@pytest.fixture
def hold() -> Iterator[Hold]:
    held = Hold()
    register_script("REDPSS_TEST.HOLD", held)
    yield held
    held.permits.release(100)  # whatever still holds ends
    unregister_script("REDPSS_TEST.HOLD")


@dataclass
class DevDbSched:
    daemon: DaemonProcess
    port: int
    devdb: InProcessDevDb


@pytest.fixture
def devdb_sched(instance: InstancePaths, tmp_path: Path) -> Iterator[DevDbSched]:
    """SCHED (pools 2/1/1) on an in-process devdb with REDSYS installed."""
    port = free_port()
    with InProcessDevDb(tmp_path / "devdb", port=free_port()) as devdb:
        instance.config_file.write_text(
            render_config(
                {
                    "DEFAULT": {
                        "exa_connection": devdb.dsn,
                        "exa_username": devdb.user,
                        "exa_password": devdb.password,
                        "exa_encryption": "false",
                        "exa_dbname": "DEVDB",
                    },
                    "redctl": {
                        "sched_service_port": str(port),
                        "sched_default_pool_size": "2",
                        "sched_loader_pool_size": "1",
                        "sched_action_pool_size": "1",
                    },
                }
            )
        )
        settings = DbSettings(dsn=devdb.dsn, user=devdb.user, password=Secret(devdb.password), encryption=False)
        installing = DbSession(settings)
        install(installing)  # SQL jobs commit with their marker in REDSYS.ADM_RUN_COMMIT
        installing.close()
        daemon = DaemonProcess("redpss.sched.service", instance, tmp_path / "sched")
        try:
            daemon.wait_ready()
            yield DevDbSched(daemon, port, devdb)
        finally:
            daemon.close()


def finished(conn: BlockingClient, run_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return finished_all(conn, {run_id}, timeout)[run_id]


def test_ready_status_shows_the_configured_pools_of_live_workers(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = sched
    with client(instance, port) as conn:
        status = conn.request("status")
    sizes = {p["pool"]: (p["size"], len(p["workers"])) for p in status["pools"]}
    assert sizes == {"DEFAULT": (2, 2), "LOADER": (1, 1), "ACTION": (1, 1)}
    pids = [w["pid"] for p in status["pools"] for w in p["workers"]]
    assert len(set(pids)) == 4 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    assert daemon.stop() == 0


def test_noop_runs_finish_and_are_logged_in_the_spool_while_the_database_is_away(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = sched
    with client(instance, port) as conn:
        conn.request("subscribe")
        runs = [run(id=i, pool=pool) for i, pool in enumerate(["DEFAULT", "LOADER", "ACTION"] * 5)]
        for request in runs:
            assert conn.request("submit", run=request)["run_id"] == request["run_id"]
        events = finished_all(conn, {r["run_id"] for r in runs})
    assert {e["status"] for e in events.values()} == {"OK"}
    wait_for(lambda: len(spool_rows(instance)) >= 15, 10, what="15 run-log rows in the spool")
    rows = {r["values"]["RUN_ID"]: r for r in spool_rows(instance)}
    for request in runs:
        row = rows[request["run_id"]]
        assert (row["schema"], row["table"]) == ("APP1", "ADM_JOB_LOG")
        assert row["values"]["STATUS"] == "OK"
        assert row["values"]["POOL"] == request["pool"]
        assert row["values"]["WORKER"].startswith(request["pool"] + "-")
        assert row["values"]["SCHEDULED_AT"].startswith("2023-11-")
    assert daemon.stop() == 0


def test_a_run_started_at_once_is_on_disk_before_its_answer(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A run started at once got its in-flight record later, on SCHED's disk thread: a kill -9 right after the answer
    "started" lost it without a row (JMON was told it started). Every accepted run is now a line of the waiting
    journal before the answer; the journal is append-only, so the line is still there once the run has ended."""
    _daemon, port = sched
    with client(instance, port) as conn:
        conn.request("subscribe")
        request = run(id=7)
        assert conn.request("submit", run=request)["state"] == "started"
        finished_all(conn, {request["run_id"]})
    lines = [json.loads(line) for line in (instance.tmp / "sched-waiting.journal").read_text().splitlines()]
    assert [line.get("request", {}).get("run_id") for line in lines].count(request["run_id"]) == 1
    assert {"done": request["run_id"]} in lines  # and no longer waiting once a worker got it


LEFT_IN_FLIGHT = 40  # more than asyncio's default thread pool has threads on any machine (at most 32)


@pytest.fixture
def sql_runs_left_in_flight(instance: InstancePaths) -> list[str]:
    """In-flight records of SQL runs a killed SCHED left behind: the next start decides each by its commit marker."""
    folder = instance.tmp / "sched-running"
    folder.mkdir(mode=0o700, exist_ok=True)
    run_ids = []
    for number in range(LEFT_IN_FLIGHT):
        request = run(id=100 + number, name=f"LEFT_{number}", job_type="SQL", command="SELECT 1 FROM DUAL")
        record = {"request": request, "started_at": time.time() - 60, "worker": "DEFAULT-1"}
        (folder / f"{request['run_id']}.run").write_text(json.dumps(record))
        run_ids.append(request["run_id"])
    return run_ids


def test_runs_finish_and_are_logged_while_left_over_sql_runs_wait_for_an_absent_database(
    sql_runs_left_in_flight: list[str], sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """Each left-over SQL run waits for the database to read its commit marker. Those waits took every thread of
    the pool the run log writes from: new runs started, and never ended."""
    daemon, port = sched
    with client(instance, port) as conn:
        conn.request("subscribe")
        undecided = f"{LEFT_IN_FLIGHT} run(s) wait for the database to read their commit marker"
        wait_for(lambda: undecided in str(conn.request("ping")["status"]), 10, what="the undecided runs in the status")
        runs = [run(id=i, pool=pool) for i, pool in enumerate(["DEFAULT", "LOADER", "ACTION"] * 3)]
        for request in runs:
            conn.request("submit", run=request)
        events = finished_all(conn, {r["run_id"] for r in runs}, timeout=15)
    assert {e["status"] for e in events.values()} == {"OK"}
    logged = {r["values"]["RUN_ID"] for r in spool_rows(instance)}
    assert {r["run_id"] for r in runs} <= logged  # on disk before their end was told
    assert not logged & set(sql_runs_left_in_flight)  # undecided: no row, and their records stay for the next start
    assert daemon.stop() == 0
    assert len(list((instance.tmp / "sched-running").glob("*.run"))) == LEFT_IN_FLIGHT


def test_jmon_logs_a_refused_batch_of_skipped_ticks_and_sends_the_next_one(
    sched: tuple[DaemonProcess, int], instance: InstancePaths, caplog: pytest.LogCaptureFixture
) -> None:
    """JMON's own sender against the real SCHED: a batch SCHED refuses as bad is said at ERROR (it was dropped
    without a word), and the records behind it still reach the run log."""
    import asyncio  # noqa: PLC0415
    import logging  # noqa: PLC0415
    from collections import deque  # noqa: PLC0415

    from redpss.core.wire import AsyncClient  # noqa: PLC0415
    from redpss.jmon.service import SKIPS_PER_REQUEST, JmonService  # noqa: PLC0415

    _, port = sched
    good = [
        {"kind": "JOB", "schema": "APP1", "id": i, "name": f"J{i}", "scheduled_at": 1_700_000_000.0 + i}
        | {"reason": "MISSED", "message": "JMON was down"}
        for i in range(1, SKIPS_PER_REQUEST + 3)
    ]
    bad = {"kind": "JOB", "schema": "APP1", "id": 0, "scheduled_at": 1_700_000_000.0}  # no reason
    sender = JmonService.__new__(JmonService)  # only the attributes the sender uses
    sender.waiting_skips = deque([bad, *good])
    sender.skip_sender_busy = sender.skips_held = False

    async def send() -> None:
        sender.sched = await AsyncClient.connect_tcp("127.0.0.1", port, instance_secret(instance), "jmon-test")
        try:
            await sender._send_waiting_skips()
        finally:
            await sender.sched.close()

    with caplog.at_level(logging.WARNING, logger="redpss.jmon"):
        asyncio.run(send())
    assert not sender.waiting_skips
    refused = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(refused) == 1 and "refused 500 skipped tick(s)" in refused[0].getMessage()
    assert "bad skip record" in refused[0].getMessage()
    logged = {int(r["values"]["JOB_ID"]) for r in spool_rows(instance) if r["values"].get("SKIP_REASON") == "MISSED"}
    assert logged == set(range(SKIPS_PER_REQUEST, SKIPS_PER_REQUEST + 3))  # the batch after the refused one


def test_skipped_ticks_sent_together_are_all_logged_and_a_bad_record_refuses_the_batch(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = sched
    records = [
        {"kind": "JOB", "schema": "APP1", "id": i, "name": f"J{i}", "scheduled_at": 1_700_000_000.0 + i}
        | {"reason": "OVERLAP", "message": "its previous run is still queued"}
        for i in range(1, 501)
    ]
    with client(instance, port) as conn:
        bad = {"kind": "JOB", "schema": "APP1", "id": 900, "scheduled_at": 1_700_000_000.0}
        with pytest.raises(WireError, match="bad skip record: 'reason'") as refused:
            conn.request("skip", records=[*records[:2], bad])
        assert refused.value.code == "BAD_REQUEST"  # JMON drops (and logs) what is refused so, and resends the rest
        conn.request("skip", records=records)  # what JMON sends: many at once, on disk before the answer
        conn.request("skip", **(records[0] | {"id": 999}))  # one record as the message itself
    rows = [r["values"] for r in spool_rows(instance) if r["values"].get("STATUS") == "SKIPPED"]
    assert sorted(int(r["JOB_ID"]) for r in rows) == [*range(1, 501), 999]
    assert {r["SKIP_REASON"] for r in rows} == {"OVERLAP"}
    assert rows[0]["MESSAGE"] == "its previous run is still queued"


def test_skip_records_sent_again_are_logged_once(sched: tuple[DaemonProcess, int], instance: InstancePaths) -> None:
    """JMON sends what waited again when SCHED answered too late (5 s). Only the newest tick of a job was known as
    logged, so the earlier ticks of the batch got a second SKIPPED row each."""
    _, port = sched
    records = [
        {"kind": "JOB", "schema": "APP1", "id": 7, "name": "J7", "scheduled_at": 1_700_000_000.0 + 60 * n}
        | {"reason": "OVERLAP", "message": "its previous run is still running", "run_id": f"skip-{n}"}
        for n in range(3)
    ]
    with client(instance, port) as conn:
        conn.request("skip", records=records)
        conn.request("skip", records=records)  # the same records again
    rows = [r["values"] for r in spool_rows(instance) if r["values"].get("JOB_ID") == 7]
    assert sorted(r["RUN_ID"] for r in rows) == ["skip-0", "skip-1", "skip-2"]


def test_a_tick_logged_as_skipped_while_its_run_is_in_flight_gets_no_second_row(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """JMON's link to SCHED broke after its submit reached SCHED: SCHED ran the tick, and JMON, without an answer,
    logged it as skipped (SCHED_UNAVAILABLE) too, so the tick had its run's row and a SKIPPED row. SCHED now drops
    a skip record of a tick whose run it has in flight; a skip of the job's next tick is still logged."""
    _, port = sched
    tick = run(id=5, name="HOURLY", pool="LOADER")
    lost = {"kind": "JOB", "schema": "APP1", "id": 5, "name": "HOURLY", "scheduled_at": tick["scheduled_at"]}
    lost |= {"reason": "SCHED_UNAVAILABLE", "message": "SCHED did not take the run: connection reset", "run_id": "x1"}
    overlap = lost | {"scheduled_at": tick["scheduled_at"] + 3600, "reason": "OVERLAP", "run_id": "x2"}
    # a manual start is no tick's run, even at a tick's time: the tick's skip is logged beside it
    manual = run(id=6, name="DAILY", pool="LOADER", trigger="MANUAL")
    beside = lost | {"id": 6, "name": "DAILY", "scheduled_at": manual["scheduled_at"], "run_id": "x3"}
    with client(instance, port) as conn:
        conn.request("subscribe")
        worker = loader_pid(conn)
        os.kill(worker, signal.SIGSTOP)  # the run stays in flight while the skip records arrive
        try:
            conn.request("submit", run=tick)
            wait_for(lambda: loader_worker(conn, tick["run_id"]), 20, what="the tick's run in the LOADER worker")
            conn.request("submit", run=manual)  # queued behind it
            conn.request("skip", records=[lost, overlap, beside])
        finally:
            os.kill(worker, signal.SIGCONT)
        finished_all(conn, {tick["run_id"], manual["run_id"]})
        conn.request("skip", records=[lost])  # sent again (an answer that came too late): still no second row
    logged = [r["values"] for r in spool_rows(instance) if r["values"].get("JOB_ID") in (5, 6)]
    rows = sorted((values["RUN_ID"], values["STATUS"]) for values in logged)
    expected = [(tick["run_id"], "OK"), ("x2", "SKIPPED"), (manual["run_id"], "OK"), ("x3", "SKIPPED")]
    assert rows == sorted(expected), logged


def test_a_reload_with_an_action_pool_beyond_what_jexec_runs_is_refused(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A start refuses an ACTION pool larger than jexec_max_running (JEXEC would refuse the runs beyond it); a reload
    took it without a word. It keeps the previous settings now, saying why."""
    daemon, port = sched
    config = instance.config_file.read_text()
    instance.config_file.write_text(config.replace("sched_action_pool_size = 1", "sched_action_pool_size = 20"))
    os.kill(daemon.pid, signal.SIGHUP)
    daemon.wait_log("reload failed; keeping the previous settings")
    assert "sched_action_pool_size = 20 is more than jexec_max_running = 16" in daemon.log
    with client(instance, port) as conn:
        sizes = {p["pool"]: p["size"] for p in conn.request("status")["pools"]}
    assert sizes["ACTION"] == 1


def test_sched_takes_the_instance_secret_only(sched: tuple[DaemonProcess, int], instance: InstancePaths) -> None:
    """The secrets derived for the services the database reaches (core.secret) do not open SCHED."""
    for service in ("DBLS", "JEXEC", "SENDMAIL", "SENDFILE"):
        with pytest.raises(WireError, match=r"must carry the instance secret$") as refused:
            client(instance, sched[1], service_secret(instance_secret(instance), service))
        assert refused.value.code == Code.AUTH_FAILED


def test_bad_requests_get_errors_that_name_the_problem(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = sched
    with client(instance, port) as conn:
        with pytest.raises(WireError, match="pool must be one of DEFAULT, LOADER, ACTION, not 'FAST'"):
            conn.request("submit", run=run(pool="FAST"))
        with pytest.raises(WireError, match="unknown run fields: colour"):
            conn.request("submit", run=run(colour="red"))
        with pytest.raises(WireError, match="unknown request 'dance'"):
            conn.request("dance")
    with pytest.raises(WireError, match="SCHED: authentication failed"):
        client(instance, port, secret="0" * 64)


def test_a_bad_load_command_fails_with_a_reason_and_is_retried_with_backoff(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = sched
    request = run(job_type="LOAD", command="orders", max_retries=2, retry_delay=0.2)
    with client(instance, port) as conn:
        conn.request("subscribe")
        conn.request("submit", run=request)
        event = finished(conn, request["run_id"])
    assert event["status"] == "FAILED"
    assert event["attempt"] == 3
    assert "LOAD command: 'orders' is not key=value; write it as key=value words, e.g. table=" in event["message"]
    wait_for(lambda: len(spool_rows(instance)) >= 3, 10, what="three attempts in the spool")
    rows = sorted(spool_rows(instance), key=lambda r: r["values"]["ATTEMPT"])
    assert [(r["values"]["ATTEMPT"], r["values"]["RUN_TRIGGER"]) for r in rows] == [
        (1, "SCHEDULE"),
        (2, "RETRY"),
        (3, "RETRY"),
    ]
    # each attempt starts after the previous one ended, and the delay doubles: 0.2 s, then 0.4 s (what SCHED
    # schedules, read from its log: how long the machine took is not what this test is about)
    for earlier, later in itertools.pairwise(rows):
        ended = dt.datetime.fromisoformat(earlier["values"]["ENDED_AT"])
        assert dt.datetime.fromisoformat(later["values"]["STARTED_AT"]) >= ended
    assert daemon.log.count("retry 1 of 2 in 0.2 s") == 1
    assert daemon.log.count("retry 2 of 2 in 0.4 s") == 1


def test_file_watcher_starts_its_target_job(sched: tuple[DaemonProcess, int], instance: InstancePaths) -> None:
    _, port = sched
    (instance.data_input / "orders").mkdir()
    target = {"kind": "JOB", "schema": "APP1", "id": 7, "name": "LOAD_ORDERS", "job_type": "NOOP"}
    watcher = run(
        kind="WATCHER", id=3, name="ORDERS_ARRIVED", condition_type="FILE", command="orders/*.csv", target=target
    )
    with client(instance, port) as conn:
        conn.request("subscribe")
        conn.request("submit", run=watcher)
        assert finished(conn, watcher["run_id"])["message"] == "condition does not hold"
        arrived = instance.data_input / "orders" / "o1.csv"
        arrived.write_text("1,2\n")  # just written: it may still grow, so it does not count yet
        watcher1 = {**watcher, "run_id": uuid.uuid4().hex, "scheduled_at": watcher["scheduled_at"] + 1}  # next check
        conn.request("submit", run=watcher1)
        assert finished(conn, watcher1["run_id"])["message"] == "condition does not hold"
        os.utime(arrived, (time.time() - 3600, time.time() - 3600))  # untouched for an hour: finished
        watcher2 = {**watcher, "run_id": uuid.uuid4().hex, "scheduled_at": watcher["scheduled_at"] + 2}
        conn.request("submit", run=watcher2)
        ends: dict[int, dict[str, Any]] = {}  # the target may end before or after the watcher's own end event
        while set(ends) != {3, 7}:
            if (event := conn.next_event(30))["event"] == "finished" and event["run_id"] != watcher["run_id"]:
                ends[event["id"]] = event
    assert ends[3]["message"] == "condition holds"
    event = ends[7]
    assert event["trigger"] == "WATCHER" and event["status"] == "OK" and event["origin"] == "sched"
    wait_for(lambda: any(r["values"].get("TARGET_RUN_ID") for r in spool_rows(instance)), 10, what="watcher row")
    row = next(r for r in spool_rows(instance) if r["values"].get("TARGET_RUN_ID"))
    assert row["table"] == "ADM_WATCHER_LOG" and row["values"]["CONDITION_MET"] is True
    assert row["values"]["TARGET_RUN_ID"] == event["run_id"]


def test_a_file_reached_through_a_link_leading_out_of_the_data_tree_does_not_hold_a_file_condition(
    sched: tuple[DaemonProcess, int], instance: InstancePaths, tmp_path: Path
) -> None:
    """A link made inside a user's folder (data/input/alice/to-carol leading to another user's folder): LOAD refuses
    the files reached through it (they stay, with a WARNING). Counted by the watcher, such a file started a LOAD that
    loaded nothing at every check, for good."""
    _, port = sched
    alice, carol = tmp_path / "alice", tmp_path / "carol"
    alice.mkdir()
    carol.mkdir()
    (carol / "o1.csv").write_text("1,2\n")
    os.utime(carol / "o1.csv", (time.time() - 3600, time.time() - 3600))  # settled
    (instance.data_input / "alice").symlink_to(alice)  # a user's link, as redftp_useradd makes it
    (alice / "to-carol").symlink_to(carol)
    target = {"kind": "JOB", "schema": "APP1", "id": 7, "name": "LOAD_ORDERS", "job_type": "NOOP"}
    watcher = run(kind="WATCHER", id=4, name="LINKED", condition_type="FILE", command="alice/*/*.csv", target=target)
    with client(instance, port) as conn:
        conn.request("subscribe")
        conn.request("submit", run=watcher)
        assert finished(conn, watcher["run_id"])["message"] == "condition does not hold"


def test_a_suspended_instance_starts_no_retry_and_the_run_log_says_why(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = sched
    failing = run(pool="LOADER", job_type="LOAD", command="orders", max_retries=2, retry_delay=0.1)
    with client(instance, port) as conn:
        conn.request("subscribe")
        worker = loader_pid(conn)
        os.kill(worker, signal.SIGSTOP)  # holds the first attempt until the instance is suspended
        try:
            conn.request("submit", run=failing)
            wait_for(lambda: loader_worker(conn, failing["run_id"]), 20, what="the first attempt in the LOADER worker")
            instance.suspend_marker.touch()
        finally:
            os.kill(worker, signal.SIGCONT)
        event = finished(conn, failing["run_id"])
    assert (event["status"], event["attempt"], event["trigger"]) == ("SKIPPED", 2, "RETRY")
    assert event["message"] == "retry 1 of 2 not started: the instance is suspended"

    def attempts() -> list[dict[str, Any]]:
        logged = [r["values"] for r in spool_rows(instance) if r["values"]["RUN_ID"] == failing["run_id"]]
        return sorted(logged, key=lambda values: values["ATTEMPT"]) if len(logged) == 2 else []

    first, retry = wait_for(attempts, 10, what="both attempts in the spool")
    assert (first["ATTEMPT"], first["STATUS"]) == (1, "FAILED")
    assert (retry["ATTEMPT"], retry["STATUS"], retry["SKIP_REASON"]) == (2, "SKIPPED", "SUSPENDED")
    assert (retry["RUN_TRIGGER"], retry["POOL"], retry["MESSAGE"]) == ("RETRY", "LOADER", event["message"])
    assert "STARTED_AT" not in retry  # it never began
    assert daemon.stop() == 0
    assert "retry 2 of 2" not in daemon.log
    assert "retry 1 of 2 not started: the instance is suspended; `redctl resume` lets runs start again" in daemon.log
    assert not list((instance.tmp / "sched-running").glob("*.run"))


def orders_watcher(instance: InstancePaths) -> dict[str, Any]:
    """A FILE watcher run for the LOADER pool whose condition holds (a complete file in input/orders/); its target is
    APP1.LOAD_ORDERS (7), a NOOP job."""
    (instance.data_input / "orders").mkdir()
    arrived = instance.data_input / "orders" / "o1.csv"
    arrived.write_text("1,2\n")
    os.utime(arrived, (time.time() - 3600, time.time() - 3600))  # complete: the watcher's condition holds
    target = {"kind": "JOB", "schema": "APP1", "id": 7, "name": "LOAD_ORDERS", "job_type": "NOOP"}
    return run(
        kind="WATCHER", id=3, name="ORDERS", pool="LOADER", condition_type="FILE", command="orders/*.csv", target=target
    )


def test_a_watcher_that_ends_while_sched_stops_says_its_target_was_not_started(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """Its condition held, but a stopping SCHED starts nothing: the watcher's message said only "condition holds"."""
    daemon, port = sched
    watcher = orders_watcher(instance)
    with client(instance, port) as conn:
        conn.request("subscribe")
        worker = loader_pid(conn)
        os.kill(worker, signal.SIGSTOP)  # the watcher runs until SCHED is stopping
        try:
            conn.request("submit", run=watcher)
            wait_for(lambda: loader_worker(conn, watcher["run_id"]), 20, what="the watcher in the LOADER worker")
            daemon.process.send_signal(signal.SIGTERM)
            daemon.wait_log("waiting for 1 running")
        finally:
            os.kill(worker, signal.SIGCONT)
        event = finished(conn, watcher["run_id"])
    assert event["message"] == (
        "condition holds; target APP1.LOAD_ORDERS not started: SCHED is stopping (the condition is checked again "
        "after it)"
    )
    assert daemon.process.wait(60) == 0


def test_a_suspended_instance_starts_no_watcher_target_nor_queued_run_but_a_manual_start(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A watcher that ends while the instance is suspended starts no target; runs waiting in a queue do not start
    either, except a manual one (JMON submits it while suspended only when the operator forced it)."""
    daemon, port = sched
    watcher = orders_watcher(instance)
    scheduled = run(id=8, name="SCHEDULED", pool="LOADER")
    manual = run(id=9, name="MANUAL", pool="LOADER", trigger="MANUAL")
    with client(instance, port) as conn:
        conn.request("subscribe")
        worker = loader_pid(conn)
        os.kill(worker, signal.SIGSTOP)  # the watcher runs, the other two wait in the queue, until suspended
        try:
            conn.request("submit", run=watcher)
            wait_for(lambda: loader_worker(conn, watcher["run_id"]), 20, what="the watcher in the LOADER worker")
            assert conn.request("submit", run=scheduled)["state"] == "queued"
            assert conn.request("submit", run=manual)["state"] == "queued"
            instance.suspend_marker.touch()
        finally:
            os.kill(worker, signal.SIGCONT)
        events = finished_all(conn, {watcher["run_id"], scheduled["run_id"], manual["run_id"]})
    assert events[watcher["run_id"]]["message"] == (
        "condition holds; target APP1.LOAD_ORDERS not started: the instance is suspended"
    )
    assert events[scheduled["run_id"]]["status"] == "SKIPPED"
    assert events[scheduled["run_id"]]["message"] == "not started: the instance was suspended while this run waited"
    assert events[manual["run_id"]]["status"] == "OK"

    def skipped() -> list[dict[str, Any]]:
        rows = [r["values"] for r in spool_rows(instance) if r["values"].get("STATUS") == "SKIPPED"]
        return sorted(rows, key=lambda values: values["JOB_ID"]) if len(rows) == 2 else []

    target_row, queued_row = wait_for(skipped, 10, what="two SKIPPED rows in the spool")
    assert (target_row["JOB_ID"], target_row["RUN_TRIGGER"], target_row["SKIP_REASON"]) == (7, "WATCHER", "SUSPENDED")
    assert "watcher APP1.ORDERS" in target_row["MESSAGE"]
    assert (queued_row["RUN_ID"], queued_row["SKIP_REASON"]) == (scheduled["run_id"], "SUSPENDED")
    assert daemon.stop() == 0


def test_a_watcher_starts_no_second_run_of_a_job_in_flight_and_a_queued_one_waits_for_its_end(
    devdb_sched: DevDbSched, hold: Hold, instance: InstancePaths
) -> None:
    """A FILE watcher sees its file until the LOAD it started has archived it: firing again meanwhile must start no
    second run (OVERLAP_POLICY SKIP) or let it wait for the first run's end (QUEUE); never both at once."""
    devdb = devdb_sched.devdb
    settings = DbSettings(dsn=devdb.dsn, user=devdb.user, password=Secret(devdb.password), encryption=False)
    session = DbSession(settings)
    install(session, register=["APP1"])  # the run log's tables of APP1
    (instance.data_input / "orders").mkdir()
    arrived = instance.data_input / "orders" / "o1.csv"
    arrived.write_text("1,2\n")
    os.utime(arrived, (time.time() - 3600, time.time() - 3600))  # complete: the watcher's condition holds
    job = {"kind": "JOB", "schema": "APP1", "id": 7, "name": "LOAD_ORDERS", "job_type": "SQL"}
    job["command"] = "EXECUTE SCRIPT REDPSS_TEST.HOLD()"

    def watcher(policy: str) -> dict[str, Any]:
        target = {**job, "overlap_policy": policy}
        return run(kind="WATCHER", id=3, name="ORDERS", condition_type="FILE", command="orders/*.csv", target=target)

    def default_pool(conn: BlockingClient) -> tuple[int, int]:
        pool = next(p for p in conn.request("status")["pools"] if p["pool"] == "DEFAULT")
        return int(pool["busy"]), int(pool["queued"])

    with client(instance, devdb_sched.port) as conn:
        conn.request("subscribe")
        first = run(**job)  # the job's scheduled run, held in the database
        conn.request("submit", run=first)
        wait_for(lambda: len(hold.entered) == 1, 20, what="the job's run holding in devdb")
        skipped = watcher("SKIP")
        conn.request("submit", run=skipped)
        message = finished(conn, skipped["run_id"])["message"]
        assert message == (
            f"condition holds; target APP1.LOAD_ORDERS not started: its run {first['run_id']} is still in flight "
            "(OVERLAP_POLICY SKIP)"
        )
        queued = watcher("QUEUE")
        conn.request("submit", run=queued)
        events: list[dict[str, Any]] = []
        while not events or events[-1].get("run_id") != queued["run_id"] or events[-1]["event"] != "finished":
            events.append(conn.next_event(30))
        message = events[-1]["message"]
        assert message == f"condition holds; target waits for run {first['run_id']} of its job (OVERLAP_POLICY QUEUE)"
        # JMON hears of the waiting run at once, before the watcher's end: it counts the job as busy from then on
        [waiting] = [e for e in events if e["event"] == "queued"]
        assert (waiting["id"], waiting["trigger"], waiting["origin"]) == (7, "WATCHER", "sched")
        assert default_pool(conn) == (1, 1)  # one of the two workers is idle, and the target waits all the same
        again = watcher("QUEUE")
        conn.request("submit", run=again)
        assert "is waiting to start" in finished(conn, again["run_id"])["message"]  # one waiting run is enough
        assert len(hold.entered) == 1 and default_pool(conn) == (1, 1)
        hold.permits.release(1)
        started: dict[str, Any] = {}
        while not started:
            event = conn.next_event(30)
            if event["event"] == "started" and event["id"] == 7:
                started = event
        assert started["trigger"] == "WATCHER" and started["origin"] == "sched"
        assert started["run_id"] == waiting["run_id"]
        wait_for(lambda: len(hold.entered) == 2, 20, what="the waiting run holding once the first had ended")
        hold.permits.release(1)
        assert finished(conn, started["run_id"])["status"] == "OK"

    def job_rows() -> list[dict[str, Any]]:
        jobs = session.fetch_dicts("SELECT RUN_ID, RUN_TRIGGER, STATUS, SKIP_REASON, MESSAGE FROM APP1.ADM_JOB_LOG")
        return jobs if len(jobs) == 4 else []

    jobs = {row["RUN_ID"]: row for row in wait_for(job_rows, 20, what="four rows in APP1.ADM_JOB_LOG")}
    assert jobs[first["run_id"]]["STATUS"] == jobs[started["run_id"]]["STATUS"] == "OK"
    assert jobs[started["run_id"]]["RUN_TRIGGER"] == "WATCHER"
    skips = [row for row in jobs.values() if row["STATUS"] == "SKIPPED"]
    assert [(row["RUN_TRIGGER"], row["SKIP_REASON"]) for row in skips] == [("WATCHER", "OVERLAP")] * 2
    assert all("watcher APP1.ORDERS" in row["MESSAGE"] for row in skips)

    def watcher_rows() -> list[dict[str, Any]]:
        rows = session.fetch_dicts("SELECT RUN_ID, TARGET_RUN_ID FROM APP1.ADM_WATCHER_LOG")
        return rows if len(rows) == 3 else []

    watched = wait_for(watcher_rows, 20, what="three rows in APP1.ADM_WATCHER_LOG")
    targets = {row["RUN_ID"]: row["TARGET_RUN_ID"] for row in watched}
    assert targets == {skipped["run_id"]: None, queued["run_id"]: started["run_id"], again["run_id"]: None}
    session.close()


def test_failing_watcher_executor_is_reported_blocked_with_an_error_row(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    _, port = sched
    watcher = run(kind="WATCHER", id=4, name="BAD", condition_type="FILE", command="/etc/*")
    with client(instance, port) as conn:
        conn.request("subscribe")
        conn.request("submit", run=watcher)
        while (event := conn.next_event(30))["event"] != "watcher_blocked":
            pass
    assert event["id"] == 4
    assert "must be a glob relative to data/input" in event["message"]
    wait_for(lambda: any(r["table"] == "ADM_WATCHER_EXEC_ERROR" for r in spool_rows(instance)), 10, what="error row")


def test_a_query_watcher_the_database_cannot_answer_now_fails_without_being_blocked(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """A QUERY watcher run while the database was away (a night's restart) was an executor error: an error row, and
    from then on every tick SKIPPED as BLOCKED until an operator reset it. Only a condition that cannot be evaluated
    as written blocks its watcher; this one fails and the next tick asks again."""
    _, port = sched
    watcher = run(kind="WATCHER", id=5, name="ORDERS_READY", condition_type="QUERY", command="SELECT 1 FROM DUAL")
    with client(instance, port) as conn:
        conn.request("subscribe")
        conn.request("submit", run=watcher)
        events = []
        while (event := conn.next_event(30))["event"] != "finished":
            events.append(event["event"])
    assert event["status"] == "FAILED" and "is not reachable" in event["message"], event
    assert "watcher_blocked" not in events

    def watcher_log() -> list[dict[str, Any]]:
        return [r for r in spool_rows(instance) if r["table"] == "ADM_WATCHER_LOG"]

    assert wait_for(watcher_log, 10, what="the watcher's run in the spool")[0]["values"]["STATUS"] == "FAILED"
    assert not [r for r in spool_rows(instance) if r["table"] == "ADM_WATCHER_EXEC_ERROR"]


def test_a_worker_that_dies_while_idle_is_replaced(sched: tuple[DaemonProcess, int], instance: InstancePaths) -> None:
    daemon, port = sched

    def loader_pid() -> int:
        with client(instance, port) as conn:
            pools = conn.request("status")["pools"]
        return int(next(p for p in pools if p["pool"] == "LOADER")["workers"][0]["pid"])

    old = loader_pid()
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: (pid := loader_pid()) != old and pid, 20, what="a replacement LOADER worker")
    assert Path(f"/proc/{new}").exists()
    daemon.wait_log("LOADER-1[")
    assert "starting a replacement" in daemon.log


def test_a_run_queued_behind_one_that_times_out_runs_on_the_replacement_worker(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    """Between a run's timeout and the kill of its worker the master awaits; the worker looked idle meanwhile, so the
    next run of its pool could be handed to it, died with it, and was never logged nor finished (its job then
    skipped as OVERLAP until SCHED restarted)."""
    daemon, port = sched
    with client(instance, port) as conn:
        conn.request("subscribe")
        stuck = loader_pid(conn)
        os.kill(stuck, signal.SIGSTOP)  # it answers nothing: the master kills it past the run's timeout
        first = run(pool="LOADER", timeout=1, name="HANGS")
        queued = [run(pool="LOADER", id=2 + n, name=f"NEXT_{n}") for n in range(3)]
        for each in (first, *queued):
            conn.request("submit", run=each)
        events = finished_all(conn, {first["run_id"], *(q["run_id"] for q in queued)}, timeout=60)
        timed_out = events[first["run_id"]]
        assert timed_out["status"] == "TIMEOUT"
        # it ran from its start to its kill: the run log showed it starting at the kill, lasting no time
        assert timed_out["ended_at"] - timed_out["started_at"] >= 1 + KILL_GRACE - 0.5
        assert [events[q["run_id"]]["status"] for q in queued] == ["OK"] * 3
        assert loader_pid(conn) != stuck
    assert "is not in list" not in daemon.log + daemon.stderr
    assert daemon.log.count("starting a replacement") == 1


def test_a_worker_whose_session_drops_mid_run_fails_the_run_with_the_reason_and_keeps_serving(
    devdb_sched: DevDbSched, hold: Hold, instance: InstancePaths
) -> None:
    daemon, devdb = devdb_sched.daemon, devdb_sched.devdb
    with client(instance, devdb_sched.port) as conn:
        conn.request("subscribe")
        long = run(pool="LOADER", job_type="SQL", command="EXECUTE SCRIPT REDPSS_TEST.HOLD()")
        conn.request("submit", run=long)
        pid = wait_for(lambda: loader_worker(conn, long["run_id"]), 20, what="the run in the LOADER worker")
        wait_for(lambda: hold.entered, 20, what="the job's statement running in devdb")
        devdb.drop_sessions()
        event = finished(conn, long["run_id"])
        assert event["status"] == "FAILED"
        assert "not reachable" in event["message"]
        again = run(pool="LOADER", job_type="SQL", command="SELECT 1 FROM DUAL")
        conn.request("submit", run=again)
        assert finished(conn, again["run_id"])["status"] == "OK"
        assert loader_pid(conn) == pid  # the same worker, reconnected
        devdb.drop_sessions()  # now while the worker is idle: its next run finds the session gone
        after_idle = run(pool="LOADER", job_type="SQL", command="SELECT 1 FROM DUAL")
        conn.request("submit", run=after_idle)
        event = finished(conn, after_idle["run_id"])
        assert (event["status"], event["message"]) == ("OK", "1 row(s)")
        assert loader_pid(conn) == pid
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log + daemon.stderr
    [failed] = [line for line in daemon.log.splitlines() if ": FAILED " in line]  # one line for the lost run
    assert long["run_id"] in failed and "not reachable" in failed


def test_a_sql_run_whose_commit_marker_cannot_be_read_is_not_retried_and_says_its_outcome_is_not_known(
    devdb_sched: DevDbSched, hold: Hold, instance: InstancePaths
) -> None:
    """A worker lost mid-run leaves the outcome to the commit marker. When the marker could not be read (its table
    gone, a privilege taken), the run counted as not committed and was retried: work that did commit, done twice."""
    daemon, devdb = devdb_sched.daemon, devdb_sched.devdb
    with client(instance, devdb_sched.port) as conn:
        conn.request("subscribe")
        job = run(
            pool="LOADER", job_type="SQL", command="EXECUTE SCRIPT REDPSS_TEST.HOLD()", max_retries=1, retry_delay=0.1
        )
        conn.request("submit", run=job)
        pid = wait_for(lambda: loader_worker(conn, job["run_id"]), 20, what="the run in the LOADER worker")
        wait_for(lambda: hold.entered, 20, what="the job's statement running in devdb")
        dba = devdb.connect()
        dba.execute("DROP TABLE REDSYS.ADM_RUN_COMMIT")
        dba.close()
        os.kill(pid, signal.SIGKILL)  # the worker ends without an answer: only the marker could tell
        hold.permits.release(10)  # a retry, if one were started, would not wait
        event = finished(conn, job["run_id"])
        assert event["status"] == "FAILED"
        assert "NOT KNOWN" in event["message"] and "not retried" in event["message"], event["message"]
    assert daemon.stop() == 0
    assert "retry 1 of 1" not in daemon.log
    assert "cannot read the commit marker of run " + job["run_id"] in daemon.log


def test_a_pool_shrunk_by_a_reload_lets_its_runs_finish_and_then_runs_no_more_at_once_than_its_size(
    devdb_sched: DevDbSched, hold: Hold, instance: InstancePaths
) -> None:
    daemon = devdb_sched.daemon

    def default_pool(conn: BlockingClient) -> dict[str, Any]:
        return dict(next(p for p in conn.request("status")["pools"] if p["pool"] == "DEFAULT"))

    holding = "EXECUTE SCRIPT REDPSS_TEST.HOLD()"
    with client(instance, devdb_sched.port) as conn:
        conn.request("subscribe")
        first = [run(job_type="SQL", command=holding) for _ in range(2)]
        for request in first:
            conn.request("submit", run=request)
        wait_for(lambda: len(hold.entered) == 2, 20, what="two runs holding in devdb")
        config = instance.config_file.read_text()
        instance.config_file.write_text(config.replace("sched_default_pool_size = 2", "sched_default_pool_size = 1"))
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_log("sched reloaded")
        later = [run(job_type="SQL", command=holding) for _ in range(2)]
        for request in later:
            conn.request("submit", run=request)
        pool = default_pool(conn)
        assert (pool["size"], pool["busy"], pool["queued"]) == (1, 2, 2)  # running runs are not cut short
        hold.permits.release(2)
        assert {e["status"] for e in finished_all(conn, {r["run_id"] for r in first}).values()} == {"OK"}
        wait_for(lambda: len(hold.entered) == 3, 20, what="one of the later runs holding")
        wait_for(lambda: len(default_pool(conn)["workers"]) == 1, 20, what="the pool down to one worker")
        pool = default_pool(conn)
        assert (pool["busy"], pool["queued"]) == (1, 1)
        hold.permits.release(2)
        assert {e["status"] for e in finished_all(conn, {r["run_id"] for r in later}).values()} == {"OK"}
    assert len(hold.entered) == 4
    daemon.wait_log("ended: the pool shrank")


def test_sighup_applies_pool_sizes_and_log_level_and_names_what_needs_a_restart(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = sched

    def workers(conn: BlockingClient) -> dict[str, list[int]]:
        return {p["pool"]: [int(w["pid"]) for w in p["workers"]] for p in conn.request("status")["pools"]}

    with client(instance, port) as conn:
        before = workers(conn)
        config = instance.config_file.read_text()
        changed = (
            config.replace("sched_default_pool_size = 2", "sched_default_pool_size = 3")
            .replace("sched_action_pool_size = 1", "sched_action_pool_size = 2")
            .replace("sched_loader_pool_size = 1", "sched_loader_pool_size = 1\nlog_level = DEBUG")
            .replace(f"sched_service_port = {port}", f"sched_service_port = {free_port()}")
        )
        assert changed.count("pool_size = ") == 3 and changed != config
        instance.config_file.write_text(changed)
        os.kill(daemon.pid, signal.SIGHUP)
        daemon.wait_log("sched reloaded")
        sizes = {"DEFAULT": 3, "LOADER": 1, "ACTION": 2}
        wait_for(lambda: {p: len(pids) for p, pids in workers(conn).items()} == sizes, 30, what="the new pool sizes")
        # the log level reaches the workers by replacing them (they were idle): no worker of before is left
        wait_for(
            lambda: (
                not {pid for pids in workers(conn).values() for pid in pids}
                & {pid for pids in before.values() for pid in pids}
            ),
            30,
            what="every worker replaced",
        )
        assert {p: len(pids) for p, pids in workers(conn).items()} == sizes
        run_ok = run()
        conn.request("subscribe")
        conn.request("submit", run=run_ok)
        assert finished(conn, run_ok["run_id"])["status"] == "OK"  # still served on the port it started with
    assert (
        "reload applied: [redctl] log_level: 'INFO' -> 'DEBUG'; [redctl] sched_default_pool_size: 2 -> 3" in daemon.log
    )
    assert "[redctl] sched_action_pool_size: 1 -> 2" in daemon.log
    assert f"reload: [redctl] sched_service_port: {port} -> " in daemon.log
    assert "take effect only after a restart of SCHED" in daemon.log
    [queued] = [line for line in daemon.log.splitlines() if run_ok["run_id"] in line and " DEBUG " in line]
    assert "from jmon" in queued  # the master logs at the new level


@pytest.fixture
def old_format_spool(instance: InstancePaths) -> None:
    """A run-log spool as SCHED wrote it before the shared row writer: {"schema", "table", "values"} lines."""
    row = {"schema": "APP1", "table": "ADM_JOB_LOG", "values": {"RUN_ID": "from-before", "STATUS": "OK"}}
    (instance.tmp / "sched-runlog.spool").write_text(json.dumps(row) + "\n")


def test_a_run_log_spool_of_the_earlier_format_is_converted_not_lost(
    old_format_spool: None, sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, _ = sched
    [row] = spool_rows(instance)
    assert row == {"schema": "APP1", "table": "ADM_JOB_LOG", "values": {"RUN_ID": "from-before", "STATUS": "OK"}}
    assert "1 row(s) of the old spool" in daemon.log
    assert "unreadable" not in daemon.log


def test_sighup_with_a_broken_config_keeps_the_running_settings_and_says_why(
    sched: tuple[DaemonProcess, int], instance: InstancePaths
) -> None:
    daemon, port = sched
    config = instance.config_file.read_text()
    instance.config_file.write_text(config.replace("sched_default_pool_size = 2", "sched_default_pool_size = many"))
    os.kill(daemon.pid, signal.SIGHUP)
    daemon.wait_log("reload failed; keeping the previous settings")
    assert "sched_default_pool_size" in daemon.log.split("reload failed")[1]  # the message names the key
    assert "Traceback" not in daemon.log
    with client(instance, port) as conn:
        sizes = {p["pool"]: p["size"] for p in conn.request("status")["pools"]}
    assert sizes == {"DEFAULT": 2, "LOADER": 1, "ACTION": 1}


def test_a_tick_whose_row_waits_in_the_spool_is_not_run_or_skipped_again_when_handed_over_again(
    sched: tuple[DaemonProcess, int], instance: InstancePaths, tmp_path: Path
) -> None:
    """A restarted JMON continues each schedule from the newest SCHEDULED_AT in the database; a tick whose row still
    waits in SCHED's spool (here: no database at all) is found due again and handed over a second time. It was run
    twice; now SCHED answers that it is logged, whether it kept running meanwhile or was restarted too."""
    daemon, port = sched
    hourly = run(id=7, name="HOURLY")
    skipped: dict[str, Any] = {
        "kind": "JOB",
        "schema": "APP1",
        "id": 8,
        "name": "SKIPPED",
        "scheduled_at": 1_700_100_000.0,
    }
    with client(instance, port) as conn:
        conn.request("subscribe")
        conn.request("submit", run=hourly)
        assert finished(conn, hourly["run_id"])["status"] == "OK"
        conn.request("skip", records=[skipped | {"reason": "OVERLAP", "message": "its previous run is running"}])

        def hand_over_again(conn: BlockingClient) -> None:
            with pytest.raises(WireError, match=r"is logged already \(run [0-9a-f]{32}, OK\); not started again"):
                conn.request("submit", run=hourly | {"run_id": uuid.uuid4().hex})
            with pytest.raises(WireError, match=r"is logged already \(run [0-9a-f]{32}, SKIPPED\)"):
                conn.request("submit", run=run(id=8, name="SKIPPED", scheduled_at=skipped["scheduled_at"]))
            conn.request("skip", records=[hourly | {"reason": "MISSED", "message": "JMON was down"}])  # no 2nd row

        hand_over_again(conn)
        # the next tick and a manual start of the same one are runs of their own
        later = run(id=7, name="HOURLY", scheduled_at=hourly["scheduled_at"] + 3600)
        manual = hourly | {"run_id": uuid.uuid4().hex, "trigger": "MANUAL"}
        for request in (later, manual):
            conn.request("submit", run=request)
        finished_all(conn, {later["run_id"], manual["run_id"]})
    assert _jmon_hands_over(instance, port, later)["reason"] == "LOGGED"  # and JMON adds no row of its own
    assert daemon.stop() == 0
    restarted = DaemonProcess("redpss.sched.service", instance, tmp_path / "sched-again")
    try:
        restarted.wait_ready()
        with client(instance, port) as conn:  # the newest tick of each job, read back from the spool
            with pytest.raises(WireError, match=r"is logged already \(run [0-9a-f]{32}, OK\)"):
                conn.request("submit", run=later | {"run_id": uuid.uuid4().hex})
            with pytest.raises(WireError, match=r"is logged already \(run [0-9a-f]{32}, SKIPPED\)"):
                conn.request("submit", run=run(id=8, name="SKIPPED", scheduled_at=skipped["scheduled_at"]))
    finally:
        restarted.close()
    logged = sorted(
        (int(r["values"]["JOB_ID"]), r["values"]["SCHEDULED_AT"], r["values"]["STATUS"], r["values"]["RUN_TRIGGER"])
        for r in spool_rows(instance)
    )
    stamp = [timestamp(at) for at in (hourly["scheduled_at"], later["scheduled_at"], skipped["scheduled_at"])]
    assert logged == [
        (7, stamp[0], "OK", "MANUAL"),
        (7, stamp[0], "OK", "SCHEDULE"),
        (7, stamp[1], "OK", "SCHEDULE"),
        (8, stamp[2], "SKIPPED", "SCHEDULE"),
    ]


def _jmon_hands_over(instance: InstancePaths, port: int, request: dict[str, Any]) -> dict[str, Any]:
    """JMON's hand-over of `request`'s tick to the real SCHED (only the attributes it uses); SCHED's answer. Asserts
    that JMON queued no skipped tick for it."""
    import asyncio  # noqa: PLC0415

    from redpss.core.config import load_config  # noqa: PLC0415
    from redpss.core.wire import AsyncClient  # noqa: PLC0415
    from redpss.jmon.schedule import Definition, Tick  # noqa: PLC0415
    from redpss.jmon.service import JmonService  # noqa: PLC0415

    jmon = JmonService(load_config(instance.config_file), instance)  # not started: only its hand-over is used
    fields = {name: request[name] for name in ("kind", "schema", "id", "name", "job_type")}
    definition = Definition("JOB", request["schema"], request["id"], request["name"], True, 3600.0, None,
                            payload=fields)  # fmt: skip

    async def hand_over() -> dict[str, Any]:
        jmon.sched = await AsyncClient.connect_tcp("127.0.0.1", port, instance_secret(instance), "jmon-test")
        try:
            return await jmon._handle_tick(Tick(definition.key, definition, request["scheduled_at"], "RUN"))
        finally:
            await jmon.sched.close()

    reply = asyncio.run(hand_over())
    assert not jmon.waiting_skips
    return reply
