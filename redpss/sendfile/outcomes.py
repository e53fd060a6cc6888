"""Outcomes of the requests a caller named with a `key`, kept for KEPT_FOR seconds, so that the same request sent
again gets the first one's outcome instead of a second delivery.

A SENDFILE job waits for its delivery on one connection. When that connection ends before the answer (SENDFILE
stopped with the request queued, or the answer was lost), the job's run fails and SCHED retries it, while the first
request is still spooled and runs at SENDFILE's next start: the partner got the file twice. A job's requests carry
the run's id as their key (a retry keeps it): a request sent again under a key SENDFILE holds waits for that request,
and one whose request was delivered gets that answer from here (a failed one is carried out again: that is what a
retry is for). One small file per key (its name a hash of the key), written and fsync'd before the request leaves
the spool, so a crash in between never delivers it a second time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redpss.core.durable import fsync_folder, write_atomically

KEPT_FOR = 24 * 3600.0  # seconds an outcome is kept: longer than any retry schedule of a job


@dataclass(frozen=True)
class Outcome:
    """How a keyed request ended: `error` is "" when it was delivered (rows, bytes, where, message)."""

    request_id: str
    error: str = ""
    rows: int = 0
    bytes: int = 0
    where: str = ""
    message: str = ""

    def reply(self) -> dict[str, Any]:
        """The fields of the durable answer to a waiting caller, as the first request's answer had them."""
        return {
            "id": self.request_id,
            "rows": self.rows,
            "bytes": self.bytes,
            "delivered": self.where,
            "message": self.message,
        }


class OutcomeStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, key: str, outcome: Outcome) -> None:
        """Keep `outcome` durably (OSError when it cannot be kept)."""
        if not self.folder.is_dir():
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fsync_folder(self.folder.parent)
        record = {"key": key, "at": time.time(), **outcome.__dict__}
        write_atomically(self._path(key), [json.dumps(record).encode()], sync=True, mode=0o600)

    def get(self, key: str, now: float) -> Outcome | None:
        """The outcome of the request of `key`, if it ended within KEPT_FOR seconds."""
        try:
            record = json.loads(self._path(key).read_text(encoding="utf-8"))
            if record.get("key") != key or now - float(record["at"]) > KEPT_FOR:
                return None
            return Outcome(
                str(record["request_id"]),
                str(record.get("error", "")),
                int(record.get("rows", 0)),
                int(record.get("bytes", 0)),
                str(record.get("where", "")),
                str(record.get("message", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def prune(self, now: float) -> None:
        """Remove the outcomes older than KEPT_FOR."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob("*.json"):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > KEPT_FOR:
                    path.unlink()

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.json"
