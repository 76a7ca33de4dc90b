"""preannotate: the best model's masks go back into Label Studio as predictions to correct.

Tasks come from the pulled snapshot (so a changed project re-runs this stage and an unchanged
one does not); images are read from it too. Each chosen task gets one prediction: a brush
region per class present, `model_version` = readable name + a short hash of the checkpoint,
`score` = mean max-softmax confidence. Pushing first deletes that model_version's predictions
on those tasks, so a re-run replaces them and an interrupted push converges on the next run;
identical predictions are not sent again. A task deleted in Label Studio since the pull is
skipped with a warning.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from pipeline.atomic import replace_file, write_json
from pipeline.errors import ParamsError, TrainingError
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.params import BaseParams, LabelStudioParams, PreannotateParams
from pipeline.stages.pull import snapshot_records
from pipeline.preannotation import model_version, prediction_record, select_tasks, uncertainty_rows
from pipeline.training.checkpoint import checkpoint_params, load_checkpoint, model_from_checkpoint
from pipeline.training.data import collate_eval, read_image
from pipeline.training.distributed import resolve_device, set_cpu_threads
from pipeline.training.predict import amp_dtype, predict_batch
from pipeline.training.transforms import eval_image


class SnapshotImages(Dataset):
    """Task images of the snapshot at evaluation scale: item -> ((3, h, w), (H, W) placeholder, index)."""

    def __init__(self, paths: list[Path], base_size: int | None):
        self.paths, self.base_size = paths, base_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = read_image(self.paths[i])
        # predict_batch sizes its output like the label map; unlabeled tasks have none, so a blank one.
        blank = torch.full(image.shape[:2], 255, dtype=torch.uint8)
        return eval_image(torch.from_numpy(image).permute(2, 0, 1), self.base_size), blank, i


def review_ids(agreement_path: Path | None) -> list[int]:
    if agreement_path is None or not agreement_path.exists():
        return []
    return [row["task_id"] for row in json.loads(agreement_path.read_text()).get("review", [])]


def predict_records(tasks: list[dict], images: list[Path], checkpoint: Path, base: BaseParams,
                    params: PreannotateParams, to_name: str) -> tuple[str, list[dict]]:
    """Run the checkpoint on the images; returns (model_version, one prediction record per task)."""
    state = load_checkpoint(checkpoint)
    if state["classes"] != base.names:
        raise TrainingError(f"{checkpoint} predicts {state['classes']}, base.classes are {base.names}; train again")
    train_params = checkpoint_params(state)
    version = model_version(params.model_name or train_params.architecture.lower(), checkpoint)
    device = resolve_device(params.device)
    set_cpu_threads(params.threads, device)
    model = model_from_checkpoint(state, device)
    loader = DataLoader(SnapshotImages(images, train_params.base_size), batch_size=params.batch_size, collate_fn=collate_eval,
                        pin_memory=device.type == "cuda")
    dtype = amp_dtype(device, "auto")
    records = []
    with tqdm(total=len(images), desc="preannotate: predict", unit="image") as bar:
        for batch in loader:
            for item in predict_batch(model, batch, device, dtype):
                task_id = tasks[item.index]["id"]
                records.append(prediction_record(task_id, item.pred, item.confidence, base.names, version,
                                                 params.brush_tag, to_name))
            bar.update(len(batch.indices))
    return version, records


def _regions(result: list[dict]) -> list[tuple]:
    return [(region.get("id"), region.get("value")) for region in result or []]


def _delete_stale(client: LabelStudioClient, project_id: int, version: str, stale: dict[int, list[dict]], live: dict) -> None:
    """Delete the stale predictions: in bulk for tasks holding nothing else, one by one only where others must stay."""
    only_this_version = sorted(task for task, found in stale.items()
                               if found and all(p.get("model_version") == version for p in live[task].get("predictions") or []))
    client.delete_task_predictions(project_id, only_this_version)
    bulk = set(only_this_version)
    mixed = [p for task, found in stale.items() if task not in bulk for p in found]
    for prediction in tqdm(mixed, desc="preannotate: replace", unit="prediction", disable=not mixed):
        client.delete_prediction(prediction["id"])


def push(client: LabelStudioClient, project_id: int, version: str, records: list[dict], batch_size: int) -> list[int]:
    """Make `records` the only `version` predictions of their tasks; returns tasks deleted meanwhile.

    Predictions of this version on other tasks (say, tasks annotated since) are kept: they
    are what review-stats compares the annotations with. When the server already holds
    exactly these predictions, nothing is sent, so the project and the next pull stay as they are.
    """
    live = {task["id"]: task for task in client.iter_tasks(project_id)}
    gone = sorted(r["task"] for r in records if r["task"] not in live)
    if gone:
        tqdm.write(f"warning: tasks {gone} were deleted in Label Studio since the pull; skipped")
    records = [r for r in records if r["task"] in live]
    stale = {r["task"]: [p for p in live[r["task"]].get("predictions") or [] if p.get("model_version") == version]
             for r in records}
    same = all(len(stale[r["task"]]) == 1 and _regions(stale[r["task"]][0].get("result")) == _regions(r["result"])
               and abs((stale[r["task"]][0].get("score") or 0) - r["score"]) < 1e-6 for r in records)
    if not same:
        _delete_stale(client, project_id, version, stale, live)
        for start in tqdm(range(0, len(records), batch_size), desc="preannotate: push", unit="batch"):
            client.import_predictions(project_id, records[start : start + batch_size], batch_size=batch_size)
    client.set_model_version(project_id, version)
    return gone


def run(raw_dir: Path, images_dir: Path, checkpoint: Path, agreement_path: Path | None, report_path: Path, uncertainty_path: Path,
        base: BaseParams, ls: LabelStudioParams, params: PreannotateParams) -> dict:
    """Pre-annotate the chosen tasks of the snapshot; write the report and the uncertainty CSV."""
    if params.push_batch < 100:
        raise ParamsError(f"preannotate.push_batch={params.push_batch}: use at least 100 predictions per request")
    project = json.loads((raw_dir / "project.json").read_text())
    if project.get("id") is None:
        raise ParamsError("the snapshot came from pull.export_file and names no project; pull from the server to pre-annotate")
    pairs = [(task, image) for task, image in snapshot_records(raw_dir) if image.get("file")]
    chosen = {t["id"] for t in select_tasks((task for task, _ in pairs), params.tasks, review_ids(agreement_path))}
    pairs = [(task, image) for task, image in pairs if task["id"] in chosen]
    tasks, images = [task for task, _ in pairs], [images_dir / image["file"] for _, image in pairs]
    version, records = predict_records(tasks, images, checkpoint, base, params, ls.image_tag) if tasks else (None, [])
    skipped: list[int] = []
    if records:
        with LabelStudioClient.from_env() as client:
            skipped = push(client, project["id"], version, records, params.push_batch)
    pushed = [r for r in records if r["task"] not in set(skipped)]
    rows = uncertainty_rows(pushed, project["id"])
    with replace_file(uncertainty_path) as handle:
        writer = csv.DictWriter(handle, fieldnames=["task_id", "score", "regions", "link"])
        writer.writeheader()
        writer.writerows(rows)
    scores = [r["score"] for r in pushed]
    report = {"model_version": version, "tasks_selected": len(tasks), "predictions_pushed": len(pushed),
              "tasks_skipped_deleted": sorted(skipped), "selection": params.tasks, "project_id": project["id"],
              "mean_score": round(float(np.mean(scores)), 6) if scores else None,
              "tasks": [{"task_id": r["task"], "score": r["score"], "regions": len(r["result"])} for r in pushed]}
    write_json(report_path, report)
    return {k: v for k, v in report.items() if k != "tasks"}
