"""Which tasks get a prediction, and the list that puts the least certain first for reviewers."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.core.errors import ParamsError
from pipeline.labelstudio.tasks import is_annotated, task_link

SELECTIONS = ("unlabeled", "all", "low_agreement")


def select_tasks(tasks: Iterable[dict], which: str, review_ids: Iterable[int] = ()) -> list[dict]:
    """The tasks to pre-annotate: `unlabeled` (no submitted annotation), `all`, or `low_agreement`."""
    if which not in SELECTIONS:
        raise ParamsError(f"preannotate.tasks={which!r} is not known; use one of {', '.join(SELECTIONS)}")
    review = set(review_ids)
    rules = {
        "all": lambda t: True,
        "unlabeled": lambda t: not is_annotated(t),
        "low_agreement": lambda t: t["id"] in review,
    }
    return sorted(filter(rules[which], tasks), key=lambda t: t["id"])


def uncertainty_rows(records: Iterable[dict], project_id: int) -> list[dict]:
    """Rows for the uncertainty CSV, least confident first; links are relative to LABEL_STUDIO_URL."""
    rows = [
        {
            "task_id": r["task"],
            "score": r["score"],
            "regions": len(r["result"]),
            "link": task_link(project_id, r["task"]),
        }
        for r in records
    ]
    return sorted(rows, key=lambda row: (row["score"], row["task_id"]))
