"""The API's Starlette application: routes, who may call them, and the JSON they answer.

Handlers parse and check the request, call the operations layer (redpss.ops) in a thread (the database driver and
the wire client block), and encode what it returns. Every client is authenticated by redpss.rest.auth (HTTP Basic,
a database login); reading needs the reader role, changing the operator role. /health, /openapi.json and, on a
loopback listener only, /metrics need no credentials.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from redpss.core.config import Config
from redpss.core.digits import is_decimal
from redpss.core.durable import write_atomically
from redpss.core.errors import RedpssError
from redpss.core.paths import InstancePaths
from redpss.ops import control, history, jobs, status
from redpss.ops.instance import Instance
from redpss.rest import errors
from redpss.rest.auth import Authenticator, AuthRefused, CannotCheck, NoApiRole, Principal, TooManyAttempts
from redpss.rest.cache import Cached
from redpss.rest.errors import ApiError
from redpss.rest.metrics import render_metrics
from redpss.rest.routekeys import JOB_KEY, MAX_ID
from redpss.rest.sameorigin import another_site

HEALTH_SECONDS = 1.0  # /health asks JMON and SCHED at most once a second per worker; load balancers poll often
HEALTH_DAEMONS = frozenset({"jmon", "sched"})  # the API is healthy while these two serve
LIST_SECONDS = 2.0  # a job or watcher list is read at most every 2 s per worker (a change made here drops it)
METRICS_SECONDS = 5.0
# /api/v1/status asks systemd and JMON at most once a second per worker, however often logged-in readers poll it
# (a change made here drops it, so the next answer shows it)
STATUS_SECONDS = 1.0
CHANGE_MARKER = "rest-changed"  # in tmp/: replaced at every change made through the API, for the other workers
# the database ends an API request's statement after this long, below the sessions' socket_timeout (30 s): a request
# the API stopped waiting for (and answered 503) no longer runs on in the database, however often a reader asks
QUERY_TIMEOUT_SECONDS = 20.0
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|::1|localhost)$")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,127}")  # whole text (fullmatch): `$` let a trailing line break through

Handler = Callable[[Request], Awaitable[Response]]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def encode(data: Any) -> bytes:
    return json.dumps(data, default=_plain, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(encode(data), status_code=status_code, media_type="application/json")


def is_loopback(host: str) -> bool:
    return bool(LOOPBACK.match(host))


class Query:
    """The query string of one request, read with checks that answer 400 naming the parameter."""

    def __init__(self, request: Request, allowed: tuple[str, ...]) -> None:
        self.params: Mapping[str, str] = request.query_params if request.scope["query_string"] else {}
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ApiError(400, f"unknown query parameter {unknown[0]!r}; allowed: {', '.join(allowed) or 'none'}")

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        text = self.params.get(name)
        if text is None:
            return default
        # the length first: int() of a number past 4,300 digits raises (a 500 and a traceback, before any login)
        if not is_decimal(text) or len(text) > 30 or not low <= int(text) <= high:
            raise ApiError(400, f"query parameter {name} must be an integer from {low} to {high}")
        return int(text)

    def word(self, name: str) -> str | None:
        text = self.params.get(name)
        if text is None:
            return None
        if not _WORD.fullmatch(text):
            raise ApiError(400, f"query parameter {name} must be a name (letters, digits, _; a letter first)")
        return text

    def time(self, name: str) -> dt.datetime | None:
        text = self.params.get(name)
        if text is None:
            return None
        try:
            value = dt.datetime.fromisoformat(text)
            if not 1900 <= value.year <= 9998:
                raise ValueError(value.year)
            if value.tzinfo is not None:  # the database keeps local times without a zone
                value = value.astimezone().replace(tzinfo=None)
        except (ValueError, OverflowError):
            raise ApiError(
                400, f"query parameter {name} must be an ISO 8601 time from 1900 to 9998, e.g. 2026-01-31T12:00:00"
            ) from None
        return value

    def flag(self, name: str) -> bool:
        text = self.params.get(name, "false").lower()
        if text not in ("true", "false", "1", "0"):
            raise ApiError(400, f"query parameter {name} must be true or false")
        return text in ("true", "1")

    def page(self) -> history.Page:
        limit = self.integer("limit", 100, 1, history.MAX_PAGE)
        offset = self.integer("offset", 0, 0, 10**9)
        return history.Page(limit=limit or 100, offset=offset or 0)


class Api:
    """The state one worker keeps: the instance, the authenticator and short caches."""

    def __init__(self, paths: InstancePaths, config: Config) -> None:
        self.instance = Instance(
            paths,
            config,
            client="RED-PSS REST",
            db_user=config.rest.exa_username,
            db_password=config.rest.exa_password,
            db_query_timeout=QUERY_TIMEOUT_SECONDS,
        )
        self.auth = Authenticator(config)
        self.metrics_open = is_loopback(config.rest.gu_host)
        self.proxies = frozenset(filter(None, config.rest.trusted_proxies.split(",")))
        self.health = Cached(HEALTH_SECONDS, self._health)
        self.metrics = Cached(METRICS_SECONDS, self._metrics)
        self.readings: dict[str, Cached[bytes]] = {
            "status": Cached(STATUS_SECONDS, lambda: encode(status.instance_status(self.instance))),
            "jobs": Cached(LIST_SECONDS, lambda: self._encoded(jobs.list_jobs)),
            "watchers": Cached(LIST_SECONDS, lambda: self._encoded(jobs.list_watchers)),
        }
        self.change_marker = paths.tmp / CHANGE_MARKER
        self._change_seen = self._change_stamp()

    # --- who calls -------------------------------------------------------------------------------------------
    async def principal(self, request: Request, operate: bool = False) -> Principal:
        """The caller; with `operate`, one who may change things, in a request not made by another site's page."""
        if operate and (site := another_site(request)):
            raise ApiError(
                403,
                f"a request from another site ({site}) may not change anything: a browser sends the Basic "
                "credentials it remembers along with it; scripts and the console are not affected",
            )
        client = request.client.host if request.client else "-"
        try:
            principal = await self.auth.authenticate(request.headers.get("authorization"), client)
        except TooManyAttempts as exc:
            raise ApiError(429, exc.reason, headers={"Retry-After": str(max(1, round(exc.retry_after)))}) from None
        except NoApiRole as exc:
            raise ApiError(403, exc.reason) from None
        except AuthRefused as exc:
            realm = f'Basic realm="RED-PSS {self.instance.paths.redenv}", charset="UTF-8"'
            raise ApiError(401, exc.reason, headers={"WWW-Authenticate": realm}) from None
        except CannotCheck as exc:
            raise ApiError(503, exc.reason) from None
        if operate and not principal.may_operate:
            raise ApiError(403, f"user {principal.user} may read but not change: this needs the operator role")
        return principal

    async def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """An operation in a worker thread, its errors as API errors."""
        try:
            return await run_in_threadpool(function, *args, **kwargs)
        except RedpssError as exc:
            raise errors.from_operation(exc) from None

    def _encoded(self, listing: Callable[[Instance], list[dict[str, Any]]]) -> bytes:
        return encode(listing(self.instance))

    def changed(self) -> None:
        """Something was changed through this worker: its next reading asks again, and so does every other worker's
        (the marker file's time tells them: each keeps its own readings)."""
        self._drop_readings()
        with contextlib.suppress(OSError):  # the other workers then answer within their readings' periods
            # a new random content, renamed over the marker: two changes within one tick of the file system's clock
            # leave the same mtime, but never the same inode and content
            write_atomically(self.change_marker, [secrets.token_hex(8).encode()], sync=False)
            self._change_seen = self._change_stamp()

    def _drop_readings(self) -> None:
        for cached in self.readings.values():
            cached.drop()

    def _change_stamp(self) -> tuple[int, int, int]:
        try:
            info = self.change_marker.stat()
        except OSError:
            return (0, 0, 0)
        return (info.st_mtime_ns, info.st_ino, info.st_ctime_ns)

    def _see_changes_elsewhere(self) -> None:
        """Another worker changed something since this one last looked: its readings are read again."""
        stamp = self._change_stamp()
        if stamp != self._change_seen:
            self._change_seen = stamp
            self._drop_readings()

    # --- open to all -------------------------------------------------------------------------------------------
    def _health(self) -> tuple[int, bytes]:
        """The status and the body of /health, encoded once per refresh."""
        found = status.daemons(self.instance, HEALTH_DAEMONS)
        up = {name: bool(found.get(f"redpss-{name}", {}).get("running")) for name in sorted(HEALTH_DAEMONS)}
        healthy = all(up.values())
        body = {"status": "ok" if healthy else "down", "instance": self.instance.paths.redenv, "daemons": up}
        return (200 if healthy else 503), encode(body)

    async def get_health(self, request: Request) -> Response:
        Query(request, ())
        code, body = await self.health.get()
        return Response(body, status_code=code, media_type="application/json")

    def _metrics_without_login(self, request: Request) -> bool:
        """On a loopback listener, a local client needs no login for /metrics; a request a reverse proxy passed on
        (one that names its client, or comes from a declared proxy) does, or the proxy would open it to anyone."""
        if not self.metrics_open:
            return False
        client = request.client.host if request.client else ""
        forwarded = any(name in request.headers for name in ("forwarded", "x-forwarded-for", "x-real-ip"))
        return is_loopback(client) and not forwarded and client not in self.proxies

    def _metrics(self) -> str:
        return render_metrics(self.instance)

    async def get_metrics(self, request: Request) -> Response:
        Query(request, ())
        if not self._metrics_without_login(request):
            await self.principal(request)
        try:
            text = await self.metrics.get()
        except RedpssError as exc:
            raise errors.from_operation(exc) from None
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    # --- reading -----------------------------------------------------------------------------------------------
    async def get_status(self, request: Request) -> Response:
        return await self.reading(request, "status")

    async def reading(self, request: Request, kind: str) -> Response:
        """A cached reading (the status, a list) for a logged-in reader."""
        Query(request, ())
        await self.principal(request)
        self._see_changes_elsewhere()
        try:
            body = await self.readings[kind].get()
        except RedpssError as exc:
            raise errors.from_operation(exc) from None
        return Response(body, media_type="application/json")

    async def get_jobs(self, request: Request) -> Response:
        return await self.reading(request, "jobs")

    async def get_watchers(self, request: Request) -> Response:
        return await self.reading(request, "watchers")

    async def detail(self, request: Request, kind: str) -> Response:
        Query(request, ())
        await self.principal(request)
        return json_response(await self.call(jobs.detail, self.instance, kind, _key(request)))

    async def get_job(self, request: Request) -> Response:
        return await self.detail(request, "JOB")

    async def get_watcher(self, request: Request) -> Response:
        return await self.detail(request, "WATCHER")

    async def get_runs(self, request: Request) -> Response:
        query = Query(request, ("schema", "job_id", "status", "since", "until", "limit", "offset"))
        where = history.RunFilter(
            schema=query.word("schema"),
            job_id=query.integer("job_id", None, 0, MAX_ID),
            status=query.word("status"),
            since=query.time("since"),
            until=query.time("until"),
        )
        page = query.page()
        await self.principal(request)
        rows = await self.call(history.runs, self.instance, where, page)
        return json_response({"limit": page.limit, "offset": page.offset, "runs": rows})

    async def get_watcher_errors(self, request: Request) -> Response:
        Query(request, ())
        await self.principal(request)
        return json_response(await self.call(jobs.list_errors, self.instance))

    async def get_load(self, request: Request) -> Response:
        query = Query(request, ("pool", "since", "until", "limit", "offset"))
        pool, since, until, page = query.word("pool"), query.time("since"), query.time("until"), query.page()
        await self.principal(request)
        rows = await self.call(history.load_series, self.instance, pool, since, until, page)
        return json_response({"limit": page.limit, "offset": page.offset, "load": rows})

    async def get_log_messages(self, request: Request) -> Response:
        query = Query(request, ("schema", "level", "job_id", "since", "until", "limit", "offset"))
        where = history.LogFilter(
            schema=query.word("schema"),
            level=query.word("level"),
            job_id=query.integer("job_id", None, 0, MAX_ID),
            since=query.time("since"),
            until=query.time("until"),
        )
        page = query.page()
        await self.principal(request)
        rows = await self.call(history.log_messages, self.instance, where, page)
        return json_response({"limit": page.limit, "offset": page.offset, "messages": rows})

    # --- changing (operator role) --------------------------------------------------------------------------
    async def toggle(self, request: Request, kind: str) -> Response:
        query = Query(request, ("active",))
        wanted = query.flag("active") if "active" in query.params else None  # None: flip
        principal = await self.principal(request, operate=True)
        outcome = await self.call(jobs.toggle, self.instance, kind, _key(request), wanted)
        self.changed()
        errors.log.info(
            "%s %s.%s toggled to active=%s by %s", kind, outcome.schema, outcome.id, outcome.active, principal.user
        )
        return json_response(
            {
                "kind": outcome.kind,
                "schema": outcome.schema,
                "id": outcome.id,
                "name": outcome.name,
                "active": outcome.active,
                "applied": not outcome.note,
            }
        )

    async def toggle_job(self, request: Request) -> Response:
        return await self.toggle(request, "JOB")

    async def toggle_watcher(self, request: Request) -> Response:
        return await self.toggle(request, "WATCHER")

    async def start_job(self, request: Request) -> Response:
        query = Query(request, ("force", "scheduled_only"))
        force, scheduled_only = query.flag("force"), query.flag("scheduled_only")
        principal = await self.principal(request, operate=True)
        started = await self.call(
            jobs.start,
            self.instance,
            _key(request),
            by=f"REST ({principal.user})",
            force=force,
            scheduled_only=scheduled_only,
        )
        return json_response(
            {
                "schema": started.schema,
                "id": started.id,
                "name": started.name,
                "run_id": started.run_id,
                "state": started.state,
                "forced": started.forced,
            },
            202,
        )

    async def reset_errors(self, request: Request, watcher: str | None) -> Response:
        principal = await self.principal(request, operate=True)
        outcome = await self.call(jobs.reset_errors, self.instance, watcher, by=f"REST ({principal.user})")
        return json_response(
            {"reset": [{"schema": s, "id": i} for s, i in outcome.watchers], "applied": not outcome.note}
        )

    async def reset_all_errors(self, request: Request) -> Response:
        Query(request, ())
        return await self.reset_errors(request, None)

    async def reset_watcher_errors(self, request: Request) -> Response:
        Query(request, ())
        return await self.reset_errors(request, _key(request))

    async def suspend(self, request: Request) -> Response:
        return await self._set_suspended(request, True)

    async def resume(self, request: Request) -> Response:
        return await self._set_suspended(request, False)

    async def _set_suspended(self, request: Request, suspended: bool) -> Response:
        Query(request, ())
        principal = await self.principal(request, operate=True)
        await self.call(control.set_suspended, self.instance, suspended)
        self.changed()
        errors.log.info("instance %s by %s", "suspended" if suspended else "resumed", principal.user)
        return json_response({"instance": self.instance.paths.redenv, "suspended": suspended})

    async def reload(self, request: Request) -> Response:
        Query(request, ())
        await self.principal(request, operate=True)
        outcome = await self.call(control.reload, self.instance)
        self.changed()
        return json_response({"definitions": outcome.definitions, "invalid": outcome.invalid})


