"""pipeline.core.parallel.ordered_map: input order, bounded read-ahead, errors reach the caller."""

from __future__ import annotations

import itertools
import os

import pytest

from pipeline.core.parallel import chunks, ordered_map


def square_and_pid(value: int) -> tuple[int, int]:
    return value * value, os.getpid()


def fail_on_seven(value: int) -> int:
    if value == 7:
        raise ValueError("seven")
    return value


def test_chunks_cover_the_input_in_order():
    assert list(chunks(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_in_input_order(workers):
    pairs = list(ordered_map(square_and_pid, range(100), workers, batch=3))
    assert [item for item, _ in pairs] == list(range(100))
    assert [result for _, (result, _) in pairs] == [v * v for v in range(100)]
    in_this_process = {pid for _, (_, pid) in pairs} == {os.getpid()}
    assert in_this_process == (workers == 1)


def test_reads_ahead_a_bounded_number_of_items():
    consumed = itertools.count()
    source = (next(consumed) for _ in itertools.repeat(None))  # endless: only a bounded read-ahead ends
    results = ordered_map(square_and_pid, source, workers=2, batch=4, batches_per_worker=2)
    first = next(results)
    assert first[0] == 0
    # 2 workers x 2 batches x 4 items in flight, plus the batch being formed
    assert next(consumed) <= 2 * 2 * 4 + 4
    results.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_worker_reaches_the_caller(workers):
    with pytest.raises(ValueError, match="seven"):
        list(ordered_map(fail_on_seven, range(20), workers, batch=2))
