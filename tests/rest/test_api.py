"""The REST API end to end: real gunicorn with TLS on a loopback port, devdb, SCHED and JMON, database users for
each role, driven over HTTPS with httpx; changes are checked in the database and in `redctl show`."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from redpss.rest.openapi import render
from redpss.rest.worker import REQUEST_HEAD_TIMEOUT, TLS_HANDSHAKE_TIMEOUT
from tests.rest.rest_instance import NOBODY, OPERATOR, READER, RestApi, basic, client_context
from tests.support.instance_runner import RunningInstance, add_job, add_watcher
from tests.support.wait import wait_for

pytestmark = pytest.mark.allow_leaks  # the module's instance outlives each test (closed by its fixture)


@pytest.fixture(scope="module", autouse=True)
def definitions(running: RunningInstance) -> None:
    add_job(running, "APP1", 1, "nightly load", INTERVAL_SECONDS=3600)
    add_job(running, "APP1", 2, "toggled", INTERVAL_SECONDS=3600)
    add_job(running, "APP1", 3, "started by hand", INTERVAL_SECONDS=86400, ACTIVE=False)
    add_watcher(running, "APP1", 1, "orders arrive", CONDITION_TEXT="SELECT 1 FROM DUAL WHERE FALSE", TARGET_JOB_ID=1)
    running.redctl("reload")


def get(api: RestApi, path: str, user: tuple[str, str] = READER, **params: Any) -> httpx.Response:
    return api.client.get(path, headers=basic(user), params=params)


def post(api: RestApi, path: str, user: tuple[str, str] = OPERATOR, **params: Any) -> httpx.Response:
    return api.client.post(path, headers=basic(user), params=params)


def assert_error(response: httpx.Response, status: int, code: str, words: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code, error
    assert words in error["message"], error


def test_health_and_the_openapi_document_need_no_credentials(api: RestApi) -> None:
    health = api.client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "instance": "TST1", "daemons": {"jmon": True, "sched": True}}
    served = api.client.get("/openapi.json").json()
    assert served == json.loads(render())


def test_reader_sees_status_jobs_watchers_and_their_details(api: RestApi) -> None:
    status = get(api, "/api/v1/status").json()
    assert status["instance"] == "TST1" and status["suspended"] is False
    assert status["daemons"]["redpss-jmon"]["running"] and status["daemons"]["redpss-sched"]["running"]
    assert status["last_poll_ok"] is not None and {p["pool"] for p in status["pools"]} >= {"DEFAULT", "LOADER"}
    jobs = {(j["SCHEMA_NAME"], j["JOB_ID"]): j for j in get(api, "/api/v1/jobs").json()}
    assert jobs[("APP1", 1)]["JOB_NAME"] == "nightly load"
    detail = get(api, "/api/v1/jobs/APP1/1").json()
    assert detail["COMMAND"] == "-" and detail["INTERVAL_SECONDS"] == 3600
    watchers = get(api, "/api/v1/watchers").json()
    assert [(w["WATCHER_ID"], w["TARGET_JOB_ID"]) for w in watchers] == [(1, 1)]
    assert get(api, "/api/v1/watchers/app1/1").json()["WATCHER_NAME"] == "orders arrive"


def test_unknown_objects_bad_parameters_and_unknown_paths_answer_in_one_shape(api: RestApi) -> None:
    assert_error(get(api, "/api/v1/jobs/APP1/999"), 404, "not_found", "no job APP1.999")
    assert_error(get(api, "/api/v1/jobs/NOSUCH/1"), 404, "not_found")
    assert_error(get(api, "/api/v1/runs", limit="0"), 400, "bad_request", "limit")
    assert_error(get(api, "/api/v1/runs", since="yesterday"), 400, "bad_request", "since")
    assert_error(get(api, "/api/v1/runs", colour="red"), 400, "bad_request", "'colour'")
    assert_error(get(api, "/api/v1/runs", status="FAILED\n"), 400, "bad_request", "must be a name")  # not a 200
    assert_error(get(api, "/api/v1/nothing"), 404, "not_found", "/openapi.json")
    assert_error(api.client.delete("/api/v1/jobs", headers=basic(READER)), 405, "method_not_allowed")


def test_refused_credentials_say_why_and_never_echo_the_password(api: RestApi) -> None:
    missing = api.client.get("/api/v1/jobs")
    assert_error(missing, 401, "unauthorized", "HTTP Basic")
    assert missing.headers["www-authenticate"].startswith('Basic realm="RED-PSS TST1"')
    wrong = get(api, "/api/v1/jobs", user=(READER[0], "not-the-password"))
    assert_error(wrong, 401, "unauthorized", "refused the login")
    assert "not-the-password" not in wrong.text and "not-the-password" not in api.log
    assert_error(get(api, "/api/v1/jobs", user=NOBODY), 403, "forbidden", "REDPSS_READER")


def test_a_reader_may_not_change_anything(api: RestApi, running: RunningInstance) -> None:
    for path in ("/api/v1/jobs/APP1/2/toggle", "/api/v1/jobs/APP1/2/start", "/api/v1/suspend", "/api/v1/reload"):
        assert_error(post(api, path, user=READER), 403, "forbidden", "operator role")
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 2") == [{"ACTIVE": True}]
    assert not running.paths.suspend_marker.exists()


def _state_in_show(running: RunningInstance, job_id: int) -> str:
    for line in running.redctl("show").stdout.splitlines():
        words = line.split()
        if words[:3] == ["JOB", "APP1", str(job_id)]:
            return next(w for w in words[3:] if w in ("ACTIVE", "INACTIVE", "RUNNING", "QUEUED", "BLOCKED"))
    raise AssertionError(f"job APP1.{job_id} not in redctl show")


def test_toggle_is_in_the_database_and_in_redctl_show(api: RestApi, running: RunningInstance) -> None:
    toggled = post(api, "/api/v1/jobs/APP1/2/toggle")
    assert toggled.status_code == 200, toggled.text
    assert toggled.json() == {
        "kind": "JOB", "schema": "APP1", "id": 2, "name": "toggled", "active": False, "applied": True
    }  # fmt: skip
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 2") == [{"ACTIVE": False}]
    wait_for(lambda: _state_in_show(running, 2) == "INACTIVE", 30, what="APP1.2 INACTIVE in redctl show")
    listed = {j["JOB_ID"]: j["ACTIVE"] for j in get(api, "/api/v1/jobs").json()}
    assert listed[2] is False  # the worker that toggled dropped its cached list
    assert post(api, "/api/v1/jobs/APP1/2/toggle").json()["active"] is True
    wait_for(lambda: _state_in_show(running, 2) == "ACTIVE", 30, what="APP1.2 ACTIVE again in redctl show")
    # the state wanted, as the console sends it: a double click or a retry leaves it so instead of undoing it
    for wanted, expected in (("false", False), ("false", False), ("true", True), ("1", True)):
        assert post(api, "/api/v1/watchers/APP1/1/toggle", active=wanted).json()["active"] is expected
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_WATCHER WHERE WATCHER_ID = 1") == [{"ACTIVE": True}]
    assert_error(post(api, "/api/v1/jobs/APP1/2/toggle", active="maybe"), 400, "bad_request", "true or false")


def test_start_now_runs_the_job_and_the_run_is_listed(api: RestApi, running: RunningInstance) -> None:
    started = post(api, "/api/v1/jobs/APP1/3/start")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert run_id and started.json()["forced"] is False

    def listed() -> dict[str, Any] | None:
        runs = get(api, "/api/v1/runs", schema="APP1", job_id="3", limit="5").json()["runs"]
        return next((r for r in runs if r["RUN_ID"] == run_id and r["STATUS"] == "OK"), None)

    run = wait_for(listed, 60, interval=0.5, what=f"run {run_id} OK in /api/v1/runs")
    assert run["RUN_TRIGGER"] and run["JOB_NAME"] == "started by hand"
    rows = running.rows(f"SELECT STATUS FROM REDSYS.ALL_ADM_JOB_LOG WHERE RUN_ID = '{run_id}'")
    assert rows == [{"STATUS": "OK"}]
    assert get(api, "/api/v1/runs", status="NO_SUCH_STATUS").json()["runs"] == []
    assert get(api, "/api/v1/runs", since="2999-01-01T00:00:00").json()["runs"] == []


def test_watcher_executor_errors_are_listed_and_reset_by_an_operator(api: RestApi, running: RunningInstance) -> None:
    running.add_watcher_error("r-1", "condition failed")
    errors = get(api, "/api/v1/watcher-errors").json()
    assert [(e["SCHEMA_NAME"], e["WATCHER_ID"], e["ERROR_MESSAGE"]) for e in errors] == [
        ("APP1", 1, "condition failed")
    ]
    assert_error(post(api, "/api/v1/watchers/APP1/1/reset-errors", user=READER), 403, "forbidden")
    reset = post(api, "/api/v1/watchers/APP1/1/reset-errors")
    assert reset.json() == {"reset": [{"schema": "APP1", "id": 1}], "applied": True}
    assert get(api, "/api/v1/watcher-errors").json() == []
    by = running.rows("SELECT RESET_BY FROM APP1.ADM_WATCHER_EXEC_ERROR WHERE RUN_ID = 'r-1'")
    assert by == [{"RESET_BY": f"REST ({OPERATOR[0]})"}]
    assert post(api, "/api/v1/watcher-errors/reset").json() == {"reset": [], "applied": True}


def test_suspend_and_resume(api: RestApi, running: RunningInstance) -> None:
    # a form another site's page posts here carries the Basic credentials the browser remembers: refused
    for header in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://["},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        forged = api.client.post("/api/v1/suspend", headers={**basic(OPERATOR), **header})
        assert_error(forged, 403, "forbidden", "a request from another site")
    assert not running.paths.suspend_marker.exists()
    own_origin = {"Origin": str(api.client.base_url).rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    assert api.client.post("/api/v1/suspend", headers={**basic(OPERATOR), **own_origin}).status_code == 200
    # behind a reverse proxy that passes its own Host on, the browser's same-origin is what counts
    proxied = {"Origin": "https://redpss.example.com", "Sec-Fetch-Site": "same-origin"}
    assert api.client.post("/api/v1/suspend", headers={**basic(OPERATOR), **proxied}).status_code == 200
    assert post(api, "/api/v1/resume").status_code == 200
    assert post(api, "/api/v1/suspend").json() == {"instance": "TST1", "suspended": True}
    assert "SUSPENDED" in running.redctl("show").stdout.splitlines()[0]
    assert get(api, "/api/v1/status").json()["suspended"] is True
    declined = post(api, "/api/v1/jobs/APP1/3/start")  # JMON declines while suspended: the caller can act on it
    assert_error(declined, 409, "conflict", "is suspended")  # was 500 internal_error, logged at ERROR
    assert "operation failed" not in api.log
    assert post(api, "/api/v1/resume").json() == {"instance": "TST1", "suspended": False}
    assert "RUNNING" in running.redctl("show").stdout.splitlines()[0]
    reloaded = post(api, "/api/v1/reload").json()
    assert reloaded["definitions"] >= 4 and reloaded["invalid"] == 0


def test_status_is_read_once_a_second_and_at_once_after_a_change_made_here(running: RunningInstance) -> None:
    """/api/v1/status asked systemd and JMON at every request, however often a logged-in reader polled it: now a
    worker reads it at most once a second, and again at once after a change made through it."""
    import asyncio  # noqa: PLC0415

    from redpss.ops.control import set_suspended  # noqa: PLC0415
    from redpss.ops.instance import Instance  # noqa: PLC0415
    from redpss.rest.app import build_app  # noqa: PLC0415

    app = build_app(running.paths, running.config)
    elsewhere = Instance(running.paths, running.config, client="another worker")

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://api.test") as client:

            async def suspended() -> bool:
                answer = await client.get("/api/v1/status", headers=basic(READER))
                assert answer.status_code == 200, answer.text
                return bool(answer.json()["suspended"])

            assert await suspended() is False
            await asyncio.to_thread(set_suspended, elsewhere, True)  # a change this worker did not make
            assert await suspended() is False  # the reading of this second
            async with asyncio.timeout(10):
                while not await suspended():
                    await asyncio.sleep(0.05)
            assert (await client.post("/api/v1/resume", headers=basic(OPERATOR))).status_code == 200
            assert await suspended() is False  # a change made here is read again at once

    try:
        asyncio.run(scenario())
    finally:
        set_suspended(elsewhere, False)


def test_a_change_made_through_one_worker_is_in_the_next_answer_of_every_worker(running: RunningInstance) -> None:
    """Each gunicorn worker keeps its own readings: after a toggle or a suspend through one worker, another still
    answered its older reading (the job active, the instance running) for up to five periods."""
    import asyncio  # noqa: PLC0415

    from redpss.rest.app import build_app  # noqa: PLC0415

    one, other = build_app(running.paths, running.config), build_app(running.paths, running.config)

    async def scenario() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=one), base_url="https://api.test") as first,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="https://api.test") as second,
        ):

            async def read(path: str) -> Any:
                answer = await second.get(path, headers=basic(READER))
                assert answer.status_code == 200, answer.text
                return answer.json()

            active = {j["JOB_ID"]: j["ACTIVE"] for j in await read("/api/v1/jobs")}
            assert (await read("/api/v1/status"))["suspended"] is False
            toggled = await first.post("/api/v1/jobs/APP1/2/toggle", headers=basic(OPERATOR))
            assert toggled.status_code == 200, toggled.text
            assert {j["JOB_ID"]: j["ACTIVE"] for j in await read("/api/v1/jobs")}[2] is (not active[2])
            assert (await first.post("/api/v1/suspend", headers=basic(OPERATOR))).status_code == 200
            assert (await read("/api/v1/status"))["suspended"] is True
            assert (await first.post("/api/v1/resume", headers=basic(OPERATOR))).status_code == 200
            assert (await read("/api/v1/status"))["suspended"] is False
            assert (
                await first.post(f"/api/v1/jobs/APP1/2/toggle?active={str(active[2]).lower()}", headers=basic(OPERATOR))
            ).status_code == 200

    asyncio.run(scenario())


def test_load_statistics_log_messages_and_metrics(api: RestApi, running: RunningInstance) -> None:
    load = wait_for(lambda: get(api, "/api/v1/load", pool="DEFAULT").json()["load"], 30, what="a load row")
    assert {row["POOL"] for row in load} == {"DEFAULT"} and load[0]["POOL_SIZE"] == 2
    db = running.db()
    db.execute(
        'INSERT INTO APP1.LOG_MESSAGES (LOG_TIME, LOG_LEVEL, "SOURCE", JOB_ID, MESSAGE) '
        "VALUES (CURRENT_TIMESTAMP, 'ERROR', 'test', 7, 'disk on fire')"
    )
    db.commit()
    messages = get(api, "/api/v1/log-messages", level="error", job_id="7").json()["messages"]
    assert [(m["SCHEMA_NAME"], m["MESSAGE"]) for m in messages] == [("APP1", "disk on fire")]
    assert get(api, "/api/v1/log-messages", level="ALERT").json()["messages"] == []
    metrics = api.client.get("/metrics")  # loopback listener: no credentials
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'redpss_daemon_up{daemon="redpss-jmon"} 1' in text
    assert "redpss_database_up 1" in text and 'redpss_pool_queued{pool="DEFAULT"}' in text
    assert 'redpss_dispatch_lateness_ms_bucket{le="+Inf"}' in text and "# TYPE redpss_runs gauge" in text


def test_plain_http_and_old_tls_get_no_answer(api: RestApi) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as plain:
        plain.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := plain.recv(4096):
            answer += chunk
    assert not answer.startswith(b"HTTP/"), answer[:100]
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is what the server must refuse
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw, pytest.raises(ssl.SSLError):
        old.wrap_socket(raw).do_handshake()
    modern = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    modern.check_hostname, modern.verify_mode = False, ssl.CERT_NONE
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw, modern.wrap_socket(raw) as tls:
        assert tls.version() == "TLSv1.2"


def test_a_connection_that_sends_no_whole_request_head_is_closed(api: RestApi) -> None:
    """Before any login: a connection that sends nothing, or half a request head, must not hold a descriptor of the
    worker for good (a few thousand of them took the API down)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    with contextlib.ExitStack() as stack:
        idle, half, unread, stalled = (
            stack.enter_context(client.wrap_socket(socket.create_connection(("127.0.0.1", api.port), timeout=40)))
            for _ in range(4)
        )
        half.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # the head's last line never comes
        # answered (401) without its body being read; the body never comes: no request can follow on it
        unread.sendall(b"POST /api/v1/suspend HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n")
        assert unread.recv(12) == b"HTTP/1.1 401"
        # a login form whose body never comes: read by the console before any login, so it was waited for for good
        stalled.sendall(
            b"POST /console/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 16000\r\n\r\nuser=a"
        )
        started = time.monotonic()
        for connection in (idle, half, unread):
            while connection.recv(4096):  # closed by the server (the socket's own timeout is 40 s)
                pass
        assert time.monotonic() - started < REQUEST_HEAD_TIMEOUT + 5
        with contextlib.suppress(ssl.SSLError, ConnectionResetError):
            while stalled.recv(4096):  # closed at the second look in its body (10-20 s after it was made)
                pass
        assert time.monotonic() - started < 2 * REQUEST_HEAD_TIMEOUT + 5
    assert api.client.get("/health").status_code == 200


