"""What pre-annotation saved: a reviewed annotation against the prediction it started from.

Shapes: H, W = image height and width.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


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