def _key(request: Request) -> str:
    """SCHEMA.ID from the path (the operations check the schema's spelling and whether it exists)."""
    id_ = request.path_params["id"]
    if id_ > MAX_ID:
        raise ApiError(400, f"id {id_} is out of range: ids are 0 to {MAX_ID}")
    return f"{request.path_params['schema']}.{id_}"


async def get_openapi(request: Request) -> Response:
    from redpss.rest.openapi import document  # noqa: PLC0415

    return json_response(document())


def build_app(paths: InstancePaths, config: Config) -> Starlette:
    api = Api(paths, config)
    key = JOB_KEY
    routes = [
        Route("/health", api.get_health, methods=["GET"]),
        Route("/metrics", api.get_metrics, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
        Route("/api/v1/status", api.get_status, methods=["GET"]),
        Route("/api/v1/jobs", api.get_jobs, methods=["GET"]),
        Route(f"/api/v1/jobs/{key}", api.get_job, methods=["GET"]),
        Route(f"/api/v1/jobs/{key}/toggle", api.toggle_job, methods=["POST"]),
        Route(f"/api/v1/jobs/{key}/start", api.start_job, methods=["POST"]),
        Route("/api/v1/watchers", api.get_watchers, methods=["GET"]),
        Route(f"/api/v1/watchers/{key}", api.get_watcher, methods=["GET"]),
        Route(f"/api/v1/watchers/{key}/toggle", api.toggle_watcher, methods=["POST"]),
        Route(f"/api/v1/watchers/{key}/reset-errors", api.reset_watcher_errors, methods=["POST"]),
        Route("/api/v1/watcher-errors", api.get_watcher_errors, methods=["GET"]),
        Route("/api/v1/watcher-errors/reset", api.reset_all_errors, methods=["POST"]),
        Route("/api/v1/runs", api.get_runs, methods=["GET"]),
        Route("/api/v1/load", api.get_load, methods=["GET"]),
        Route("/api/v1/log-messages", api.get_log_messages, methods=["GET"]),
        Route("/api/v1/suspend", api.suspend, methods=["POST"]),
        Route("/api/v1/resume", api.resume, methods=["POST"]),
        Route("/api/v1/reload", api.reload, methods=["POST"]),
    ]
    from redpss.console.routes import console_routes  # noqa: PLC0415 - the web console under /console, same users

    return Starlette(
        routes=[*routes, *console_routes(api)],
        exception_handlers={
            ApiError: errors.api_error,
            HTTPException: errors.http_error,
            Exception: errors.internal_error,
        },
    )