def test_a_connection_that_does_not_finish_its_tls_handshake_is_closed(api: RestApi) -> None:
    """asyncio gave a peer 60 s for the handshake and uvicorn does not count such a connection: a few thousand
    connections that never say hello held the worker's descriptors without any limit taking effect."""
    with contextlib.ExitStack() as stack:
        silent, half = (
            stack.enter_context(socket.create_connection(("127.0.0.1", api.port), timeout=30)) for _ in range(2)
        )
        half.sendall(bytes.fromhex("16030100c8"))  # the record header of a ClientHello whose body never comes
        started = time.monotonic()
        for connection in (silent, half):
            with contextlib.suppress(ConnectionResetError):
                while connection.recv(4096):  # closed by the server (the socket's own timeout is 30 s)
                    pass
        assert time.monotonic() - started < TLS_HANDSHAKE_TIMEOUT + 5
    assert api.client.get("/health").status_code == 200


def _restctl(running: RunningInstance, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "redpss.cli.restctl", *args],
        env=running.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_restctl_status_without_systemd_asks_the_api(api: RestApi, running: RunningInstance) -> None:
    disabled = _restctl(running, "status")
    assert disabled.returncode == 0 and "rest_enabled = false" in disabled.stdout, disabled
    config = running.paths.config_file
    text = config.read_text()
    config.write_text(text.replace("rest_enabled = false", "rest_enabled = true"))
    try:
        enabled = _restctl(running, "status")
    finally:
        config.write_text(text)
    assert enabled.returncode == 0, enabled
    assert f"answers on https://127.0.0.1:{api.port}" in enabled.stdout


