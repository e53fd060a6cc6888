"""How many SENDFILE requests wait, read cheaply from the spool folder: for `redctl show`.

Standard library only and no daemon code (as redpss.mail.spoolstat for SENDMAIL): a command-line tool lists the
folder itself, also while SENDFILE is down. Layout below $REDENV_HOME/tmp/sendfile/ (redpss.sendfile.spool):
  <id>.json          one accepted request not yet carried out; ids start with the time of acceptance
  <id>.unreadable    a request that could not be read at a start, set aside beside <id>.reason
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from redpss.core.paths import InstancePaths

ID_TIME = "%Y%m%d%H%M%S"  # a request's id starts with its time of acceptance (local time), so names sort by age


def spool_folder(paths: InstancePaths) -> Path:
    return paths.tmp / "sendfile"


def queue_summary(folder: Path) -> dict[str, Any]:
    """The requests waiting in SENDFILE's spool, read from its folder (also while SENDFILE is down), for `redctl
    show`: count, oldest (epoch seconds, from the id's time of acceptance), and those set aside as unreadable."""
    try:
        names = sorted(name for name in os.listdir(folder) if not name.startswith("."))  # noqa: PTH208 - names only
    except FileNotFoundError:
        names = []
    except OSError as exc:  # e.g. run by a user who may not read SENDFILE's folder
        return {"count": 0, "oldest": None, "unreadable": 0, "error": f"cannot list {folder}: {exc.strerror}"}
    waiting = [name[: -len(".json")] for name in names if name.endswith(".json")]
    oldest = None
    if waiting:
        with contextlib.suppress(ValueError):
            oldest = time.mktime(time.strptime(waiting[0].split("-", 1)[0], ID_TIME))
    return {"count": len(waiting), "oldest": oldest, "unreadable": sum(n.endswith(".unreadable") for n in names)}


def describe_queue(summary: dict[str, Any]) -> str:
    """One line for `redctl show`: how many requests wait and since when, and those set aside as unreadable."""
    if summary.get("error"):
        return str(summary["error"])
    count, oldest = int(summary.get("count") or 0), summary.get("oldest")
    text = "no request waiting" if not count else f"{count} request(s) waiting"
    if count and oldest:
        text += f", the oldest accepted {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(oldest)))}"
    unreadable = int(summary.get("unreadable") or 0)
    if unreadable:
        text += f"; {unreadable} unreadable request(s) set aside in the spool folder (*.unreadable, *.reason)"
    return text
