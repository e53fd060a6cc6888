"""Work of a conversion spread over threads: pyarrow's decoding, parsing and CSV writing run in C++ with the GIL
released, so on two cores a conversion takes about the longer of its stages instead of their sum."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_END = object()


def prefetched(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
    """The items of `items`, produced by a thread at most `depth` ahead of the consumer; its exception is re-raised
    here. Closing the returned generator early stops the thread after the item it is working on."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(_END)
        except BaseException as exc:  # handed to the consumer, which raises it
            handoff.put(exc)

    worker = threading.Thread(target=produce, name="convert-read", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        worker.join()


def mapped_in_order(
    workers: Executor, function: Callable[[T], R], items: Iterable[T], ahead: int
) -> Generator[tuple[T, R], None, None]:
    """Each item with `function(item)`, in the order of `items`, computed by `workers` at most `ahead` items beyond
    the one handed out (Executor.map would take every item at once: unbounded memory). Errors come in order too:
    one of `function` at its item; one of `items` itself after the results of the items before it. Closing the
    generator early cancels the items not yet started."""
    pending: deque[tuple[T, Future[R]]] = deque()
    source = iter(items)
    try:
        while True:
            try:
                item = next(source)
            except StopIteration:
                break
            except BaseException:
                while pending:  # what came before the failing item first: its error may be the earlier one
                    done, future = pending.popleft()
                    yield done, future.result()
                raise
            pending.append((item, workers.submit(function, item)))
            if len(pending) > ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
    finally:
        for _, future in pending:
            future.cancel()
