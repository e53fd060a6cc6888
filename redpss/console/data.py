"""What the console's pages show, gathered through the operations layer (blocking: called in a worker thread).

Each page's data is one function returning plain dicts for the templates. A part that cannot be read (the database
away, JMON stopped) does not fail the page: it becomes a problem at the top of the overview, and the rest shows.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from redpss.core.errors import RedpssError
from redpss.ops import control, history, jobs, status
from redpss.ops.instance import Instance, NotRunning
from redpss.ops.keys import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from redpss.core.db import DbSession

RECENT_RUNS = 15  # runs listed on the overview
FAILED_WINDOW = 3600  # failed runs of the last hour count as "wrong now"
LAST_RUNS_SCAN = 1000  # the newest runs read to find each job's last run
LOG_FILE_BYTES = 2 * 1024 * 1024  # of each log/DB file, only the tail is searched for a run's lines
LOG_FILES = 3  # the newest log/DB files of a schema searched
LOAD_POINTS = 360  # points per series on a load chart (buckets averaged)
RANGES = {"hour": 3600, "day": 86400, "week": 7 * 86400}
_PID = re.compile(r"\(pid (\d+)\)")
JOB_LOG = (
    "SELECT RUN_ID, ATTEMPT, RUN_TRIGGER, SCHEDULED_AT, STARTED_AT, ENDED_AT, STATUS, SKIP_REASON, MESSAGE, WORKER, "
    "ROWS_LOADED FROM {schema}.ADM_JOB_LOG WHERE JOB_ID = {{id!d}} "
    "ORDER BY STARTED_AT DESC NULLS LAST, SCHEDULED_AT DESC LIMIT {{limit!d}}"
)


T = TypeVar("T")


class _Kept:
    """A database session lent to the operations of one page: their close() leaves it open for the next read."""

    def __init__(self, session: DbSession) -> None:
        self.session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def close(self) -> None:
        """The page closes the session when it is done (one_session)."""


class PageInstance(Instance):
    """The instance as one page reads it: every query of the page on one database session, since a login costs
    more than the queries (about 0.2 s each on devdb; a page makes up to five)."""

    kept: list[_Kept] | None = None

    def db(self) -> DbSession:
        if self.kept is None:
            return super().db()
        if not self.kept:
            self.kept.append(_Kept(super().db()))
        return cast("DbSession", self.kept[0])


def per_page(read: Callable[..., T]) -> Callable[..., T]:
    """`read(instance, ...)` with its database reads on one session, closed when it returns."""

    @functools.wraps(read)
    def on_one_session(instance: Instance, *args: Any, **kwargs: Any) -> T:
        kept: list[_Kept] = []
        page = PageInstance(instance.paths, instance.config, instance.client, instance.db_user, instance.db_password,
                            kept=kept)  # fmt: skip
        try:
            return read(page, *args, **kwargs)
        finally:
            for lent in kept:
                lent.session.close()

    return on_one_session


def when(value: Any) -> dt.datetime | None:
    """A TIMESTAMP as the driver returns it (text like '2026-11-30 03:25:00.000000', or a datetime) as a datetime."""
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _timed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs with LATENESS (started - scheduled) and DURATION (ended - started) in seconds, where both are known."""
    for row in rows:
        scheduled, started, ended = (when(row.get(c)) for c in ("SCHEDULED_AT", "STARTED_AT", "ENDED_AT"))
        row["LATENESS"] = (started - scheduled).total_seconds() if started and scheduled else None
        row["DURATION"] = (ended - started).total_seconds() if started and ended else None
    return rows


def _since(pid: int) -> float | None:
    """When a local process started (its /proc entry's time); None when it is not visible here."""
    try:
        return Path(f"/proc/{pid}").stat().st_ctime
    except OSError:
        return None


