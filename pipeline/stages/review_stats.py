"""review-stats: how much pre-annotation saved, from the pulled snapshot.

For every annotation that counts (pipeline.labelstudio.tasks: submitted, not superseded) of a
task that held a prediction created before it, the IoU between that prediction and what the
human submitted, and the share of pixels the human changed, overall and per class; and
`lead_time` (seconds in the editor) with a prediction against without one. Annotations that
record `parent_prediction` (the person started from the prediction in the editor) are compared
with that prediction and set against from-scratch annotations of predicted tasks: how much of
the prediction people kept when they started from it versus how far independent work lies from
it. Everything is also given per model_version, so a retrained model can be compared with the
previous one.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.artifacts.snapshot import snapshot_records
from pipeline.core.atomic import replace_file, write_json
from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.core.params import BaseParams, LabelStudioParams, ValidateParams
from pipeline.labelstudio.config import DatasetSpec, dataset_spec
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.tasks import counted_annotations
from pipeline.review.effect import (
    class_agreement,
    compare_starts,
    effect_markdown,
    mask_agreement,
    summarise_effect,
)


def _earlier_prediction(task: dict, annotation: dict) -> dict | None:
    """The prediction the annotation started from, else the newest one of the task created before it."""
    parent = annotation.get("parent_prediction")
    parents = [
        p for p in task.get("predictions") or [] if isinstance(p, dict) and parent is not None and p.get("id") == parent
    ]
    if parents:
        return parents[0]
    created = str(annotation.get("created_at") or "")
    earlier = [
        p for p in task.get("predictions") or [] if isinstance(p, dict) and str(p.get("created_at") or "") < created
    ]
    return max(earlier, key=lambda p: (str(p.get("created_at")), p.get("id", 0))) if earlier else None


def annotation_effect(
    task: dict, annotation: dict, classes: list[str], spec: DatasetSpec, unpainted: int
) -> dict | None:
    """One row: lead time, and IoU/changed share against the earlier prediction; None if undecodable."""
    prediction = _earlier_prediction(task, annotation)
    row = {
        "task_id": task["id"],
        "annotation_id": annotation.get("id"),
        "lead_time": annotation.get("lead_time"),
        "model_version": prediction.get("model_version") if prediction else None,
        "started_from_prediction": prediction is not None
        and annotation.get("parent_prediction") == prediction.get("id"),
    }
    if prediction is None:
        return row
    try:
        submitted = annotation_to_label_map(
            annotation.get("result"),
            classes,
            from_names=spec.control_tags or None,
            to_name=spec.image_tag,
            unlabeled_value=unpainted,
        ).label_map
        predicted = annotation_to_label_map(
            prediction.get("result"),
            classes,
            height=submitted.shape[0],
            width=submitted.shape[1],
            to_name=spec.image_tag,
            unlabeled_value=unpainted,
        ).label_map
    except PipelineError:
        return None  # validate reports broken annotations; here they just do not count
    row["iou"], row["changed"] = mask_agreement(predicted, submitted, len(classes))
    row["per_class"] = class_agreement(predicted, submitted, classes)
    return row


def run(raw_dir: Path, report_path: Path, base: BaseParams, ls: LabelStudioParams, validate: ValidateParams) -> dict:
    """Write preannotation_effect.json from the snapshot in `raw_dir`; returns its summary."""
    project_file = raw_dir / "project.json"  # a snapshot from pull has it; without it, params say it all
    project = json.loads(project_file.read_text()) if project_file.exists() else {}
    spec = dataset_spec(project.get("label_config"), base, ls, validate.unpainted)
    unpainted = IGNORE_INDEX if validate.unpainted not in spec.names else spec.names.index(validate.unpainted)
    with_prediction, without_prediction = [], []
    for task, _ in snapshot_records(raw_dir):
        for annotation in counted_annotations(task):
            row = annotation_effect(task, annotation, spec.names, spec, unpainted)
            if row is not None:
                (with_prediction if row["model_version"] else without_prediction).append(row)
    summary = summarise_effect(with_prediction, without_prediction)
    by_version: dict[str, list[dict]] = {}
    for row in with_prediction:
        by_version.setdefault(row["model_version"], []).append(row)
    summary["start"] = compare_starts(with_prediction, spec.names)
    report = {
        "summary": summary,
        "by_model_version": {
            version: {**summarise_effect(rows, without_prediction), "start": compare_starts(rows, spec.names)}
            for version, rows in sorted(by_version.items())
        },
        "annotations": sorted(with_prediction, key=lambda r: (r["task_id"], r["annotation_id"] or 0)),
    }
    write_json(report_path, report)
    tables = [effect_markdown(summary["start"], spec.names, "All model versions")]
    tables += [
        effect_markdown(entry["start"], spec.names, f"model_version {version}")
        for version, entry in report["by_model_version"].items()
    ]
    with replace_file(report_path.with_suffix(".md")) as handle:
        handle.write("\n".join(tables))
    return summary
