"""The threads of a conversion: results handed out in order, work bounded ahead of the consumer, errors in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from redpss.convert.pipeline import mapped_in_order

DEADLINE = 10.0


def test_results_come_in_the_order_of_the_items_whatever_order_they_finish_in() -> None:
    last_done = threading.Event()

    def work(item: int) -> int:
        if item == 0:
            assert last_done.wait(DEADLINE)  # the first item finishes after the last
        if item == 2:
            last_done.set()
        return item * 10

    with ThreadPoolExecutor(3) as workers:
        assert list(mapped_in_order(workers, work, range(3), ahead=2)) == [(0, 0), (1, 10), (2, 20)]


def test_no_more_than_ahead_items_are_taken_beyond_the_one_handed_out() -> None:
    taken = 0

    def items() -> Iterator[int]:
        nonlocal taken
        for item in range(20):
            taken += 1
            yield item

    with ThreadPoolExecutor(2) as workers:
        for item, _ in mapped_in_order(workers, str, items(), ahead=3):
            assert taken <= item + 1 + 3


def test_an_error_is_raised_at_its_item_after_the_items_before_it() -> None:
    def work(item: int) -> int:
        if item == 2:
            raise ValueError("bad item 2")
        return item

    handed: list[int] = []
    with ThreadPoolExecutor(2) as workers, pytest.raises(ValueError, match="bad item 2"):
        for item, _ in mapped_in_order(workers, work, range(6), ahead=3):
            handed.append(item)
    assert handed == [0, 1]


def test_closing_early_cancels_the_items_not_started() -> None:
    release = threading.Event()
    started: list[int] = []

    def work(item: int) -> int:
        started.append(item)
        if item > 0:
            assert release.wait(DEADLINE)  # holds the one worker: the items behind it wait in the queue
        return item

    with ThreadPoolExecutor(1) as workers:
        results = mapped_in_order(workers, work, range(10), ahead=3)
        assert next(results) == (0, 0)  # items 1 to 3 submitted by now, 1 holding the worker
        results.close()
        release.set()
    assert started in ([0], [0, 1])  # 2 and 3 were cancelled before they ran, 4 and later never submitted


def test_an_error_of_the_items_comes_after_the_results_and_errors_of_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield from range(3)
        raise LookupError("the source fails after item 2")

    def work(item: int) -> int:
        if item == 1:
            raise ValueError("item 1 is bad")
        return item

    with ThreadPoolExecutor(2) as workers:
        handed: list[int] = []
        with pytest.raises(ValueError, match="item 1 is bad"):  # the earlier error, not the source's
            for item, _ in mapped_in_order(workers, work, items(), ahead=5):
                handed.append(item)
        assert handed == [0]
        results = mapped_in_order(workers, str, items(), ahead=5)
        assert [next(results), next(results), next(results)] == [(0, "0"), (1, "1"), (2, "2")]
        with pytest.raises(LookupError, match="after item 2"):
            next(results)