def _daemons(found: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for program, seen in found.items():
        match = _PID.search(str(seen.get("detail", "")))
        since = _since(int(match[1])) if match and seen.get("running") else None
        rows.append({"program": program, "running": bool(seen.get("running")), "detail": seen.get("detail", ""),
                     "since": since})  # fmt: skip
    return rows


def _lateness(entry: dict[str, Any], now: float) -> float | None:
    """Seconds an entry is overdue: its due time passed by more than its interval (None when it is not)."""
    due, interval = entry.get("next_due"), entry.get("interval_seconds")
    if not entry.get("scheduled") or due is None:
        return None
    late = now - float(due)
    return late if late > float(interval or 60) else None


def _shown(instance: Instance) -> dict[str, Any]:
    """JMON's `show` (entries, lateness) and SENDMAIL's spool; the spool alone while JMON is not running."""
    from redpss.core.wire import WireError  # noqa: PLC0415 - loaded by control.show already

    try:
        return control.show(instance)
    except (NotRunning, WireError):  # not running, or alive but not answering: the page shows the rest
        return {"mail": control.mail_spool(instance)}


def _database_part(instance: Instance) -> tuple[list[str], list[dict[str, Any]]]:
    """What is wrong according to the database (executor errors, failed runs of the last hour), the latest runs."""
    problems: list[str] = []
    try:
        errors = jobs.list_errors(instance)
        problems += [
            f"watcher {e['SCHEMA_NAME']}.{e['WATCHER_ID']} ({e['WATCHER_NAME']}): executor error not reset: "
            f"{e['ERROR_MESSAGE']}"
            for e in errors
        ]
        since = dt.datetime.now() - dt.timedelta(seconds=FAILED_WINDOW)
        failed = history.failures_ended_since(instance, since, 100)
        problems += [
            f"run {r['RUN_ID']} of {r['SCHEMA_NAME']}.{r['JOB_ID']} ({r['JOB_NAME']}) "
            f"{'failed' if r['STATUS'] == 'FAILED' else 'timed out'} at {r['ENDED_AT'] or r['STARTED_AT']}: "
            f"{r['MESSAGE'] or ''}"
            for r in failed
        ]
        recent = _timed(history.runs(instance, history.RunFilter(), history.Page(limit=RECENT_RUNS)))
    except RedpssError as exc:
        return [f"the database cannot be read: {exc}"], []
    return problems, recent


@per_page
def overview(instance: Instance) -> dict[str, Any]:
    """The overview page: problems first, then daemons, pools, spools and the latest runs.

    The daemons' probes, JMON's `show` and the database reads wait on different servers: they run at the same time.
    """
    now = time.time()
    with ThreadPoolExecutor(3, thread_name_prefix="console-overview") as pool:
        summary_of = pool.submit(status.instance_status, instance)
        shown_of = pool.submit(_shown, instance)
        database_of = pool.submit(_database_part, instance)
        summary, shown, (database_problems, recent) = summary_of.result(), shown_of.result(), database_of.result()
    daemons = _daemons(summary["daemons"])
    problems = [f"{d['program']} is down: {d['detail']}" for d in daemons if not d["running"]]
    if summary["suspended"]:
        problems.append("the instance is suspended: no run starts until it is resumed")
    for entry in shown.get("entries") or []:
        kind, schema, id_ = entry["key"]
        if entry.get("blocked"):
            problems.append(f"{kind} {schema}.{id_} ({entry['name']}) is blocked by a watcher executor error")
        late = _lateness(entry, now)
        if late is not None:
            problems.append(f"{kind} {schema}.{id_} ({entry['name']}) is late by {late:.0f} s")
    mail = shown.get("mail") or {}
    if mail.get("dead"):
        problems.append(f"{mail['dead']} dead letter(s) in SENDMAIL's spool ({mail.get('folder', '')})")
    return {
        "now": now,
        "summary": summary,
        "daemons": daemons,
        "problems": problems + database_problems,
        "mail": mail,
        "lateness": shown.get("lateness") or {},
        "recent": recent,
    }


def _entries(instance: Instance) -> dict[tuple[str, str, int], dict[str, Any]]:
    try:
        shown = control.show(instance)
    except NotRunning:
        return {}
    return {(str(e["key"][0]), str(e["key"][1]), int(e["key"][2])): e for e in shown.get("entries") or []}


def _last_runs(instance: Instance) -> dict[tuple[str, int], dict[str, Any]]:
    rows = history.runs(instance, history.RunFilter(), history.Page(limit=LAST_RUNS_SCAN))
    last: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        last.setdefault((str(row["SCHEMA_NAME"]), int(row["JOB_ID"])), row)
    return last


def state_of(entry: dict[str, Any] | None, active: bool) -> str:
    """One word, as `redctl show` says it."""
    if entry is None:
        return "ACTIVE" if active else "INACTIVE"
    if entry.get("blocked"):
        return "BLOCKED"
    if entry.get("running"):
        return "RUNNING"
    if entry.get("queued"):
        return "QUEUED"
    return "ACTIVE" if entry.get("active") else "INACTIVE"


ROWS_PER_PAGE = 200  # one page of a table: 10,000 jobs on one page were megabytes, rendered again at every refresh


def paged(rows: list[dict[str, Any]], number: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Page `number` (1 is the first; beyond the last is the last) of `rows`, and where it lies among them."""
    pages = max(1, -(-len(rows) // ROWS_PER_PAGE))
    number = min(max(1, number), pages)
    first = (number - 1) * ROWS_PER_PAGE
    shown = rows[first : first + ROWS_PER_PAGE]
    return shown, {"number": number, "pages": pages, "first": first + 1 if shown else 0,
                   "last": first + len(shown), "matching": len(rows)}  # fmt: skip


@per_page
def job_table(
    instance: Instance, schema: str | None, pool: str | None, state: str | None, *, page: int = 1, watcher_page: int = 1
) -> dict[str, Any]:
    """Jobs and watchers with state, last run, next run and lateness; filtered by schema, pool and state, one page
    of each table."""
    now = time.time()
    entries = _entries(instance)
    last = _last_runs(instance)
    rows = []
    for job in jobs.list_jobs(instance):
        key = (str(job["SCHEMA_NAME"]), int(job["JOB_ID"]))
        entry = entries.get(("JOB", *key))
        rows.append({**job, "STATE": state_of(entry, bool(job["ACTIVE"])), "LAST": last.get(key),
                     "NEXT_DUE": entry.get("next_due") if entry else None,
                     "LATE": _lateness(entry, now) if entry else None})  # fmt: skip
    watchers = []
    for watcher in jobs.list_watchers(instance):
        entry = entries.get(("WATCHER", str(watcher["SCHEMA_NAME"]), int(watcher["WATCHER_ID"])))
        watchers.append({**watcher, "STATE": state_of(entry, bool(watcher["ACTIVE"])),
                         "NEXT_DUE": entry.get("next_due") if entry else None})  # fmt: skip
    choices = {
        "schemas": sorted({r["SCHEMA_NAME"] for r in rows} | {w["SCHEMA_NAME"] for w in watchers}),
        "pools": sorted({str(r["POOL"]) for r in rows if r["POOL"]}),
        "states": ["ACTIVE", "INACTIVE", "RUNNING", "QUEUED", "BLOCKED"],
    }

    def keep(row: dict[str, Any], with_pool: bool = True) -> bool:
        return (
            (schema is None or row["SCHEMA_NAME"] == schema)
            and (pool is None or not with_pool or row.get("POOL") == pool)
            and (state is None or row["STATE"] == state)
        )

    shown_jobs, jobs_page = paged([r for r in rows if keep(r)], page)
    shown_watchers, watchers_page = paged([w for w in watchers if keep(w, with_pool=False) and pool is None],
                                          watcher_page)  # fmt: skip
    return {
        "jobs": shown_jobs,
        "jobs_page": jobs_page,
        "watchers": shown_watchers,
        "watchers_page": watchers_page,
        "total_jobs": len(rows),
        "choices": choices,
        "errors": {(e["SCHEMA_NAME"], int(e["WATCHER_ID"])) for e in jobs.list_errors(instance)},
    }


@per_page
def runs_page(instance: Instance, where: history.RunFilter, limit: int) -> dict[str, Any]:
    return {"runs": _timed(history.runs(instance, where, history.Page(limit=limit)))}


@per_page
def job_runs(instance: Instance, key: str, limit: int) -> dict[str, Any]:
    """One job's detail and its runs from its schema's own run log (with ROWS_LOADED)."""
    session = instance.db()
    try:
        schema, id_, name = resolve(session, "JOB", key)
        rows = session.fetch_dicts(JOB_LOG.format(schema=schema), {"id": id_, "limit": limit})
    finally:
        session.close()
    return {"schema": schema, "id": id_, "name": name, "runs": _timed(rows)}


@per_page
def run_log(instance: Instance, schema: str, job_id: int, run_id: str) -> dict[str, Any]:
    """A run's lines: the database's messages about it (ALL_LOG_MESSAGES), the lines of log/DB naming it (the
    database processes' log, DBLS) and SCHED's lines about it (the job log: start, outcome, retries)."""
    # the run's own messages asked of the database: the job's newest page, filtered here, held none of an older run
    # of a busy job
    where = history.LogFilter(schema=schema, job_id=job_id, run_id=run_id)
    messages = history.log_messages(instance, where, history.Page(limit=history.MAX_PAGE))
    return {
        "run_id": run_id,
        "messages": messages,
        "lines": _log_lines(instance.paths.db_log_dir(schema), "*.log", run_id),
        "sched": _log_lines(instance.paths.log, "sched-*.log", run_id),
    }


def _log_lines(folder: Path, pattern: str, run_id: str) -> list[str]:
    """The lines naming `run_id` in the newest LOG_FILES daily files of `folder` (each file's tail only)."""
    if not folder.is_dir() or not run_id:
        return []
    dated = [p for p in folder.glob(pattern) if p.is_file() and not p.is_symlink()]
    files = sorted(dated, key=lambda p: p.stat().st_mtime)[-LOG_FILES:]
    needle = run_id.encode()
    found: list[str] = []
    for path in files:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - LOG_FILE_BYTES))
            found += [line.decode(errors="replace").rstrip() for line in handle if needle in line]
    return found[-500:]


@per_page
def load_chart(instance: Instance, span: str) -> dict[str, Any]:
    """ADM_JMON_LOAD of the last hour/day/week as series per pool, averaged into at most LOAD_POINTS buckets."""
    seconds = RANGES[span]
    since = dt.datetime.now() - dt.timedelta(seconds=seconds)
    rows: list[dict[str, Any]] = []
    while True:  # a week of per-minute rows for a few pools is some ten thousand rows: read page by page
        page = history.load_series(instance, None, since, None, history.Page(limit=history.MAX_PAGE, offset=len(rows)))
        rows += page
        if len(page) < history.MAX_PAGE or len(rows) >= 100 * history.MAX_PAGE:
            break
    bucket = max(60.0, seconds / LOAD_POINTS)
    series: dict[str, dict[float, list[list[float]]]] = {}
    for row in rows:
        stamp = when(row["LOG_TIME"])
        if stamp is None:
            continue
        epoch = stamp.timestamp()
        slot = epoch - epoch % bucket
        values = [float(row.get(c) or 0) for c in ("RUNS_STARTED", "BUSY", "QUEUED", "LATENESS_P50_MS",
                                                   "LATENESS_MAX_MS", "POOL_SIZE")]  # fmt: skip
        series.setdefault(str(row["POOL"]), {}).setdefault(slot, []).append(values)
    pools = {}
    for pool, slots in sorted(series.items()):
        times = sorted(slots)
        averaged = [[sum(v[i] for v in slots[t]) / len(slots[t]) for i in range(6)] for t in times]
        maxima = [max(v[4] for v in slots[t]) for t in times]
        pools[pool] = {
            "t": times,
            "runs": [a[0] for a in averaged],
            "busy": [a[1] for a in averaged],
            "queued": [a[2] for a in averaged],
            "p50": [a[3] for a in averaged],
            "max": maxima,
            "size": [a[5] for a in averaged],
        }
    return {"span": span, "bucket": bucket, "rows": len(rows), "pools": pools}
