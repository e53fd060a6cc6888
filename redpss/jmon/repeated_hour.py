"""The exact times of the ticks handled within a repeated local hour (the autumn clock change), across a restart.

JMON continues each schedule after a restart from the newest SCHEDULED_AT in the run logs, a TIMESTAMP in local time
without an offset. In the hour the clocks repeat (02:00-03:00 twice in Europe's autumn), `02:30` names two instants
an hour apart, and the logs cannot tell which one ran: read as the first, a restart in the second pass (or in the
hour after it) found the second 02:30 due again and ran it a second time; `MAX(SCHEDULED_AT)` even put a first 02:45
after a second 02:15. So JMON keeps the epoch of each tick it handles whose local time is ambiguous in
`tmp/jmon-repeated-hour.json`, and at start takes, per job and watcher, the later of the logs' newest tick and the
one kept here. A key's entry goes once a later tick of it whose local time is not ambiguous is handled (the logs
then hold a newer, unambiguous one), and any entry after KEEP_SECONDS; outside such an hour nothing new is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from redpss.core.durable import write_atomically
from redpss.jmon.schedule import Key

log = logging.getLogger("redpss.jmon")

# a kept tick older than this goes even without a later one: a job ticking less often than every ten days (an
# interval of weeks) that ticked in a repeated hour reads its logs alone again after it
KEEP_SECONDS = 10 * 86400.0


def ambiguous(epoch: float) -> bool:
    """Whether the local wall-clock time of `epoch` names two instants (a repeated hour)."""
    local = dt.datetime.fromtimestamp(epoch)
    return local.replace(fold=0).timestamp() != local.replace(fold=1).timestamp()


class RepeatedHourTicks:
    """The newest ambiguous tick handled per job and watcher, written when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ticks: dict[Key, float] = {}
        self.changed = False

    def load(self, now: float) -> dict[Key, float]:
        """The kept ticks not older than KEEP_SECONDS (none when the file is missing or unreadable)."""
        try:
            records = json.loads(self.path.read_text(encoding="utf-8"))
            ticks = {(str(kind), str(schema), int(id_)): float(at) for kind, schema, id_, at in records}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("%s cannot be read (%s); a restart in a repeated hour reads the run logs alone", self.path, exc)
            return {}
        self.ticks = {key: at for key, at in ticks.items() if at >= now - KEEP_SECONDS}
        return dict(self.ticks)

    def note(self, key: Key, scheduled_at: float) -> None:
        """A tick of `key` handled: kept if its local time is ambiguous; a later one that is not ends its entry."""
        kept = self.ticks.get(key)
        if ambiguous(scheduled_at):
            if kept is None or scheduled_at > kept:
                self.ticks[key] = scheduled_at
                self.changed = True
        elif kept is not None and scheduled_at > kept:
            del self.ticks[key]
            self.changed = True

    def pending(self, now: float) -> bytes | None:
        """What `write` is to put in the file if a tick was kept or let go since the last call (b"": no file), else
        None; entries older than KEEP_SECONDS are let go here. On the event loop, which alone changes `ticks`."""
        if not self.changed:
            return None
        self.changed = False
        self.ticks = {key: at for key, at in self.ticks.items() if at >= now - KEEP_SECONDS}
        records = [[*key, at] for key, at in sorted(self.ticks.items())]
        return json.dumps(records).encode() if records else b""

    def write(self, data: bytes) -> None:
        """The file as `pending` made it (in a thread: the event loop never waits on the disk)."""
        try:
            if data:
                write_atomically(self.path, [data], sync=False)
            else:
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot write %s (%s); a restart in this repeated hour reads the logs alone", self.path, exc)


def newest(logged: Mapping[Key, float], kept: Mapping[Key, float]) -> dict[Key, float]:
    """Per key, the later of the run logs' newest tick and the kept one."""
    merged = dict(logged)
    for key, at in kept.items():
        if at > merged.get(key, float("-inf")):
            merged[key] = at
    return merged
