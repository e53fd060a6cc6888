"""A warning that one request can cause, logged at most once a minute per kind: the rest counted, then summed up.

A query that calls an action per row can be refused per row: ten thousand identical WARNINGs buried what an operator
woken at night needs to see. The first of a kind is logged whole; the ones after it within WINDOW seconds are
counted, and when the window ends (at the next one of its kind, or at the daemon's tick) one line says how many
there were and gives the last of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW = 60.0  # seconds
MAX_KINDS = 256  # kinds counted at once; beyond, a warning is logged whole (its kinds are no longer few)


@dataclass
class _Counted:
    started: float
    first_at: str  # wall-clock time of the one logged whole, for the summary
    more: int = 0
    last: str = ""


class RepeatedWarnings:
    """Warnings keyed by a kind (e.g. the reason of a refusal, without the parts that change between requests)."""

    def __init__(self, logger: logging.Logger, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._clock = clock
        self._kinds: dict[str, _Counted] = {}

    def warn(self, kind: str, message: str) -> None:
        now = self._clock()
        counted = self._kinds.get(kind)
        if counted is not None and now - counted.started < WINDOW:
            counted.more += 1
            counted.last = message
            return
        if counted is not None:
            self._sum_up(counted)
        if len(self._kinds) < MAX_KINDS or kind in self._kinds:
            self._kinds[kind] = _Counted(now, time.strftime("%H:%M:%S"))
        self._log.warning("%s", message)

    def flush(self) -> None:
        """Sum up the kinds whose window has ended (the daemon's tick calls this)."""
        now = self._clock()
        for kind, counted in list(self._kinds.items()):
            if now - counted.started >= WINDOW:
                del self._kinds[kind]
                self._sum_up(counted)

    def _sum_up(self, counted: _Counted) -> None:
        if counted.more:
            self._log.warning(
                "%d more like the warning of %s within %g s; the last: %s",
                counted.more,
                counted.first_at,
                WINDOW,
                counted.last,
            )
