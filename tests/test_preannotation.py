"""Which tasks pre-annotation picks."""

from __future__ import annotations

import pytest

from pipeline.core.errors import ParamsError
from pipeline.review.selection import select_tasks

LABELLED = {"id": 1, "annotations": [{"id": 10, "was_cancelled": False}]}
LOW_AGREEMENT = {"id": 2, "annotations": [{"id": 20}, {"id": 21}]}
UNLABELED = {"id": 3, "annotations": []}
CANCELLED_ONLY = {"id": 4, "annotations": [{"id": 40, "was_cancelled": True}]}
TASKS = [LOW_AGREEMENT, UNLABELED, LABELLED, CANCELLED_ONLY]


def _ids(which: str) -> list[int]:
    return [t["id"] for t in select_tasks(TASKS, which, review_ids=[2])]


def test_unlabeled_picks_only_tasks_without_a_submitted_annotation():
    assert _ids("unlabeled") == [3, 4]  # the review list does not leak in


def test_low_agreement_picks_only_the_review_list():
    assert _ids("low_agreement") == [2]


def test_all_picks_every_task_in_id_order():
    assert _ids("all") == [1, 2, 3, 4]


def test_unknown_selection_names_the_choices():
    with pytest.raises(ParamsError, match="unlabeled, all, low_agreement"):
        select_tasks(TASKS, "some")
