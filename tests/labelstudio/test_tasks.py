"""Label Studio's task rules, decided once: which annotations count, links, local-files references."""

from __future__ import annotations

import pytest

from pipeline.core.errors import UnsafeReferenceError
from pipeline.labelstudio.tasks import (
    counted_annotations,
    image_name,
    is_annotated,
    local_file_reference,
    local_file_relative,
    superseded_annotations,
    task_link,
)


def annotation(aid: int, user: int, created: str, cancelled: bool = False) -> dict:
    return {
        "id": aid,
        "completed_by": {"id": user, "email": f"u{user}@x"},
        "created_at": created,
        "was_cancelled": cancelled,
    }


def test_newest_submission_per_annotator_counts_and_cancelled_never():
    task = {
        "annotations": [
            annotation(1, 7, "2026-01-01"),
            annotation(2, 7, "2026-01-03"),
            annotation(3, 7, "2026-01-05", True),
            annotation(4, 8, "2026-01-02"),
            "garbage",
        ]
    }
    assert superseded_annotations(task["annotations"]) == {1: 2}
    assert [a["id"] for a in counted_annotations(task)] == [2, 4]
    assert is_annotated(task) and not is_annotated({"annotations": [annotation(5, 7, "x", cancelled=True)]})


def test_links_and_local_file_references():
    assert task_link(12, 34) == "/projects/12/data?task=34" and task_link(None, 34) == ""
    reference = local_file_reference("shots/a b.png")
    assert local_file_relative(reference) == "shots/a b.png" and image_name(reference) == "a b.png"
    assert local_file_relative("/data/upload/3/x.png") is None and image_name("/data/upload/3/x.png") == "x.png"
    for bad in ("/data/local-files/?d=../x.png", "/data/local-files/?d=/etc/passwd", "/data/local-files/?x=1"):
        with pytest.raises(UnsafeReferenceError):
            local_file_relative(bad)
