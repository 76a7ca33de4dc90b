"""Ordered, bounded parallel map over a stream: the work loop of validate and merge."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Lists of up to `size` consecutive items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _apply(function: Callable[[Item], Result], batch: list[Item]) -> list[Result]:
    return [function(item) for item in batch]


def ordered_map(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int,
    batch: int = 16,
    batches_per_worker: int = 4,
) -> Iterator[tuple[Item, Result]]:
    """(item, function(item)) for every item, in input order, computed on `workers` processes.

    Items go out in batches, and at most `batches_per_worker * workers` batches are in flight:
    memory stays flat on a huge input, and, unlike mapping chunk after chunk, no worker waits
    at a chunk boundary for the slowest one. With one worker, everything runs in this process.
    """
    if workers <= 1:
        for item in items:
            yield item, function(item)
        return
    with ProcessPoolExecutor(workers) as pool:
        in_flight: deque = deque()
        for chunk in chunks(items, batch):
            in_flight.append((chunk, pool.submit(_apply, function, chunk)))
            if len(in_flight) >= batches_per_worker * workers:
                chunk, results = in_flight.popleft()
                yield from zip(chunk, results.result())
        while in_flight:
            chunk, results = in_flight.popleft()
            yield from zip(chunk, results.result())
