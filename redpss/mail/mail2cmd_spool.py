"""MAIL2CMD's accepted commands on disk, from before the 250 until their reply is handed to SENDMAIL.

A 250 tells the sender's mail system that the mail is taken care of: it will not send it again. Held only in memory,
a command queued behind another was lost, unanswered, when MAIL2CMD was killed or stopped by force. Each accepted
command is therefore written (fsynced) to `data/mail/commands/` before the 250; when that cannot be done the mail
is answered 451 and its mail system tries again later.

A command is one small JSON file (sender, subject, time of acceptance; never the mail itself, which holds the
sender's secret) named by that time and a counter, so names sort in the order the mails came:
- `<id>.command`: accepted, not started. At start-up it is run (its sender and command checked against the rules
  of now), unless it waited longer than STALE_AFTER: then the sender is told it was not run.
- `<id>.running`: started. After a restart nobody knows whether it took effect (the operations layer may have acted
  just before the kill), so it is not run again: the sender is told the outcome is unknown and how to look.
The file is removed once the reply went to SENDMAIL (or could not, which is logged).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from redpss.core.durable import TMP_PREFIX, fsync_folder, write_atomically
from redpss.core.paths import InstancePaths
from redpss.mail.spoolstat import mail_root

QUEUED, RUNNING = ".command", ".running"
STALE_AFTER = 3600.0  # seconds: a command older than this is not run at start-up (the sender may have acted since)
_ID_TIME = "%Y%m%d%H%M%S"


def commands_folder(paths: InstancePaths) -> Path:
    return mail_root(paths) / "commands"


@dataclass(frozen=True)
class Entry:
    """One accepted command as kept on disk; `path` is where it is now."""

    path: Path
    sender: str
    subject: str
    accepted: float

    @property
    def running(self) -> bool:
        return self.path.suffix == RUNNING


class CommandSpool:
    """The folder of accepted commands of one instance; one MAIL2CMD writes it, from one thread at a time."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count()

    def accept(self, sender: str, subject: str) -> Entry:
        """Keep a command durably before its 250; OSError when it cannot be kept (the caller answers 451)."""
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        now = time.time()
        name = f"{time.strftime(_ID_TIME, time.localtime(now))}-{os.getpid()}-{next(self._counter):06d}{QUEUED}"
        path = self.folder / name
        record = {"sender": sender, "subject": subject, "accepted": now}
        write_atomically(path, [json.dumps(record).encode()], sync=True, mode=0o640)
        return Entry(path, sender, subject, now)

    def started(self, entry: Entry) -> Entry:
        """Mark the command as started, durably, before it acts: after a kill it is not run a second time."""
        running = entry.path.with_suffix(RUNNING)
        entry.path.replace(running)
        fsync_folder(self.folder)
        return Entry(running, entry.sender, entry.subject, entry.accepted)

    def done(self, entry: Entry) -> None:
        entry.path.unlink(missing_ok=True)

    def left_over(self) -> tuple[list[Entry], list[str]]:
        """The commands a previous MAIL2CMD left, oldest first, and a problem line for each file that cannot be
        read (such a file is moved aside to `<name>.unreadable`, so it is reported once, not at every start)."""
        if not self.folder.is_dir():
            return [], []
        entries: list[Entry] = []
        problems: list[str] = []
        for path in sorted(self.folder.iterdir()):
            if path.name.startswith(TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write that never finished: its mail was never answered 250
                continue
            if path.suffix not in (QUEUED, RUNNING):
                continue
            try:
                record = json.loads(path.read_bytes())
                entries.append(Entry(path, str(record["sender"]), str(record["subject"]), float(record["accepted"])))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{path} cannot be read ({exc}); kept as {path.name}.unreadable")
                path.replace(path.with_name(f"{path.name}.unreadable"))
        return entries, problems
