"""The overview of an instance whose SCHED stopped, in its own module: stopping SCHED ends `redctl start_trace`
and with it the whole instance (the embedded database too), so no test may come after it on the same instance."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from redpss.core.config import load_config
from redpss.devdb.instance import listen_address
from redpss.ops.instance import Instance
from redpss.ops.status import daemons
from tests.console.conftest import post_unoffered_form, shoot
from tests.redftp.sftpsite import accepts
from tests.rest.rest_instance import OPERATOR
from tests.support.instance_runner import RunningInstance
from tests.support.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.allow_leaks]  # a browser and an instance per module


def test_the_overview_shows_a_stopped_sched_as_down(page_of: Any, running: RunningInstance, artifacts: Path) -> None:
    page = page_of(OPERATOR)
    instance = Instance(running.paths, load_config(running.paths.config_file))
    detail = daemons(instance, frozenset({"sched"}))["redpss-sched"]["detail"]
    pid = int(re.search(r"pid (\d+)", detail)[1])  # type: ignore[index]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not daemons(instance, frozenset({"sched"}))["redpss-sched"]["running"], 60, what="SCHED down")
    # the embedded database goes with it: the session's login cannot be checked again (login_cache_seconds is 1 s
    # here), and the roles of its last check stand, so the overview is still shown, not the login form
    wait_for(lambda: not accepts(listen_address(running.config)[1]), 60, what="devdb down")
    page.reload()
    assert page.locator("tr[data-daemon='redpss-sched'] .badge").inner_text() == "down"
    assert "redpss-sched is down" in page.locator("#problems").inner_text()
    shoot(page, artifacts, "overview-sched-down")
    # the other pages read the database: each says so on the console's own error page, still logged in
    for path in ("/console/jobs", "/console/runs", "/console/load", "/console/jobs/APP1/1"):
        page.goto(page.url.split("/console/")[0] + path)
        assert page.locator("#error").count() == 1, (path, page.content()[:2000])
        assert "internal error" not in page.locator("#error").inner_text(), path
        assert page.locator("input[name=csrf]").count() == 1, path  # the logout form: the session stands
    shoot(page, artifacts, "jobs-database-down")
    # nothing is changed on a login the database could not confirm: an operator's form is refused with the reason
    assert "login not confirmed: reading only" in page.locator("header").inner_text()
    post_unoffered_form(page, "/console/jobs/APP1/1/toggle")
    assert "the database cannot confirm your login now" in page.locator("#error").inner_text()
