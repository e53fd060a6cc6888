"""MAIL2CMD's accepted commands on disk, from before the 250 until their reply is handed to SENDMAIL.

A 250 tells the sender's mail system that the mail is taken care of: it will not send it again. Held only in memory,
a command queued behind another was lost, unanswered, when MAIL2CMD was killed or stopped by force. Each accepted
command is therefore written (fsynced) to `data/mail/commands/` before the 250; when that cannot be done the mail
is answered 451 and its mail system tries again later.

A command is one small JSON file (sender, subject, time of acceptance; never the mail itself, which holds the
sender's secret) named by that time in nanoseconds (UTC, so no clock change repeats it) and a random part, so names
sort in the order the mails came and two never meet, whatever the pid after a restart:
- `<id>.command`: accepted, not started. At start-up it is run (its sender and command checked against the rules
  of now), unless it waited longer than STALE_AFTER: then the sender is told it was not run.
- `<id>.running`: started. After a restart nobody knows whether it took effect (the operations layer may have acted
  just before the kill), so it is not run again: the sender is told the outcome is unknown and how to look.
- `<id>.reply`: done (or not run), its reply not yet taken by SENDMAIL: the reply text is kept and sent again
  until SENDMAIL takes it, also after a restart.
Once SENDMAIL took the reply the file becomes `<id>.done`, which only remembers the mail's key (sender and
Message-ID) for KEYS_KEPT seconds: a mail system that did not see the 250 (a connection lost after it) sends the
mail again, and the same command must not run twice, also across a restart. Older `.done` files are removed.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from redpss.core.durable import TMP_PREFIX, fsync_folder, write_atomically
from redpss.core.paths import InstancePaths
from redpss.mail.spoolstat import mail_root

QUEUED, RUNNING, REPLY, DONE = ".command", ".running", ".reply", ".done"
STALE_AFTER = 3600.0  # seconds: a command older than this is not run at start-up (the sender may have acted since)
REPLAY_WINDOW = 3600.0  # seconds: a command mail dated older is refused
FUTURE_SKEW = 900.0  # seconds a command mail may be dated ahead of this server's clock (the sender's clock is off)
# How long the key of an accepted mail is kept: a copy stays fresh until its Date is REPLAY_WINDOW old, and a Date
# may lie FUTURE_SKEW ahead of the acceptance (kept only REPLAY_WINDOW, a copy of a mail dated 10 minutes ahead,
# sent again 65 minutes later, found its key gone and its Date still fresh: the command ran twice)
KEYS_KEPT = REPLAY_WINDOW + FUTURE_SKEW


def commands_folder(paths: InstancePaths) -> Path:
    return mail_root(paths) / "commands"


@dataclass(frozen=True)
class Entry:
    """One accepted command as kept on disk; `path` is where it is now."""

    path: Path
    sender: str
    subject: str
    accepted: float
    reply: str = ""  # the text of a reply not yet taken by SENDMAIL (a `.reply` file)
    key: str = ""  # the mail's sender and Message-ID, hashed: the same mail again is not run again

    @property
    def running(self) -> bool:
        return self.path.suffix == RUNNING

    @property
    def answered(self) -> bool:
        return self.path.suffix == REPLY


class NotMarked(OSError):
    """The command's file was renamed `.running` but the rename could not be made durable; `entry` is where it is."""

    def __init__(self, entry: Entry, cause: OSError) -> None:
        super().__init__(cause.errno, f"{entry.path}: the mark may not survive a crash ({cause})")
        self.entry = entry


