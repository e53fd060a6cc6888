"""The web console in a real headless Chromium (Debian's, driven by playwright) against the REST API's real gunicorn
with TLS, devdb, SCHED and JMON: logins for both roles, a toggle from the page seen in the database and in
`redctl show`, a reader's forged POST refused, the load chart drawn from ADM_JMON_LOAD rows, a failed run appearing
without a reload (a stopped SCHED shown as down: test_sched_down.py). Every page is photographed into
test-artifacts/console."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from redpss.console.data import ROWS_PER_PAGE
from redpss.console.session import SessionKeys
from redpss.core.db.sqltext import insert_statement
from redpss.rest.auth import FAILURE_LIMIT
from tests.console.conftest import post_unoffered_form, shoot
from tests.rest.rest_instance import OPERATOR, READER, RestApi, client_context
from tests.support.instance_runner import RunningInstance, add_job, add_watcher
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.allow_leaks]  # a browser and an instance per module


@pytest.fixture(scope="module", autouse=True)
def definitions(running: RunningInstance) -> None:
    add_job(running, "APP1", 1, "nightly load", INTERVAL_SECONDS=3600)
    add_job(running, "APP1", 2, "toggled from the page", INTERVAL_SECONDS=3600)
    add_job(running, "APP1", 3, "<script>alert('x')</script>", INTERVAL_SECONDS=86400, ACTIVE=False)
    add_job(running, "APP1", 9, "breaks", JOB_TYPE="SQL", COMMAND="SELECT * FROM APP1.NO_SUCH_TABLE", ACTIVE=False,
            INTERVAL_SECONDS=86400)  # fmt: skip
    add_watcher(running, "APP1", 1, "orders arrive", CONDITION_TEXT="SELECT 1 FROM DUAL WHERE FALSE", TARGET_JOB_ID=1,
                INTERVAL_SECONDS=3600)  # fmt: skip
    running.redctl("reload")


def test_the_login_cookie_is_secure_httponly_strict_and_a_wrong_password_is_refused(
    browser: Any, api: RestApi, artifacts: Path
) -> None:
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(f"{api.base}/console/login")
        shoot(page, artifacts, "login")
        page.get_by_label("User").fill(READER[0])
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Log in").click()
        assert "refused the login" in page.locator("#failure").inner_text()
        assert "not-the-password" not in api.log
        assert not context.cookies()
        page.get_by_label("User").fill(READER[0])
        page.get_by_label("Password").fill(READER[1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{api.base}/console/")
        (cookie,) = context.cookies()
        assert cookie["name"] == "redpss_console_TST1" and cookie["path"] == "/console"  # one per instance
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert READER[1] not in cookie["value"]
    finally:
        context.close()


def test_reader_sees_every_page_but_no_action_and_a_forged_post_is_refused(
    page_of: Any, api: RestApi, running: RunningInstance, artifacts: Path
) -> None:
    page = page_of(READER)
    assert page.locator("tr[data-daemon='redpss-sched'] .badge").inner_text() == "up"
    page.keyboard.press("Tab")  # keyboard users reach the skip link first
    assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    shoot(page, artifacts, "overview-reader")
    page.get_by_role("link", name="Jobs & watchers").click()
    assert page.locator("tr[data-job='APP1.2']").count() == 1
    assert page.locator("table#jobs button").count() == 0 and page.get_by_text("Start now").count() == 0
    shoot(page, artifacts, "jobs-reader")
    assert page.locator("tr[data-job='APP1.3'] th").inner_text() == "APP1.3 <script>alert('x')</script>"  # as text
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shoot(page, artifacts, "jobs-reader-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="Runs", exact=True).click()
    shoot(page, artifacts, "runs-reader")
    page.goto(f"{api.base}/console/jobs/APP1/1")
    assert "Job APP1.1" in page.locator("h1").inner_text()
    shoot(page, artifacts, "job-reader")
    # A form the page never offered, with the session's own CSRF token (from the logout form): still refused.
    post_unoffered_form(page, "/console/jobs/APP1/2/toggle")
    assert "needs the operator role" in page.locator("#error").inner_text()
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 2") == [{"ACTIVE": True}]
    shoot(page, artifacts, "refused-reader")


def test_a_post_without_the_csrf_token_is_refused_even_for_an_operator(
    page_of: Any, api: RestApi, running: RunningInstance
) -> None:
    page = page_of(OPERATOR)
    answer = page.request.post(f"{api.base}/console/jobs/APP1/2/toggle", form={"back": "/console/jobs"})
    assert answer.status == 403 and "CSRF" in answer.text()
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 2") == [{"ACTIVE": True}]


def _active_in_show(running: RunningInstance, job_id: int) -> bool | None:
    shown = json.loads(running.redctl("show", "--json").stdout)
    for entry in shown["entries"]:
        if entry["key"] == ["JOB", "APP1", job_id]:
            return bool(entry["active"])
    return None


def test_operator_toggles_a_job_from_the_page_and_it_changes_in_the_database_and_in_redctl_show(
    page_of: Any, running: RunningInstance, artifacts: Path
) -> None:
    page = page_of(OPERATOR)
    page.get_by_role("link", name="Jobs & watchers").click()
    shoot(page, artifacts, "jobs-operator")
    page.get_by_role("button", name="Deactivate APP1.2").click()
    assert "APP1.2 is now inactive" in page.locator(".note").inner_text()
    assert page.locator("tr[data-job='APP1.2'] .state").inner_text() == "INACTIVE"
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 2") == [{"ACTIVE": False}]
    wait_for(lambda: _active_in_show(running, 2) is False, 30, what="APP1.2 inactive in redctl show")
    page.get_by_label("State").select_option("INACTIVE")  # the filters: a plain GET form
    page.get_by_role("button", name="Filter").click()
    assert page.locator("table#jobs tr[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)") == [
        "APP1.2", "APP1.3", "APP1.9"
    ]  # fmt: skip
    page.get_by_role("button", name="Activate APP1.2").click()
    assert "state=INACTIVE" in page.url  # back where the action was taken, filter kept
    assert running.rows("SELECT ACTIVE FROM APP1.ADM_JOBS WHERE JOB_ID = 2") == [{"ACTIVE": True}]
    wait_for(lambda: _active_in_show(running, 2) is True, 30, what="APP1.2 active again in redctl show")


def test_the_load_chart_draws_the_points_of_adm_jmon_load(
    page_of: Any, api: RestApi, running: RunningInstance, artifacts: Path
) -> None:
    minute = dt.datetime.now().replace(second=0, microsecond=0)
    db = running.db()
    busy = [i % 4 for i in range(30)]
    for i, value in enumerate(busy):
        stamp = (minute - dt.timedelta(minutes=30 - i)).strftime("%Y-%m-%d %H:%M:%S")
        db.execute(
            "INSERT INTO REDSYS.ADM_JMON_LOAD (LOG_TIME, POOL, POOL_SIZE, BUSY, QUEUED, RUNS_STARTED, RUNS_SKIPPED, "
            f"LATENESS_P50_MS, LATENESS_MAX_MS, SUSPENDED) VALUES ('{stamp}', 'CHARTS', 4, {value}, {i}, 2, 0, 1.5, "
            "9.5, FALSE)"
        )
    db.commit()
    page = page_of(READER)
    page.goto(f"{api.base}/console/load?range=hour")
    shoot(page, artifacts, "load")
    page.wait_for_function("() => window.consoleCharts && window.consoleCharts.length > 0")
    drawn = page.evaluate(
        """() => window.consoleCharts
             .filter(p => p.root.parentElement.dataset.pool === 'CHARTS')
             .map(p => ({series: p.root.parentElement.dataset.series, data: p.data.slice(1)}))"""
    )
    by_series = {d["series"]: d["data"] for d in drawn}
    assert by_series["busy,queued,size"][0] == busy and by_series["busy,queued,size"][1] == list(range(30))
    assert by_series["p50,max"][1] == [9.5] * 30
    assert page.locator("div.chart[data-pool='CHARTS'] canvas").count() == 3
    shoot(page, artifacts, "load")


def test_a_run_started_from_the_page_that_fails_appears_on_the_overview_without_a_reload(
    page_of: Any, running: RunningInstance, artifacts: Path
) -> None:
    page = page_of(READER)
    page.evaluate("() => { window.notReloaded = true; }")
    operator = page_of(OPERATOR)  # started from the page, in another browser: the reader's page is left alone
    operator.get_by_role("link", name="Jobs & watchers").click()
    operator.get_by_role("button", name="Start APP1.9 now").click()
    assert "job APP1.9 started: run" in operator.locator(".note").inner_text()
    failed = page.locator("tr.status-failed", has_text="APP1.9")
    failed.first.wait_for(timeout=30_000)
    assert page.evaluate("() => window.notReloaded") is True  # the same document: refreshed in place
    assert re.search(r"APP1\.9 \(breaks\) failed", page.locator("#problems").inner_text())
    shoot(page, artifacts, "overview-failed-run")
    failed.first.get_by_role("link").first.click()  # the job's own runs, with its log lines per run
    row = page.locator("tr.status-failed").first
    assert "NO_SUCH_TABLE" in row.inner_text()
    row.get_by_role("link").click()
    assert "Log of run" in page.locator("#run-log").inner_text()
    assert "FAILED statement failed" in page.locator("#sched-lines").inner_text()  # SCHED's line about this run
    shoot(page, artifacts, "job-run-log")


def test_operator_resets_a_watcher_executor_error_from_the_page(page_of: Any, running: RunningInstance) -> None:
    running.add_watcher_error("r-console", "condition failed: no such table")
    page = page_of(OPERATOR)
    assert "executor error not reset: condition failed" in page.locator("#problems").inner_text()
    page.get_by_role("link", name="Jobs & watchers").click()
    assert page.locator("tr[data-watcher='APP1.1']").inner_text().count("yes, not reset") == 1
    page.get_by_role("button", name="Reset the executor error of watcher APP1.1").click()
    assert "executor error of watcher APP1.1 reset" in page.locator(".note").inner_text()
    assert running.rows("SELECT RESET_BY FROM APP1.ADM_WATCHER_EXEC_ERROR WHERE RUN_ID = 'r-console'") == [
        {"RESET_BY": f"console ({OPERATOR[0]})"}
    ]


def test_a_long_job_list_is_shown_a_page_at_a_time_and_the_pages_keep_the_filter(
    page_of: Any, api: RestApi, running: RunningInstance, artifacts: Path
) -> None:
    # 205 more inactive jobs (APP1.1000...): with APP1.3 and APP1.9, 207 match the filter INACTIVE
    many = [{"JOB_ID": 1000 + n, "JOB_NAME": f"bulk {n}", "JOB_TYPE": "NOOP", "COMMAND": "-",
             "INTERVAL_SECONDS": 60, "ACTIVE": False} for n in range(205)]  # fmt: skip
    running.db().execute(insert_statement("APP1.ADM_JOBS", many))
    page = page_of(READER)
    page.goto(f"{api.base}/console/jobs?state=INACTIVE")
    assert page.locator("table#jobs tbody tr").count() == ROWS_PER_PAGE
    assert "(rows 1-200 of 207; " in page.locator("h2").first.inner_text()
    assert page.locator("tr[data-job='APP1.3']").count() == 1 and page.get_by_text("page 1 of 2").count() == 1
    page.get_by_role("link", name="Next jobs").click()
    page.wait_for_url(re.compile(r"state=INACTIVE&page=2$"))
    assert page.locator("table#jobs tbody tr").count() == 7
    assert page.locator("tr[data-job='APP1.1204']").count() == 1 and page.locator("tr[data-job='APP1.3']").count() == 0
    shoot(page, artifacts, "jobs-page-2")
    page.get_by_role("link", name="Previous jobs").click()
    page.wait_for_url(re.compile(r"state=INACTIVE&page=1$"))
    assert page.locator("tr[data-job='APP1.3']").count() == 1
    page.goto(f"{api.base}/console/jobs?page=9")  # beyond the last page: the last one
    assert page.get_by_text("page 2 of 2").count() == 1
    for bad in ("two", "²"):  # '²' is a digit to str.isdigit(), not to int()
        page.goto(f"{api.base}/console/jobs?page={bad}")
        assert f"page '{bad}' is not a page number (1, 2, ...)" in page.locator("#error").inner_text()


def test_a_login_or_logout_posted_from_another_sites_page_is_refused(browser: Any, api: RestApi) -> None:
    """Login CSRF: a page of another site posts the login form with its own user's credentials, which would log
    this browser in as that user. The login and the logout carry no session's CSRF token, so the browser's word on
    where the form comes from decides."""
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        for action in ("login", "logout"):
            page.goto("about:blank")  # a page of another origin than the console's
            page.set_content(
                f'<form method="post" action="{api.base}/console/{action}">'
                f'<input name="user" value="{READER[0]}"><input name="password" value="{READER[1]}">'
                "<button>go</button></form>"
            )
            with page.expect_navigation():
                page.get_by_role("button", name="go").click()
            assert "sent from a page of another site" in page.locator("#error").inner_text()
            assert not context.cookies()
        refused = context.request.post(
            f"{api.base}/console/login", form={"user": READER[0], "password": READER[1]},
            headers={"Origin": "https://elsewhere.example"}, max_redirects=0,
        )  # fmt: skip
        assert refused.status == 403
        page.goto(f"{api.base}/console/login")  # the console's own form still logs in
        page.get_by_label("User").fill(READER[0])
        page.get_by_label("Password").fill(READER[1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{api.base}/console/")
        assert [c["name"] for c in context.cookies()] == ["redpss_console_TST1"]
    finally:
        context.close()
    old_browser = browser.new_context(ignore_https_errors=True)
    try:  # a browser without Sec-Fetch-Site posts the console's own form with Origin: null (no-referrer pages)
        answer = old_browser.request.post(
            f"{api.base}/console/login", form={"user": READER[0], "password": READER[1]},
            headers={"Origin": "null"}, max_redirects=0,
        )  # fmt: skip
        assert answer.status == 303 and answer.headers["location"] == "/console/"
    finally:
        old_browser.close()


def test_a_copy_of_a_session_cookie_taken_before_its_logout_is_refused(browser: Any, api: RestApi) -> None:
    """The cookie is checked by its signature; a logout only asked the browser to forget it, so a copy (a shared
    machine, a leaked header) kept the session, and an operator's kept starting jobs, for up to eight hours."""
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(f"{api.base}/console/login")
        page.get_by_label("User").fill(READER[0])
        page.get_by_label("Password").fill(READER[1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{api.base}/console/")
        [copied] = context.cookies()
        partial = {"x-console-partial": "1", "cookie": f"{copied['name']}={copied['value']}"}
        assert api.client.get("/console/jobs", headers=partial).status_code == 200
        keys = SessionKeys(api.paths)  # the logout form's token
        session = keys.read(copied["value"])
        assert session is not None
        logout = context.request.post(
            f"{api.base}/console/logout", form={"csrf": keys.csrf_token(session)}, max_redirects=0
        )  # the browser's own logout: its cookie, same origin
        assert logout.status == 303 and "/console/login" in logout.headers["location"]
        assert api.client.get("/console/jobs", headers=partial).status_code == 401  # the copy: no session
    finally:
        context.close()


def test_a_login_form_too_large_is_answered_by_the_login_page_not_json(api: RestApi) -> None:
    """The console's forms are read with a size limit (the login form is posted before any login); over it, the
    browser showed the API's JSON error body instead of a page."""
    answer = api.client.post("/console/login", data={"user": "x", "password": "p" * 40_000})
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/html")
    assert "the form is larger than 16384 bytes" in answer.text and 'name="password"' in answer.text


def _client_from(api: RestApi, address: str) -> httpx.Client:
    """A client of its own (no shared cookie jar) whose connections come from `address` (any of 127.0.0.0/8): the
    API counts failed logins per address, and other tests of the module log in from 127.0.0.1."""
    transport = httpx.HTTPTransport(verify=client_context(api.paths), local_address=address)
    return httpx.Client(base_url=api.base, transport=transport, timeout=30.0)


def _console_login(api: RestApi, user: tuple[str, str], address: str = "127.0.0.1") -> str:
    """The session cookie of a console login, as a Cookie header value."""
    with _client_from(api, address) as client:
        answer = client.post("/console/login", data={"user": user[0], "password": user[1], "next": "/console/"})
        assert answer.status_code == 303, answer.text
        [(name, value)] = client.cookies.items()
        return f"{name}={value}"


def test_a_revoked_role_ends_the_console_session_within_the_login_cache_for_every_copy(
    api: RestApi, running: RunningInstance
) -> None:
    """The cookie was trusted for eight hours whatever the database said: an operator whose role was revoked (or
    who was dropped) kept starting jobs. Each request now checks the login again, at most every
    login_cache_seconds (1 s here, 30 s by default) with the database."""
    user = ("CONSOLE_TEMP", "temp-pw")
    db = running.db()
    db.execute(f'CREATE USER {user[0]} IDENTIFIED BY "{user[1]}"')
    db.execute(f"GRANT CREATE SESSION TO {user[0]}")
    db.execute(f"GRANT REDPSS_OPERATOR TO {user[0]}")
    db.commit()
    client = _client_from(api, "127.0.0.2")
    try:
        partial = {"x-console-partial": "1", "cookie": _console_login(api, user, "127.0.0.2")}

        def jobs() -> httpx.Response:
            return client.get("/console/jobs", headers=partial)

        assert "Start now" in jobs().text  # the operator's actions
        db.execute(f"REVOKE REDPSS_OPERATOR FROM {user[0]}")
        db.execute(f"GRANT REDPSS_READER TO {user[0]}")
        db.commit()
        # failed logins from the session's address until the API holds it back: the session's own check is not
        # theirs to stop (it kept the operator's role of the login while the address was held)
        refused = [client.get("/api/v1/status", auth=(user[0], "wrong")).status_code for _ in range(FAILURE_LIMIT + 1)]
        assert refused[-1] == 429, refused
        wait_for(lambda: "Start now" not in jobs().text, 30, interval=0.2, what="the console to see the reader")
        assert jobs().status_code == 200  # still logged in, as a reader
        db.execute(f"REVOKE REDPSS_READER FROM {user[0]}")
        db.commit()
        wait_for(lambda: jobs().status_code == 401, 30, interval=0.2, what="the console session to end")
        db.execute(f"GRANT REDPSS_OPERATOR TO {user[0]}")
        db.commit()
        assert jobs().status_code == 401  # ended on the server: a role given back needs a new login
        assert "the session of CONSOLE_TEMP ended: user CONSOLE_TEMP holds neither role" in api.log
        assert (
            "Start now"
            in api.client.get("/console/jobs", headers={**partial, "cookie": _console_login(api, user)}).text
        )
    finally:
        client.close()
        db.execute(f"DROP USER {user[0]} CASCADE")
        db.commit()


def test_what_is_wrong_now_names_timeouts_and_failures_that_began_over_an_hour_ago(running: RunningInstance) -> None:
    """The overview took FAILED runs that began within the hour: a TIMEOUT never showed (with the default timeout of
    3600 s it began an hour before it ended), nor a failure that ended a run of over an hour."""
    from redpss.console.data import overview  # noqa: PLC0415
    from redpss.ops.instance import Instance  # noqa: PLC0415

    db = running.db()
    db.execute(
        "INSERT INTO APP1.ADM_JOB_LOG (RUN_ID, JOB_ID, JOB_NAME, STARTED_AT, ENDED_AT, STATUS, MESSAGE) VALUES "
        "('r-timed-out', 9, 'breaks', CURRENT_TIMESTAMP - INTERVAL '61' MINUTE, "
        "CURRENT_TIMESTAMP - INTERVAL '1' MINUTE, 'TIMEOUT', 'ran over its 3600 s'), "
        "('r-long-failed', 9, 'breaks', CURRENT_TIMESTAMP - INTERVAL '90' MINUTE, "
        "CURRENT_TIMESTAMP - INTERVAL '2' MINUTE, 'FAILED', 'gave up late'), "
        "('r-old-failed', 9, 'breaks', CURRENT_TIMESTAMP - INTERVAL '3' HOUR, "
        "CURRENT_TIMESTAMP - INTERVAL '2' HOUR, 'FAILED', 'long ago')"
    )
    db.commit()
    problems = "\n".join(overview(Instance(running.paths, running.config, client="test"))["problems"])
    assert re.search(r"run r-timed-out of APP1\.9 \(breaks\) timed out at .*ran over its 3600 s", problems), problems
    assert re.search(r"run r-long-failed of APP1\.9 \(breaks\) failed at .*gave up late", problems), problems
    assert "r-old-failed" not in problems


def test_a_runs_log_page_shows_its_messages_however_many_newer_ones_the_job_has(running: RunningInstance) -> None:
    """The run's page read the job's newest MAX_PAGE messages and kept those of the run: an older run of a busy job
    showed none of its messages."""
    from redpss.console.data import run_log  # noqa: PLC0415
    from redpss.ops.history import MAX_PAGE  # noqa: PLC0415
    from redpss.ops.instance import Instance  # noqa: PLC0415

    db = running.db()
    older = "(CURRENT_TIMESTAMP - INTERVAL '1' DAY, 'ERROR', 'test', 11, 'r-older', 'the older run broke')"
    newer = [f"(CURRENT_TIMESTAMP, 'ERROR', 'test', 11, 'r-newer-{n}', 'newer {n}')" for n in range(MAX_PAGE + 5)]
    db.execute(
        'INSERT INTO APP1.LOG_MESSAGES (LOG_TIME, LOG_LEVEL, "SOURCE", JOB_ID, RUN_ID, MESSAGE) VALUES '
        + ", ".join([older, *newer])
    )
    db.commit()
    page = run_log(Instance(running.paths, running.config, client="test"), "APP1", 11, "r-older")
    assert [m["MESSAGE"] for m in page["messages"]] == ["the older run broke"]
