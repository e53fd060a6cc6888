"""SENDFILE's accepted requests on disk (tmp/sendfile/<id>.json, file and folder fsync'd before the acknowledgement),
so a request survives a restart; one whose export or delivery was cut short by a stop runs again at the next start."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from redpss.core.durable import fsync_folder
from redpss.sendfile.queuestat import ID_TIME
from redpss.sendfile.request import FileRequest


class RequestSpool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def new_id(self) -> str:
        """The time of acceptance to the nanosecond, then a random part: requests accepted in one second still sort
        (and so run again after a restart) in the order they came."""
        second, fraction = divmod(time.time_ns(), 1_000_000_000)
        return f"{time.strftime(ID_TIME, time.localtime(second))}-{fraction:09d}-{secrets.token_hex(3)}"

    def put(self, request_id: str, request: FileRequest) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.folder / f".{request_id}.tmp"
        with partial.open("x", encoding="utf-8") as handle:
            handle.write(request.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        partial.rename(self.folder / f"{request_id}.json")
        fsync_folder(self.folder)

    def remove(self, request_id: str) -> None:
        (self.folder / f"{request_id}.json").unlink(missing_ok=True)
        fsync_folder(self.folder)

    def load(self) -> list[tuple[str, FileRequest]]:
        """The requests not finished before the last stop, oldest first (unreadable ones are left with a reason)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append((path.stem, FileRequest.from_json(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                path.rename(path.with_suffix(".unreadable"))
                path.with_suffix(".reason").write_text(f"{exc}\n", encoding="utf-8")
        return found