class CommandSpool:
    """The folder of accepted commands of one instance, written by one MAIL2CMD (sessions' threads may accept at
    once: names never meet)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def accept(self, sender: str, subject: str, key: str = "") -> Entry:
        """Keep a command durably before its 250; OSError when it cannot be kept (the caller answers 451)."""
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        now_ns = time.time_ns()
        path = self.folder / f"{now_ns:020d}-{secrets.token_hex(6)}{QUEUED}"
        record = {"sender": sender, "subject": subject, "accepted": now_ns / 1e9, "key": key}
        write_atomically(path, [json.dumps(record).encode()], sync=True, mode=0o640)
        return Entry(path, sender, subject, now_ns / 1e9, key=key)

    def started(self, entry: Entry) -> Entry:
        """Mark the command as started, durably, before it acts: after a kill it is not run a second time. OSError
        when the file cannot be renamed; NotMarked (naming the renamed entry) when the rename may not last."""
        running = entry.path.with_suffix(RUNNING)
        entry.path.replace(running)
        moved = Entry(running, entry.sender, entry.subject, entry.accepted, key=entry.key)
        try:
            fsync_folder(self.folder)
        except OSError as exc:
            raise NotMarked(moved, exc) from exc
        return moved

    def reply_later(self, entry: Entry, text: str) -> Entry:
        """Keep the reply SENDMAIL did not take in place of the command (which must not run again); OSError when it
        cannot be kept."""
        if entry.answered:
            return entry
        path = entry.path.with_suffix(REPLY)
        record = {
            "sender": entry.sender,
            "subject": entry.subject,
            "accepted": entry.accepted,
            "reply": text,
            "key": entry.key,
        }
        write_atomically(path, [json.dumps(record).encode()], sync=True, mode=0o640)
        entry.path.unlink(missing_ok=True)
        return Entry(path, entry.sender, entry.subject, entry.accepted, text, entry.key)

    def done(self, entry: Entry) -> None:
        """The command is answered: only its key stays (as `.done`, see the module's text)."""
        if entry.key and entry.path.suffix != DONE:
            with contextlib.suppress(FileNotFoundError):
                entry.path.replace(entry.path.with_suffix(DONE))
                return
        entry.path.unlink(missing_ok=True)

    def forget(self, entry: Entry) -> None:
        """Remove a command kept for a session that ended before its 250, key and all: its mail system sends the mail
        again, and that copy must run (a `.done` would answer it "accepted before" after a restart, unrun). OSError
        when the file cannot be removed; a removal the folder's fsync could not make durable may bring the command
        back after a crash, to run once at the start, its copy then refused by its key."""
        entry.path.unlink(missing_ok=True)
        fsync_folder(self.folder)

    def keys(self, now: float) -> dict[str, float]:
        """key -> time of acceptance, of every command kept or done within KEYS_KEPT; older `.done` files go."""
        found: dict[str, float] = {}
        if not self.folder.is_dir():
            return found
        for path in self.folder.iterdir():
            if path.suffix not in (QUEUED, RUNNING, REPLY, DONE):
                continue
            try:
                entry = _read(path)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # left_over reports and sets aside what it cannot read
            if path.suffix == DONE and entry.accepted < now - KEYS_KEPT:
                path.unlink(missing_ok=True)
            elif entry.key:
                found[entry.key] = entry.accepted
        return found

    def left_over(self) -> tuple[list[Entry], list[str]]:
        """The commands a previous MAIL2CMD left, oldest first, and a problem line for each file that cannot be
        read (such a file is moved aside to `<name>.unreadable`, so it is reported once, not at every start)."""
        if not self.folder.is_dir():
            return [], []
        entries: list[Entry] = []
        problems: list[str] = []
        for path in sorted(self.folder.iterdir()):
            try:
                if path.name.startswith(TMP_PREFIX):
                    path.unlink(missing_ok=True)  # a write that never finished: its mail was never answered 250
                elif path.suffix in (QUEUED, RUNNING, REPLY):
                    entries.append(_read(path))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(_set_aside(path, exc))
        return entries, problems


def _read(path: Path) -> Entry:
    record = json.loads(path.read_bytes())
    accepted = float(record["accepted"])
    if not (math.isfinite(accepted) and 0 < accepted < 1e11):  # time.localtime() refuses what is beyond
        raise ValueError(f"time of acceptance {accepted} is not a time")
    sender, subject, reply, key = (str(record.get(k, "")) for k in ("sender", "subject", "reply", "key"))
    if not sender:
        raise KeyError("sender")
    return Entry(path, sender, subject, accepted, reply, key)


def _set_aside(path: Path, exc: Exception) -> str:
    """Move a file that cannot be used out of the way (reported once, not at every start); the line saying so."""
    aside = path.with_name(f"{path.name}.unreadable")
    try:
        path.replace(aside)
    except OSError as moving:
        return f"{path} cannot be read ({exc}) nor moved aside ({moving})"
    return f"{path} cannot be read ({exc}); kept as {aside.name}"
