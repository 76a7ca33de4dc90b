"""Pre-annotation: the best model's masks go back into Label Studio as predictions to correct.

Tasks come from the pulled snapshot (so a changed project re-runs this stage and an unchanged
one does not); images are read from it too. Each chosen task gets one prediction: a brush
region per class present, `model_version` = readable name + a short hash of the checkpoint,
`score` = mean max-softmax confidence. Pushing first deletes that model_version's predictions
on those tasks, so a re-run replaces them and an interrupted push converges on the next run;
identical predictions are not sent again. A task deleted in Label Studio since the pull is
skipped with a warning. Under `dvc exp run` and with `preannotate.push: false` the predictions
and reports are made but nothing is sent (`promote` sends on purpose). The predictor is shared
with the ML backend (`pipeline.model.predictor`), so both paths give a task the same prediction.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.artifacts.reports import review_ids
from pipeline.artifacts.snapshot import read_project, snapshot_records
from pipeline.core.atomic import replace_file, write_json
from pipeline.core.errors import ParamsError
from pipeline.core.params import BaseParams, LabelStudioParams, PreannotateParams
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.config import BrushTarget, brush_target
from pipeline.labelstudio.predictions import push_predictions
from pipeline.model.predictor import load_predictor, predict_files
from pipeline.review.selection import select_tasks, uncertainty_rows


def predict_records(
    tasks: list[dict],
    images: list[Path],
    checkpoint: Path,
    base: BaseParams,
    params: PreannotateParams,
    target: BrushTarget,
) -> tuple[str, list[dict]]:
    """Run the checkpoint on the images; returns (model_version, one prediction record per task).

    Classes are the checkpoint's (base.classes, when set, must agree); a class the brush tag has no
    label for (say, a background class added for unpainted pixels) gets no region.
    """
    predictor = load_predictor(checkpoint, base.names, params.model_name, params.device, params.threads)
    with tqdm(total=len(images), desc="preannotate: predict", unit="image") as bar:
        records = predict_files(
            predictor,
            images,
            [task["id"] for task in tasks],
            target.from_name,
            target.to_name,
            params.batch_size,
            bar.update,
        )
    if target.labels is not None:
        for record in records:
            record["result"] = [r for r in record["result"] if r["value"]["brushlabels"][0] in target.labels]
    return predictor.version, records


def push_blocked(params: PreannotateParams, environment: dict[str, str] | None = None) -> str | None:
    """Why this run must send nothing to the live project, or None when it may push.

    `dvc exp run` sets DVC_EXP_NAME / DVC_EXP_BASELINE_REV in a stage's environment: a throwaway
    experiment's model must never reach what annotators see; `python -m pipeline promote` does that
    on purpose.
    """
    environment = os.environ if environment is None else environment
    experiment = environment.get("DVC_EXP_NAME") or environment.get("DVC_EXP_BASELINE_REV")
    if experiment:
        return f"running under dvc exp run ({experiment}); promote the model to push it"
    if not params.push:
        return "preannotate.push is false; promote the model to push it"
    return None


def preannotate(
    raw_dir: Path,
    images_dir: Path,
    checkpoint: Path,
    agreement_path: Path | None,
    report_path: Path,
    uncertainty_path: Path,
    base: BaseParams,
    ls: LabelStudioParams,
    params: PreannotateParams,
    promote: bool = False,
) -> dict:
    """Pre-annotate the chosen tasks of the snapshot; write the report and the uncertainty CSV.

    Predictions are pushed (and the project's model_version set) unless `push_blocked` says
    otherwise; `promote=True` pushes regardless, for a model a person chose.
    """
    if params.push_batch < 100:
        raise ParamsError(f"preannotate.push_batch={params.push_batch}: use at least 100 predictions per request")
    project = read_project(raw_dir)
    if project.get("id") is None:
        raise ParamsError(
            "the snapshot came from pull.export_file and names no project; pull from the server to pre-annotate"
        )
    pairs = [(task, image) for task, image in snapshot_records(raw_dir) if image.get("file")]
    chosen = {t["id"] for t in select_tasks((task for task, _ in pairs), params.tasks, review_ids(agreement_path))}
    pairs = [(task, image) for task, image in pairs if task["id"] in chosen]
    tasks, images = [task for task, _ in pairs], [images_dir / image["file"] for _, image in pairs]
    target = brush_target(project.get("label_config"), ls.image_tag, params.brush_tag)
    version, records = predict_records(tasks, images, checkpoint, base, params, target) if tasks else (None, [])
    blocked = None if promote else push_blocked(params)
    if blocked:
        tqdm.write(f"preannotate: nothing sent to Label Studio: {blocked}")
    skipped: list[int] = []
    if records and not blocked:
        with LabelStudioClient.from_env() as client:
            skipped = push_predictions(client, project["id"], version, records, params.push_batch)
    kept = [r for r in records if r["task"] not in set(skipped)]
    rows = uncertainty_rows(kept, project["id"])
    with replace_file(uncertainty_path) as handle:
        writer = csv.DictWriter(handle, fieldnames=["task_id", "score", "regions", "link"])
        writer.writeheader()
        writer.writerows(rows)
    scores = [r["score"] for r in kept]
    report = {
        "model_version": version,
        "tasks_selected": len(tasks),
        "predictions_pushed": 0 if blocked else len(kept),
        "pushed": not blocked,
        "not_pushed_because": blocked,
        "tasks_skipped_deleted": sorted(skipped),
        "selection": params.tasks,
        "project_id": project["id"],
        "mean_score": round(float(np.mean(scores)), 6) if scores else None,
        "tasks": [{"task_id": r["task"], "score": r["score"], "regions": len(r["result"])} for r in kept],
    }
    write_json(report_path, report)
    return {k: v for k, v in report.items() if k != "tasks"}