def test_an_oversized_form_is_refused_before_it_is_read_and_before_any_login(api: RestApi) -> None:
    """Before, the console read a form body whole and only then looked at its size: one endless POST to the login
    form, which needs no session, held as much of the worker's memory as the client sent."""
    context = client_context(api.paths)  # httpx sends no length its body does not have: a request of our own
    with (
        socket.create_connection(("127.0.0.1", api.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /console/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000000000\r\n\r\nuser=x"
        )  # a gigabyte announced, six bytes sent: the answer comes at once, not after a gigabyte or a timeout
        assert tls.recv(4096).startswith(b"HTTP/1.1 413 ")

    def endless() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB in chunks, without a length: refused once past 16 KiB
            yield b"user=" + b"x" * 65531

    streamed = api.client.post(
        "/console/login", content=endless(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert streamed.status_code == 413, streamed.text


def test_a_number_too_long_for_an_id_is_a_clear_answer_not_a_traceback(api: RestApi) -> None:
    """int() raises past 4,300 digits: such a path or query, sent without credentials, was a 500 with a traceback."""
    huge = "9" * 5000
    assert api.client.get(f"/api/v1/jobs/APP1/{huge}").status_code == 404  # no such route: ids have 18 digits
    assert_error(get(api, f"/api/v1/jobs/APP1/{'9' * 19}"), 400, "bad_request", "out of range")
    assert_error(api.client.get("/api/v1/runs", params={"limit": huge}), 400, "bad_request", "limit")
    assert "Traceback" not in api.log


def test_a_csrf_token_with_non_ascii_characters_is_refused_not_a_crash(api: RestApi) -> None:
    login = api.client.post("/console/login", data={"user": READER[0], "password": READER[1], "next": "/console/"})
    assert login.status_code == 303, login.text
    forged = api.client.post("/console/logout", data={"csrf": "é-not-a-token"})
    assert forged.status_code == 403, forged.text
    assert "Traceback" not in api.log
    api.client.cookies.clear()


def test_the_database_ends_an_api_statement_before_the_api_would_stop_waiting(running: RunningInstance) -> None:
    """A reader could make the API run statements that went on in the database after the API had given up on them
    (its socket timeout): the API's sessions carry a query timeout below it, which the database enforces."""
    from redpss.core.db import DbSettings  # noqa: PLC0415
    from redpss.core.db.errors import DatabaseQueryError  # noqa: PLC0415
    from redpss.ops.instance import Instance  # noqa: PLC0415
    from redpss.rest.app import QUERY_TIMEOUT_SECONDS, Api  # noqa: PLC0415

    api = Api(running.paths, running.config)
    assert 0 < api.instance.db_query_timeout == QUERY_TIMEOUT_SECONDS < DbSettings.socket_timeout
    short = Instance(running.paths, running.config, client="test", db_query_timeout=1.0)  # the same path, 1 s
    session = short.db()
    try:
        with pytest.raises(DatabaseQueryError) as caught:
            session.execute("EXECUTE SCRIPT REDPSS_DEVDB.SLEEP(30)")
        assert caught.value.timeout
    finally:
        session.close()
