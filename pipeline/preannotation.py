"""Pure parts of pre-annotation: which tasks, how a prediction looks, and what it saved.

Shapes: H, W = image height and width; C = classes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import ParamsError
from pipeline.labelstudio.results import label_map_to_brush_results

SELECTIONS = ("unlabeled", "all", "low_agreement")


def is_annotated(task: dict) -> bool:
    """A task with at least one submitted (not cancelled) annotation."""
    return any(not annotation.get("was_cancelled") for annotation in task.get("annotations") or [])


def select_tasks(tasks: Iterable[dict], which: str, review_ids: Iterable[int] = ()) -> list[dict]:
    """The tasks to pre-annotate: `unlabeled` (no submitted annotation), `all`, or `low_agreement`."""
    if which not in SELECTIONS:
        raise ParamsError(f"preannotate.tasks={which!r} is not known; use one of {', '.join(SELECTIONS)}")
    review = set(review_ids)
    chosen = [t for t in tasks if which == "all" or (which == "unlabeled" and not is_annotated(t)) or t["id"] in review]
    return sorted(chosen, key=lambda t: t["id"])


def model_version(name: str, checkpoint: Path) -> str:
    """A readable name plus the first 8 hex of the checkpoint's SHA-256: same file, same version."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{name}-{digest.hexdigest()[:8]}"


def prediction_record(task_id: int, label_map: np.ndarray, confidence: np.ndarray, classes: Sequence[str], version: str,
                      from_name: str, to_name: str) -> dict:
    """One Label Studio prediction: a brush region per class present and the task's mean confidence.

    label_map: (H, W) uint8; confidence: (H, W) float max softmax. Sorting the data manager by
    prediction score ascending puts the least certain tasks first.
    """
    return {
        "task": task_id,
        "model_version": version,
        "score": round(float(confidence.mean()), 6),
        "result": label_map_to_brush_results(label_map, classes, task_id=task_id, from_name=from_name, to_name=to_name),
    }


def uncertainty_rows(records: Iterable[dict], project_id: int) -> list[dict]:
    """Rows for the uncertainty CSV, least confident first; links are relative to LABEL_STUDIO_URL."""
    rows = [{"task_id": r["task"], "score": r["score"], "regions": len(r["result"]),
             "link": f"/projects/{project_id}/data?task={r['task']}"} for r in records]
    return sorted(rows, key=lambda row: (row["score"], row["task_id"]))


def mask_agreement(predicted: np.ndarray, submitted: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(mean IoU over classes present in either, share of pixels the human changed) of two (H, W) maps."""
    valid = (predicted < num_classes) | (submitted < num_classes)
    changed = float((predicted != submitted)[valid].mean()) if valid.any() else 0.0
    ious = []
    for class_id in range(num_classes):
        a, b = predicted == class_id, submitted == class_id
        union = np.logical_or(a, b).sum()
        if union:
            ious.append(np.logical_and(a, b).sum() / union)
    return (float(np.mean(ious)) if ious else 1.0), changed


def summarise_effect(with_prediction: list[dict], without_prediction: list[dict]) -> dict:
    """Medians and means of IoU, changed share and lead time, with and without a prediction first."""
    def stats(values: list[float]) -> dict:
        clean = [v for v in values if v is not None]
        if not clean:
            return {"n": 0, "median": None, "mean": None}
        return {"n": len(clean), "median": round(float(np.median(clean)), 4), "mean": round(float(np.mean(clean)), 4)}

    lead_with = stats([r.get("lead_time") for r in with_prediction])
    lead_without = stats([r.get("lead_time") for r in without_prediction])
    saved = None
    if lead_with["median"] and lead_without["median"]:
        saved = round(1 - lead_with["median"] / lead_without["median"], 4)
    return {
        "annotations_with_prediction": len(with_prediction),
        "annotations_without_prediction": len(without_prediction),
        "prediction_iou": stats([r["iou"] for r in with_prediction]),
        "changed_pixel_share": stats([r["changed"] for r in with_prediction]),
        "lead_time_s_with_prediction": lead_with,
        "lead_time_s_without_prediction": lead_without,
        "median_lead_time_saved": saved,
    }
