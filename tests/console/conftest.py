"""The console's browser tests: one running instance with its REST API (real gunicorn, TLS, devdb, SCHED, JMON) per
module, and Debian's headless Chromium driven by playwright. Screenshots of each page land in test-artifacts/console
(ignored by git) so a failed run in CI can be looked at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rest.conftest import api, running, served_for_module  # the REST API's instance: one per test module
from tests.rest.rest_instance import RestApi
from tests.support.instance_runner import RunningInstance

__all__ = ["api", "running"]

# a login is checked with the database again after this long (the default is 30 s): the tests of a revoked role
# wait for the console to notice, not for half a minute
LOGIN_CACHE_SECONDS = 1.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningInstance, RestApi]]:
    with served_for_module(tmp_path_factory, login_cache_seconds=str(LOGIN_CACHE_SECONDS)) as pair:
        yield pair


CHROMIUM = Path(os.environ.get("REDPSS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


def browser_missing() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (scripts/setup installs Debian's chromium)"
    return ""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the console's browser tests cannot run: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page_of(browser: Any, api: RestApi) -> Iterator[Any]:
    """Log in with a fresh browser context: page_of(user) -> a page on the overview."""
    contexts: list[Any] = []

    def login(user: tuple[str, str]) -> Any:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: print(f"browser console: {message.type}: {message.text}"))
        page.on("pageerror", lambda error: print(f"browser page error: {error}"))
        page.goto(f"{api.base}/console/")
        assert "/console/login" in page.url  # no session: the login form first
        page.get_by_label("User").fill(user[0])
        page.get_by_label("Password").fill(user[1])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{api.base}/console/")
        return page

    yield login
    for context in contexts:
        context.close()


def shoot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def post_unoffered_form(page: Any, action: str) -> None:
    """Post a form the page never offered to `action`, with the session's own CSRF token (from the logout form), and
    wait for the console's error page: what the server refuses whatever the page showed."""
    page.evaluate(
        """(action) => { const f = document.createElement('form'); f.method = 'post'; f.action = action;
                         const t = document.createElement('input'); t.name = 'csrf';
                         t.value = document.querySelector('input[name=csrf]').value; f.appendChild(t);
                         document.body.appendChild(f); f.submit(); }""",
        action,
    )
    page.wait_for_selector("#error")
