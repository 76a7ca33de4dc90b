"""merge: one consensus label map per task, with agreement and annotator-quality figures.

Methods (merge.method):
  vote      weighted per-pixel vote: each annotator's confusion matrix (how they label each true
            class) is estimated over the whole project (consensus -> agreement with it ->
            annotator models, repeated; Dawid-Skene), and each pixel takes the most likely class
  staple    SimpleITK MultiLabelSTAPLE, per image
  majority  one vote per annotator
Ties and pixels nobody labelled become 255. A task with one annotator is copied and flagged
`single`. Agreement is the mean pairwise IoU over the pixels both annotators labelled
(pipeline.metrics.pairwise_iou); annotator quality compares each annotator with the final
consensus over the whole project.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import combinations, islice
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.atomic import replace_dir, write_json
from pipeline.consensus import AnnotatorModels, annotator_quality, estimate_annotator_models, staple, vote_tuples
from pipeline.cooccurrence import LabelTuples, confusion_against, pair_confusion, paint, pixel_keys, read_index_map
from pipeline.errors import ParamsError
from pipeline.masks import read_label_map, write_label_map
from pipeline.metrics import mean_pair_iou
from pipeline.params import BaseParams, MergeParams

METHODS = ("vote", "staple", "majority")
CHUNK = 64


def read_tasks(annotations_dir: Path) -> list[dict]:
    with open(annotations_dir / "index.jsonl") as handle:
        return [json.loads(line) for line in handle]


def load_maps(annotations_dir: Path, task: dict) -> dict[str, np.ndarray]:
    """{annotator: (H, W) uint8} of one task."""
    return {key: read_label_map(annotations_dir / entry["file"]) for key, entry in sorted(task["maps"].items())}


def task_link(project_id: int | None, task_id: int) -> str | None:
    """Path of the task in the Label Studio UI, relative to LABEL_STUDIO_URL (kept out of reports)."""
    return None if project_id is None else f"/projects/{project_id}/data?task={task_id}"


def merge_task(task: dict, annotations_dir: Path, out_dir: Path, method: str, models: AnnotatorModels | None,
               num_classes: int) -> tuple[dict, dict[str, np.ndarray]]:
    """Write one consensus map; return its agreement entry and each annotator's (C, C) confusion."""
    shape = (task["height"], task["width"])
    stored = task.get("cooccurrence", {})
    if method != "staple" and len(task["maps"]) > 1 and "pixels" in stored:
        tuples = LabelTuples.from_dict(stored, num_classes)
        pixels = read_index_map(annotations_dir / stored["pixels"]).ravel()
    else:
        maps = load_maps(annotations_dir, task)
        tuples, pixels = pixel_keys(maps, num_classes)
    if len(task["maps"]) == 1 or method == "staple":
        consensus = next(iter(maps.values())).copy() if len(maps) == 1 else staple(maps, num_classes)
        per_tuple = np.empty(len(tuples.counts), np.uint8)
        per_tuple[pixels] = consensus.ravel()  # all pixels of one label combination get one label
    else:
        per_tuple = vote_tuples(tuples, models if method == "vote" else None)
        consensus = paint(per_tuple, pixels, shape)
    write_label_map(out_dir / f"{task['task_id']}.png", consensus)
    confusions = {name: confusion_against(tuples, per_tuple, column) for column, name in enumerate(tuples.annotators)}
    pairs = [pair_confusion(tuples, i, j) for i, j in combinations(range(len(tuples.annotators)), 2)]
    per_class, overall = mean_pair_iou(pairs) if pairs else (np.full(num_classes, np.nan), float("nan"))
    entry = {
        "task_id": task["task_id"],
        "annotators": list(tuples.annotators),
        "single": len(tuples.annotators) == 1,
        "mean_pairwise_iou": _round(overall),
        "per_class_iou": [_round(v) for v in per_class],
        "undecided_fraction": round(float((consensus == 255).mean()), 5),
    }
    return entry, confusions


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 5)


