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


def model_version(name: str, checkpoint: Path) -> str:
    """A readable name plus the first 8 hex of the checkpoint's SHA-256: same file, same version."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{name}-{digest.hexdigest()[:8]}"


def prediction_record(
    task_id: int,
    label_map: np.ndarray,
    confidence: np.ndarray,
    classes: Sequence[str],
    version: str,
    from_name: str,
    to_name: str,
) -> dict:
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


def class_agreement(predicted: np.ndarray, submitted: np.ndarray, classes: Sequence[str]) -> dict[str, dict]:
    """Per class of two (H, W) maps: IoU, and the share of the prediction's pixels of it that the human relabelled.

    Classes absent from both maps are left out (no evidence either way).
    """
    out = {}
    for class_id, name in enumerate(classes):
        a, b = predicted == class_id, submitted == class_id
        union = int(np.logical_or(a, b).sum())
        if union:
            predicted_pixels = int(a.sum())
            changed = float(np.logical_and(a, ~b).sum() / predicted_pixels) if predicted_pixels else None
            out[name] = {"iou": float(np.logical_and(a, b).sum() / union), "changed": changed}
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(float(np.mean(clean)), 4) if clean else None


def per_class_table(rows: list[dict], classes: Sequence[str]) -> dict[str, dict]:
    """Mean per-class IoU and changed share over annotation rows (each with a `per_class` entry)."""
    table = {}
    for name in classes:
        entries = [row["per_class"][name] for row in rows if name in row.get("per_class", {})]
        table[name] = {
            "n": len(entries),
            "iou": _mean(e["iou"] for e in entries),
            "changed": _mean(e["changed"] for e in entries),
        }
    return table


def compare_starts(rows: list[dict], classes: Sequence[str]) -> dict:
    """Annotations started from the prediction (`parent_prediction`) against from-scratch ones on predicted tasks."""
    groups = {
        "corrected": [r for r in rows if r.get("started_from_prediction")],
        "from_scratch": [r for r in rows if not r.get("started_from_prediction")],
    }
    return {
        name: {
            "n": len(group),
            "prediction_iou": _mean(r["iou"] for r in group),
            "changed_pixel_share": _mean(r["changed"] for r in group),
            "lead_time_s": _mean(r.get("lead_time") for r in group),
            "per_class": per_class_table(group, classes),
        }
        for name, group in groups.items()
    }


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


def effect_markdown(start: dict, classes: Sequence[str], title: str) -> str:
    """A markdown table of `compare_starts` output: per class, corrected against from scratch."""

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    corrected, scratch = start["corrected"], start["from_scratch"]
    lines = [
        f"**{title}** — {corrected['n']} annotations started from the prediction, "
        f"{scratch['n']} drawn from scratch on predicted tasks",
        "",
        "| class | IoU with prediction, corrected | from scratch | share of predicted pixels changed, corrected "
        "| from scratch |",
        "|---|---|---|---|---|",
        f"| all (mean IoU / changed pixels) | {cell(corrected['prediction_iou'])} | {cell(scratch['prediction_iou'])} "
        f"| {cell(corrected['changed_pixel_share'])} | {cell(scratch['changed_pixel_share'])} |",
    ]
    for name in classes:
        a, b = corrected["per_class"][name], scratch["per_class"][name]
        lines.append(f"| {name} | {cell(a['iou'])} | {cell(b['iou'])} | {cell(a['changed'])} | {cell(b['changed'])} |")
    return "\n".join(lines) + "\n"
