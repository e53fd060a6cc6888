"""The web console: server-rendered pages under /console of the REST API's app (same HTTPS port, users and roles).

Pages are HTML from jinja2 templates and read without JavaScript; console.js only refreshes the overview and the run
lists in place (short polling of the same URL with X-Console-Partial, answered with the page's <main> alone) and
draws the load charts with the bundled uPlot. Logins go through the API's Authenticator (database login, roles,
per-address failure limits); the session lives in a signed cookie (redpss.console.session). Every POST needs the
session's CSRF token, and every change the operator role, checked here whatever the page showed.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from redpss.console import data
from redpss.console.session import COOKIE, SESSION_SECONDS, RevokedSessions, Session, SessionKeys
from redpss.core.digits import is_decimal
from redpss.core.errors import RedpssError
from redpss.ops import history, jobs
from redpss.rest import errors
from redpss.rest.auth import AuthRefused, CannotCheck, Principal, TooManyAttempts
from redpss.rest.errors import ApiError
from redpss.rest.routekeys import JOB_KEY, MAX_ID
from redpss.rest.sameorigin import another_site

log = logging.getLogger("redpss.console")

HERE = Path(__file__).parent
PREFIX = "/console"
NOTE_COOKIE = "redpss_console_note"  # the outcome of the last action, shown once on the next page
MAX_FORM_BYTES = 16 * 1024
REFRESH_SECONDS = 3  # how often the overview and run lists refresh themselves
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Page = Callable[[Request, Session], Awaitable[Response]]


def _clock(epoch: Any) -> str:
    if epoch is None or epoch == "":
        return "-"
    if isinstance(epoch, dt.datetime):
        return epoch.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(epoch, str):
        return epoch[:19]  # a TIMESTAMP as the database driver returns it
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(epoch)))


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    if abs(value) < 120:
        return f"{value:.1f} s"
    if abs(value) < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = _clock
    env.filters["seconds"] = _seconds
    return env


class Console:
    """The console's handlers around the API's state (instance, authenticator, caches)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.keys = SessionKeys(api.instance.paths)
        self.revoked = RevokedSessions(api.instance.paths.tmp / "console-sessions.revoked")
        self.env = _environment()
        # browsers match cookies by host, not port: the instances of one server each need names of their own
        instance = api.instance.paths.redenv
        self.session_cookie, self.note_cookie = f"{COOKIE}_{instance}", f"{NOTE_COOKIE}_{instance}"

    # --- rendering -----------------------------------------------------------------------------------------
    def render(self, request: Request, template: str, session: Session | None, status: int = 200,
               **context: Any) -> Response:  # fmt: skip
        partial = request.headers.get("x-console-partial") == "1"
        note = request.cookies.get(self.note_cookie)
        html = self.env.get_template(template).render(
            prefix=PREFIX,
            session=session,
            csrf=self.keys.csrf_token(session) if session else "",
            instance=self.api.instance.paths.redenv,
            partial=partial,
            note=urllib.parse.unquote(note) if note and not partial else "",
            path=request.url.path,
            query=request.url.query,
            refresh=REFRESH_SECONDS,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if note and not partial:
            response.delete_cookie(self.note_cookie, path=PREFIX, secure=True, httponly=True, samesite="strict")
        return response

    def error_page(self, request: Request, session: Session | None, status: int, message: str) -> Response:
        return self.render(request, "error.html", session, status=status, status_code=status, message=message)

    async def session_of(self, request: Request) -> Session | None:
        """The request's session, its login checked again (at most every login_cache_seconds a database login):
        the roles are the database's now. While the database cannot say, the session stands for reading only."""
        session = self.keys.read(request.cookies.get(self.session_cookie))
        if session is None or self.revoked.revoked(session.sid):
            return None
        password = self.keys.password_of(session)
        if password is None:
            return None
        try:
            principal: Principal = await self.api.auth.recheck(session.user, password, _client(request))
        except CannotCheck:
            # the database is away: the overview (the daemons) still shows, when an operator needs it most, but
            # nothing is changed on roles nobody could confirm (a role revoked meanwhile would still act)
            return _with_role(session, may_operate=False, checked=False)
        except AuthRefused as exc:  # dropped, password changed, role revoked: the session ends for every copy
            log.warning("console: the session of %s ended: %s", session.user, exc.reason)
            await self._revoke(session)
            return None
        return _with_role(session, principal.may_operate)

    async def _revoke(self, session: Session) -> None:
        try:
            await asyncio.to_thread(self.revoked.revoke, session)
        except OSError as exc:
            log.error("the session of %s cannot be ended on the server (%s): its cookie stays valid until it "
                      "expires", session.user, exc)  # fmt: skip

    def page(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        """A page for logged-in users; without a session: the login form (or 401 for the page's own refresh)."""

        async def endpoint(request: Request) -> Response:
            session = await self.session_of(request)
            if session is None:
                if request.headers.get("x-console-partial") == "1":
                    return Response("login needed", status_code=401, headers=SECURITY_HEADERS)
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method != "GET":  # an action of an expired session is not repeated after the login
                    target = f"{PREFIX}/jobs"
                return RedirectResponse(f"{PREFIX}/login?next={urllib.parse.quote(target)}", status_code=303)
            try:
                return await handler(request, session)
            except ApiError as exc:
                return self.error_page(request, session, exc.status, exc.message)
            except RedpssError as exc:
                mapped = errors.from_operation(exc)
                return self.error_page(request, session, mapped.status, mapped.message)

        return endpoint

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.api.call(function, *args, **kwargs)

    # --- login -----------------------------------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        if await self.session_of(request) is not None:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        return self.render(request, "login.html", None, next=_local(request.query_params.get("next")))

    async def login(self, request: Request) -> Response:
        if another_site(request, null_origin_is_ours=True):
            return self.error_page(request, None, 403, CROSS_SITE)
        try:
            form = await _form(request)
        except ApiError as exc:  # too large, or too slow: the login page says so, not a JSON body
            return self.render(request, "login.html", None, exc.status, next=f"{PREFIX}/", failure=exc.message)
        user, password, target = form.get("user", "").strip(), form.get("password", ""), _local(form.get("next"))
        if not user or not password:
            return self.render(request, "login.html", None, 400, next=target, failure="Enter a user and a password.")
        client = _client(request)
        principal = await self._logged_in(request, user, password, client, target)
        if isinstance(principal, Response):
            return principal
        session, cookie = self.keys.issue(principal.user, principal.may_operate, password)
        role = "operator" if session.may_operate else "reader"
        log.info("console login: %s from %s (%s)", session.user, client, role)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.session_cookie, cookie, max_age=SESSION_SECONDS, path=PREFIX, secure=True,
                            httponly=True, samesite="strict")  # fmt: skip
        return response

    async def _logged_in(
        self, request: Request, user: str, password: str, client: str, target: str
    ) -> Principal | Response:
        """The principal the database's login gives, or the login page saying why there is none."""
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        try:
            principal: Principal = await self.api.auth.authenticate(basic, client)
            return principal
        except TooManyAttempts as exc:
            status, reason = 429, exc.reason
        except AuthRefused as exc:
            status, reason = 401, exc.reason
        except CannotCheck as exc:
            status, reason = 503, exc.reason
        return self.render(request, "login.html", None, status, next=target, failure=reason)

    async def logout(self, request: Request) -> Response:
        session = self.keys.read(request.cookies.get(self.session_cookie))  # a logout needs no fresh check
        if another_site(request, null_origin_is_ours=True):
            return self.error_page(request, session, 403, CROSS_SITE)
        try:
            form = await _form(request)
        except ApiError as exc:
            return self.error_page(request, session, exc.status, exc.message)
        if session is not None and not self.keys.csrf_ok(session, form.get("csrf")):
            return self.error_page(request, session, 403, "the form is not one this console rendered (CSRF token)")
        if session is not None:  # on the server too: a copy of the cookie must not outlive the logout
            await self._revoke(session)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(self.session_cookie, path=PREFIX, secure=True, httponly=True, samesite="strict")
        return response

    # --- reading ---------------------------------------------------------------------------------------------
    async def overview(self, request: Request, session: Session) -> Response:
        found = await self.call(data.overview, self.api.instance)
        return self.render(request, "overview.html", session, **found)

    async def job_list(self, request: Request, session: Session) -> Response:
        params = request.query_params
        schema = _choice(params.get("schema"))
        pool = _choice(params.get("pool"))
        state = _choice(params.get("state"))
        page, watcher_page = _page_number(params.get("page")), _page_number(params.get("wpage"))
        found = await self.call(
            data.job_table, self.api.instance, schema, pool, state, page=page, watcher_page=watcher_page
        )

        def page_link(name: str, number: int) -> str:
            """This page's URL (its filters kept) showing page `number` of the table paged by `name`."""
            url = request.url.include_query_params(**{name: number})
            return f"{url.path}?{url.query}"

        return self.render(request, "jobs.html", session, schema=schema, pool=pool, state=state,
                           page_link=page_link, **found)  # fmt: skip

    async def runs(self, request: Request, session: Session) -> Response:
        params = request.query_params
        where = history.RunFilter(schema=_choice(params.get("schema")), status=_choice(params.get("status")))
        found = await self.call(data.runs_page, self.api.instance, where, 100)
        return self.render(request, "runs.html", session, where=where, **found)

    async def job_runs(self, request: Request, session: Session) -> Response:
        key = _key(request)
        found = await self.call(data.job_runs, self.api.instance, key, 100)
        run_id = request.query_params.get("run")
        lines = None
        if run_id and any(str(r["RUN_ID"]) == run_id for r in found["runs"]):
            lines = await self.call(data.run_log, self.api.instance, found["schema"], found["id"], run_id)
        return self.render(request, "job.html", session, run=lines, **found)

    async def load(self, request: Request, session: Session) -> Response:
        span = request.query_params.get("range", "hour")
        if span not in data.RANGES:
            return self.error_page(request, session, 400, f"range must be one of {', '.join(data.RANGES)}")
        found = await self.call(data.load_chart, self.api.instance, span)
        return self.render(request, "load.html", session, ranges=list(data.RANGES), chart=found)

    # --- changing (operator role, CSRF token) ----------------------------------------------------------------
    async def act(self, request: Request, session: Session) -> Response:
        form = await _form(request)
        if not self.keys.csrf_ok(session, form.get("csrf")):
            return self.error_page(request, session, 403, "the form is not one this console rendered (CSRF token)")
        if not session.checked:
            return self.error_page(request, session, 503, "the database cannot confirm your login now; changes "
                                   "wait until it can (the pages still show what the daemons say)")  # fmt: skip
        if not session.may_operate:
            log.warning("console: %s (reader) refused %s", session.user, request.url.path)
            return self.error_page(request, session, 403, f"user {session.user} may read but not change: this "
                                   "needs the operator role")  # fmt: skip
        kind, action, key = request.path_params["kind"], request.path_params["action"], _key(request)
        by = f"console ({session.user})"
        if kind in ("jobs", "watchers") and action == "toggle":
            noun = "job" if kind == "jobs" else "watcher"
            wanted = {"true": True, "false": False}.get(form.get("active", ""))  # the state the page showed to set
            toggled = await self.call(jobs.toggle, self.api.instance, noun.upper(), key, wanted)
            note = f"{noun} {key} is now {'active' if toggled.active else 'inactive'}{toggled.note}"
        elif kind == "jobs" and action == "start":
            started = await self.call(jobs.start, self.api.instance, key, by=by)
            note = f"job {key} started: run {started.run_id or '-'} {started.state}"
        elif kind == "watchers" and action == "reset":
            reset = await self.call(jobs.reset_errors, self.api.instance, key, by=by)
            note = f"executor error of watcher {key} reset{reset.note}"
        else:
            return self.error_page(request, session, 404, f"no action {action} on {kind}")
        self.api.changed()
        log.info("console: %s by %s", note, session.user)
        response = RedirectResponse(_local(form.get("back"), f"{PREFIX}/jobs"), status_code=303)
        response.set_cookie(self.note_cookie, urllib.parse.quote(note), max_age=60, path=PREFIX, secure=True,
                            httponly=True, samesite="strict")  # fmt: skip
        return response


def _with_role(session: Session, may_operate: bool, checked: bool = True) -> Session:
    """The session with the role the last check found (`checked` False: no check could be made)."""
    if (session.may_operate, session.checked) == (may_operate, checked):
        return session
    return Session(session.user, may_operate, session.sid, session.expires, session.sealed, checked=checked)


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


CROSS_SITE = "the form was sent from a page of another site; log in and out from the console's own pages"


def _local(target: str | None, default: str = f"{PREFIX}/") -> str:
    """A redirect target inside the console only (never another site)."""
    if target and target.startswith(f"{PREFIX}/") and "//" not in target and "\\" not in target:
        return target
    return default


def _choice(value: str | None) -> str | None:
    """A filter value: a database name, or None for "all"."""
    if not value:
        return None
    if not value.replace("_", "").isalnum() or len(value) > 128:
        raise ApiError(400, f"{value[:40]!r} is not a name (letters, digits and _)")
    return value.upper()


def _page_number(value: str | None) -> int:
    """A table's page number from the query (1 when absent)."""
    if not value:
        return 1
    if not is_decimal(value) or len(value) > 9:
        raise ApiError(400, f"page {value[:20]!r} is not a page number (1, 2, ...)")
    return int(value)


def _key(request: Request) -> str:
    schema, id_ = request.path_params["schema"], request.path_params["id"]
    if not str(schema).replace("_", "").isalnum() or id_ > MAX_ID:
        raise ApiError(400, f"{schema}.{id_} is not a SCHEMA.ID")
    return f"{schema}.{id_}"


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form (the console's forms are small; no multipart parser needed).

    Read as it streams in and refused as soon as it passes MAX_FORM_BYTES (or says it will): the login form is
    posted before any login, and reading a body whole before looking at its size let anyone hold a worker's memory
    with one endless POST.
    """
    too_large = ApiError(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if is_decimal(declared) and len(declared) < 20 and int(declared) > MAX_FORM_BYTES:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise too_large
    except ClientDisconnect:  # gone, or closed by the worker because the body did not come (rest/worker.py)
        raise ApiError(408, "the form did not arrive in time") from None
    pairs = urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
    return dict(pairs)


def console_routes(api: Any) -> list[BaseRoute]:
    """The console's routes, to mount in the API's app (redpss.rest.app.build_app)."""
    console = Console(api)
    key = JOB_KEY
    return [
        Mount(
            PREFIX,
            routes=[
                Route("/", console.page(console.overview), methods=["GET"]),
                Route("/login", console.login_form, methods=["GET"]),
                Route("/login", console.login, methods=["POST"]),
                Route("/logout", console.logout, methods=["POST"]),
                Route("/jobs", console.page(console.job_list), methods=["GET"]),
                Route(f"/jobs/{key}", console.page(console.job_runs), methods=["GET"]),
                Route("/runs", console.page(console.runs), methods=["GET"]),
                Route("/load", console.page(console.load), methods=["GET"]),
                Route(f"/{{kind:str}}/{key}/{{action:str}}", console.page(console.act), methods=["POST"]),
                Mount("/static", app=StaticFiles(directory=HERE / "static"), name="console-static"),
            ],
        ),
        Route(PREFIX, lambda request: RedirectResponse(f"{PREFIX}/", status_code=307), methods=["GET"]),
    ]
