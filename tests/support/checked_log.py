"""A server the fixture hands to a test and, afterwards, stops and judges by its log: hostile input may be refused,
but it must never leave a traceback (or, where asked, an ERROR line) behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar


class StoppableWithLog(Protocol):
    def stop(self) -> None: ...

    def log(self) -> str: ...


S = TypeVar("S", bound=StoppableWithLog)


def serve_then_check_log(running: S, *forbidden: str) -> Iterator[S]:
    """Yield `running` (for a fixture's `yield from`), stop it whatever the test did, then fail if its log holds
    any of `forbidden`, showing the log's end."""
    try:
        yield running
    finally:
        running.stop()
    log = running.log()
    for text in forbidden:
        assert text not in log, log[-3000:]