def _chunks(items: list, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def run(annotations_dir: Path, validation_path: Path, out_dir: Path, report_path: Path,
        base: BaseParams, params: MergeParams) -> dict:
    """Merge every task of `annotations_dir` into `out_dir`; write the agreement report."""
    if params.method not in METHODS:
        raise ParamsError(f"merge.method={params.method!r} is not known; use one of {', '.join(METHODS)}")
    num_classes = len(base.names)
    tasks = read_tasks(annotations_dir)
    validation = json.loads(validation_path.read_text())
    project_id = (validation.get("project") or {}).get("id")
    models = None
    if params.method == "vote":
        # validate stored each task's label co-occurrence: estimation reads no label map.
        tables = (LabelTuples.from_dict(t["cooccurrence"], num_classes) if "cooccurrence" in t else load_maps(annotations_dir, t)
                  for t in tasks)
        models = estimate_annotator_models(tables, num_classes, iterations=params.iterations)
    workers = params.workers or os.cpu_count() or 1
    entries, totals = [], {}
    with replace_dir(out_dir) as staging, ProcessPoolExecutor(workers) as pool, tqdm(desc="merge", unit="task", total=len(tasks)) as bar:
        work = partial(merge_task, annotations_dir=annotations_dir, out_dir=staging, method=params.method,
                       models=models, num_classes=num_classes)
        for chunk in _chunks(tasks, CHUNK * workers):
            for entry, confusions in pool.map(work, chunk, chunksize=max(1, len(chunk) // (4 * workers))):
                entries.append(entry)
                for key, matrix in confusions.items():
                    totals[key] = totals.get(key, 0) + matrix
            bar.update(len(chunk))
    report = agreement_report(entries, totals, tasks, base.names, params, project_id, models)
    write_json(report_path, report)
    return report["summary"]


def agreement_report(entries: list[dict], totals: dict, tasks: list[dict], names: list[str], params: MergeParams,
                     project_id: int | None, models: AnnotatorModels | None) -> dict:
    """agreement.json: per task, per class and per annotator, and the tasks to review."""
    emails = {key: entry.get("email") for task in tasks for key, entry in task["maps"].items()}
    task_counts: dict[str, int] = {}
    for entry in entries:
        for key in entry["annotators"]:
            task_counts[key] = task_counts.get(key, 0) + 1
    annotators = {}
    for key, matrix in sorted(totals.items()):
        quality = annotator_quality(matrix, names)
        annotators[key] = {"email": emails.get(key), "tasks": task_counts[key], "iou_vs_consensus": quality["mean_iou"], **quality}
    multi = [e for e in entries if not e["single"] and e["mean_pairwise_iou"] is not None]
    review = sorted((e for e in multi if e["mean_pairwise_iou"] < params.min_agreement), key=lambda e: e["mean_pairwise_iou"])
    per_class = np.array([[np.nan if v is None else v for v in e["per_class_iou"]] for e in multi]) if multi else np.empty((0, len(names)))
    summary = {
        "method": params.method,
        "tasks": len(entries),
        "single_annotator_tasks": len(entries) - len(multi),
        "mean_pairwise_iou": _round(np.mean([e["mean_pairwise_iou"] for e in multi])) if multi else None,
        "per_class_pairwise_iou": {n: _round(np.nanmean(per_class[:, i])) if np.isfinite(per_class[:, i]).any() else None
                                   for i, n in enumerate(names)},
        "below_min_agreement": len(review),
        "min_agreement": params.min_agreement,
    }
    return {
        "summary": summary,
        "classes": names,
        "tasks": {str(e["task_id"]): e for e in entries},
        "annotators": annotators,
        "review": [{"task_id": e["task_id"], "mean_pairwise_iou": e["mean_pairwise_iou"], "link": task_link(project_id, e["task_id"])}
                   for e in review],
        "annotator_models": models.to_dict() if models is not None else None,
    }
