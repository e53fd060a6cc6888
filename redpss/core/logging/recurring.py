"""Problems a periodic scan meets again at every pass, told once each time they appear.

A watch that logged a problem at each pass (every second) would bury the journal; one that remembered every problem
it ever told would stay silent when a problem that was fixed comes back, and would have to forget at some size.
Here a problem is told when a pass meets it that the previous pass did not, so memory is what the last pass found.
"""

from __future__ import annotations

import logging


class RecurringProblems:
    """Call `meet` for each problem of a pass, `pass_done` at its end."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._previous: set[str] = set()
        self._current: set[str] = set()

    def meet(self, problem: str) -> None:
        """A WARNING unless the previous pass met this problem too (or this pass did already)."""
        if problem in self._current:
            return
        self._current.add(problem)
        if problem not in self._previous:
            self.log.warning("%s", problem)

    def pass_done(self) -> None:
        """What this pass met is what the next one compares with; a problem it did not meet is forgotten."""
        self._previous, self._current = self._current, set()
