"""Due-time arithmetic for the schedule: interval grids and cron expressions in the server's local time.

Everything here is pure: times are epoch seconds passed in, nothing reads the clock.

Interval jobs live on a grid ``anchor + k * interval`` (elapsed seconds, so daylight saving time does not move them).

Cron expressions are evaluated by croniter in the server's local time zone (``TZ`` if set, else /etc/localtime).
Daylight saving time, pinned down by tests:
- spring forward: wall-clock times inside the skipped hour do not exist; croniter fires once at the first valid
  instant after the gap (a ``30 2 * * *`` job runs at 03:00 that day; an hourly job has no 02:00 run);
- fall back: the repeated hour happens twice. Expressions with a wildcard hour field (``0 * * * *``, ``*/5 * * * *``)
  fire in both passes, since each pass is a real hour; expressions with a fixed hour field (``30 2 * * *``) fire only
  in the first pass, so a daily job runs once a day (the behaviour of Vixie cron). croniter alone would fire twice.

croniter costs tens of microseconds per next time, so a ``CronCalendar`` keeps one croniter per expression and
memoises results per (expression, start time): thousands of jobs sharing an expression and a due time cost one
computation. It is not thread-safe (the croniter objects are reused); the schedule lives on one event loop.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from redpss.core.errors import StartupError

HOUR_FIELD = 1
MEMO_LIMIT = 50_000  # memoised cron results kept before the memo is cleared (bounded memory)
COUNT_EXACT_LIMIT = 512  # cron due times counted one by one; beyond that a missed count is extrapolated


class CronInvalid(ValueError):
    """A cron expression croniter rejects, or one that never fires."""


def local_zone() -> dt.tzinfo:
    """The server's time zone with its DST rules: ``TZ`` if set, else /etc/localtime, else the current UTC offset.

    A ``TZ`` that names no zone zoneinfo knows (a POSIX rule such as ``JST-9``, a typo) is refused: the C library
    would follow it for every timestamp written (SCHEDULED_AT, the logs) while cron would follow /etc/localtime, so
    a job would run at another hour than its expression says, and the log would show the shifted time."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            if name.startswith("/"):
                with Path(name).open("rb") as handle:
                    return ZoneInfo.from_file(handle, key=name)
            return ZoneInfo(name)
        except (OSError, ValueError, ZoneInfoNotFoundError):
            raise StartupError(
                f"TZ={name} is not a time zone this system knows (a name under /usr/share/zoneinfo such as "
                "Europe/Berlin, or a file): set TZ to such a name, or unset it to follow /etc/localtime"
            ) from None
    try:
        with Path("/etc/localtime").open("rb") as handle:
            return ZoneInfo.from_file(handle, key="/etc/localtime")
    except (OSError, ValueError):
        return dt.datetime.now().astimezone().tzinfo or dt.UTC


def spread_phase(token: str, interval: float) -> float:
    """A stable offset in [0, interval) per job: never-run interval jobs are spread over their interval, not bunched."""
    return (zlib.crc32(token.encode("utf-8")) / 2**32) * interval


def grid_after(anchor: float, interval: float, after: float) -> float:
    """The first point of the grid ``anchor + k * interval`` (k any integer) strictly after ``after``."""
    steps = math.floor((after - anchor) / interval) + 1
    due = anchor + steps * interval
    while due <= after:  # float rounding
        due += interval
    while due - interval > after:
        due -= interval
    return due


def interval_due_times(due: float, interval: float, now: float) -> tuple[int, float, float]:
    """For a grid starting at ``due <= now``: (how many grid points are <= now, the newest of them, the next one)."""
    count = math.floor((now - due) / interval) + 1
    newest = due + (count - 1) * interval
    following = due + count * interval
    while following <= now:  # float rounding
        count += 1
        newest, following = following, following + interval
    while newest > now and count > 1:
        count -= 1
        newest, following = newest - interval, newest
    return count, newest, following


class CronCalendar:
    """Next/previous fire times of cron expressions in one time zone, with shared croniter objects and a memo."""

    def __init__(self, tz: dt.tzinfo) -> None:
        self.tz = tz
        self._iters: dict[str, croniter] = {}
        self._next: dict[tuple[str, float], float] = {}
        self.computations = 0  # croniter calls made (for tests and benchmarks)

    def check(self, expr: str, now: float) -> None:
        """Raise CronInvalid with croniter's reason if ``expr`` is not usable (bad syntax, or it never fires)."""
        try:
            self._iter(expr)
        except (CroniterError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise CronInvalid(str(exc) or type(exc).__name__) from exc
        try:
            self.next_after(expr, now)
        except CroniterError as exc:
            raise CronInvalid(f"it never fires ({exc})") from exc

    def next_after(self, expr: str, after: float) -> float:
        """The first fire time strictly after ``after`` (raises CroniterError if there is none)."""
        memo_key = (expr, after)
        hit = self._next.get(memo_key)
        if hit is not None:
            return hit
        it = self._iter(expr)
        result = after
        while True:
            self.computations += 1
            result = float(it.get_next(float, start_time=result))
            if not self._repeated_fixed_hour(it, result):
                break
        if len(self._next) >= MEMO_LIMIT:
            self._next.clear()
        self._next[memo_key] = result
        return result

    def prev_before(self, expr: str, before: float) -> float:
        """The last fire time strictly before ``before``."""
        it = self._iter(expr)
        result = before
        while True:
            self.computations += 1
            result = float(it.get_prev(float, start_time=result))
            if not self._repeated_fixed_hour(it, result):
                return result

    def due_times(self, expr: str, due: float, now: float) -> tuple[int, float, float]:
        """Like interval_due_times for a cron expression: (count of fire times in [due, now], newest, next after now).

        ``due`` is a fire time <= now. The count is exact up to COUNT_EXACT_LIMIT and extrapolated from the average
        spacing beyond, so days of stall on an every-minute expression cost milliseconds, not seconds. The next
        time is ``math.inf`` when the expression fires no more (a year field in the past).
        """
        count, newest = 1, due
        following = self.next_or_inf(expr, due)
        while following <= now and count < COUNT_EXACT_LIMIT:
            count, newest = count + 1, following
            following = self.next_or_inf(expr, following)
        if following <= now:
            following = self.next_or_inf(expr, now)
            last = self.prev_before(expr, math.nextafter(now, math.inf))
            spacing = (newest - due) / (count - 1)
            count += round((last - newest) / spacing) if spacing > 0 else 0
            newest = last
        return count, newest, following

    def next_or_inf(self, expr: str, after: float) -> float:
        """Like next_after, but ``math.inf`` when the expression fires no more."""
        try:
            return self.next_after(expr, after)
        except CroniterBadDateError:
            return math.inf

    def _iter(self, expr: str) -> croniter:
        it = self._iters.get(expr)
        if it is None:
            it = croniter(expr, dt.datetime.fromtimestamp(0, self.tz))
            if len(self._iters) >= MEMO_LIMIT:
                self._iters.clear()
            self._iters[expr] = it
        return it

    def _repeated_fixed_hour(self, it: croniter, when: float) -> bool:
        """True for the second pass of a repeated (fall-back) wall-clock hour when the hour field is not a wildcard."""
        if it.expanded[HOUR_FIELD][0] == "*":
            return False
        local = dt.datetime.fromtimestamp(when, self.tz)
        first_pass = local.replace(tzinfo=None).replace(tzinfo=self.tz, fold=0).timestamp()
        return first_pass < when
