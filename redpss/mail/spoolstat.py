"""Where SENDMAIL's spool lives and what it holds, read cheaply from the folder: for `redctl show` and `redinfo`.

Standard library only and no daemon code: a command-line tool reads the folder itself (a directory listing and a
few small state files), so it pays neither for an event loop nor for the mail daemon's imports.

Layout below $REDENV_HOME/data/mail/:
  spool/<id>.mail    one mail waiting: a JSON envelope line, then the message exactly as it goes to the relay
  spool/<id>.state   its retry state (attempts, next try, last reply), absent until the first failed try
  dead/<id>.mail     a mail the relay refused for good (5xx), beside dead/<id>.reply with the relay's answer
Ids start with the acceptance time in microseconds, so names sort by age.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from redpss.core.digits import is_decimal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.core.paths import InstancePaths

MAIL_FOLDER = "mail"  # below data/: the spool, dead letters and MAIL2CMD's commands (never sent as attachments)
MAIL_SUFFIX = ".mail"
STATE_SUFFIX = ".state"
REPLY_SUFFIX = ".reply"


def mail_root(paths: InstancePaths) -> Path:
    return paths.data / MAIL_FOLDER


def spool_folder(paths: InstancePaths) -> Path:
    return mail_root(paths) / "spool"


def dead_folder(paths: InstancePaths) -> Path:
    return mail_root(paths) / "dead"


def accepted_at(mail_id: str) -> float | None:
    """The acceptance time (epoch seconds) an id starts with; None for a name that is not an id."""
    head = mail_id.split("-", 1)[0]
    return int(head) / 1e6 if is_decimal(head) else None


def _names(folder: Path, suffix: str) -> list[str]:
    try:
        return sorted(name[: -len(suffix)] for name in os.listdir(folder) if name.endswith(suffix))  # noqa: PTH208 - names only, no Path per entry
    except FileNotFoundError:
        return []


def read_state(path: Path) -> dict[str, Any]:
    """A mail's retry state; {} when it has none yet (never tried) or it cannot be read."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def spool_summary(paths: InstancePaths, now: float | None = None) -> dict[str, Any]:
    """count, oldest (epoch), next_try (epoch; a mail never tried is due at once), dead, last_error."""
    now = time.time() if now is None else now
    spool = spool_folder(paths)
    waiting = _names(spool, MAIL_SUFFIX)
    next_try: float | None = None
    last_error = ""
    for mail_id in waiting:
        state = read_state(spool / f"{mail_id}{STATE_SUFFIX}")
        due = float(state.get("next_try") or accepted_at(mail_id) or now)
        if next_try is None or due < next_try:
            next_try = due
            last_error = str(state.get("last_error") or "")
    oldest = accepted_at(waiting[0]) if waiting else None
    return {
        "count": len(waiting),
        "oldest": oldest,
        "next_try": next_try,
        "last_error": last_error,
        "dead": len(_names(dead_folder(paths), MAIL_SUFFIX)),
        "folder": str(mail_root(paths)),
    }


def _clock(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def describe(summary: dict[str, Any], now: float | None = None) -> str:
    """One line for people: '2 mail(s) waiting, oldest 2026-11-30 02:10:00, next try ...; 1 dead letter(s)'."""
    now = time.time() if now is None else now
    if summary["count"]:
        text = f"{summary['count']} mail(s) waiting, oldest {_clock(summary['oldest'])}"
        due = summary["next_try"]
        text += ", next try now" if due is None or due <= now else f", next try {_clock(due)}"
        if summary["last_error"]:
            text += f" (last: {summary['last_error'][:120]})"
    else:
        text = "no mail waiting"
    if summary["dead"]:
        text += f"; {summary['dead']} dead letter(s) in {summary['folder']}/dead"
    return text
