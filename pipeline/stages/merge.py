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
from functools import partial
from itertools import combinations
from pathlib import Path

import ijson
import numpy as np
import orjson
from tqdm import tqdm

from pipeline.atomic import replace_dir, replace_file
from pipeline.consensus import AnnotatorModels, annotator_quality, estimate_annotator_models, staple, vote_tuples
from pipeline.cooccurrence import LabelTuples, confusion_against, pair_confusion, paint, pixel_keys, read_index_map
from pipeline.errors import ParamsError
from pipeline.masks import read_label_map, write_label_map
from pipeline.metrics import mean_pair_iou
from pipeline.parallel import ordered_map
from pipeline.params import BaseParams, MergeParams

METHODS = ("vote", "staple", "majority")


def iter_tasks(annotations_dir: Path) -> Iterator[dict]:
    """Tasks with at least one valid annotation, streamed from validate's index (sorted by task id)."""
    with open(annotations_dir / "index.jsonl", "rb") as handle:
        for line in handle:
            yield orjson.loads(line)


def load_maps(annotations_dir: Path, task: dict) -> dict[str, np.ndarray]:
    """{annotator: (H, W) uint8} of one task."""
    return {key: read_label_map(annotations_dir / entry["file"]) for key, entry in sorted(task["maps"].items())}


def project_of(report_path: Path) -> dict:
    """The {"id", "title"} recorded in a validation report, read without loading the whole report."""
    with open(report_path, "rb") as handle:
        for project in ijson.items(handle, "project"):
            return project or {}
    return {}


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
        pixels = read_index_map(annotations_dir / stored["pixels"], shape, len(tuples.counts)).ravel()
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
        "undecided_fraction": round(np.count_nonzero(consensus == 255) / consensus.size, 5),
    }
    return entry, confusions


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 5)


class Tally:
    """What the agreement report needs beyond the per-task entries, accumulated task by task."""

    def __init__(self, num_classes: int):
        self.tasks = self.single = 0
        self.iou_sum, self.iou_count = 0.0, 0
        self.class_sum, self.class_count = np.zeros(num_classes), np.zeros(num_classes, np.int64)
        self.low: list[tuple[float, int]] = []
        self.task_counts: dict[str, int] = {}
        self.emails: dict[str, str | None] = {}
        self.totals: dict[str, np.ndarray] = {}

    def add(self, task: dict, entry: dict, confusions: dict, min_agreement: float) -> None:
        self.tasks += 1
        for key, matrix in confusions.items():
            self.totals[key] = self.totals.get(key, 0) + matrix
            self.task_counts[key] = self.task_counts.get(key, 0) + 1
            self.emails[key] = task["maps"][key].get("email")
        if entry["single"] or entry["mean_pairwise_iou"] is None:
            self.single += 1
            return
        self.iou_sum += entry["mean_pairwise_iou"]
        self.iou_count += 1
        values = np.array([np.nan if v is None else v for v in entry["per_class_iou"]])
        seen = np.isfinite(values)
        self.class_sum[seen] += values[seen]
        self.class_count += seen
        if entry["mean_pairwise_iou"] < min_agreement:
            self.low.append((entry["mean_pairwise_iou"], entry["task_id"]))


def run(annotations_dir: Path, validation_path: Path, out_dir: Path, report_path: Path,
        base: BaseParams, params: MergeParams) -> dict:
    """Merge every task of `annotations_dir` into `out_dir`; write the agreement report.

    Streams: tasks are read from the index in chunks and their report entries written as they
    come, so memory does not grow with the project (only the small co-occurrence tables do).
    """
    if params.method not in METHODS:
        raise ParamsError(f"merge.method={params.method!r} is not known; use one of {', '.join(METHODS)}")
    num_classes = len(base.names)
    project_id = project_of(validation_path).get("id")
    models = None
    if params.method == "vote":
        # validate stored each task's label co-occurrence: estimation reads no label map.
        tables = (LabelTuples.from_dict(t["cooccurrence"], num_classes) if "cooccurrence" in t else load_maps(annotations_dir, t)
                  for t in iter_tasks(annotations_dir))
        models = estimate_annotator_models(tables, num_classes, iterations=params.iterations)
    workers = params.workers or os.cpu_count() or 1
    tally = Tally(num_classes)
    with replace_dir(out_dir) as staging, replace_file(report_path) as report, tqdm(desc="merge", unit="task") as bar:
        work = partial(merge_task, annotations_dir=annotations_dir, out_dir=staging, method=params.method,
                       models=models, num_classes=num_classes)
        report.write('{"tasks": {')
        for task, (entry, confusions) in ordered_map(work, iter_tasks(annotations_dir), workers):
            report.write(f'{"" if tally.tasks == 0 else ","}\n"{entry["task_id"]}": '
                         + orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode())
            tally.add(task, entry, confusions, params.min_agreement)
            bar.update()
        rest = agreement_summary(tally, base.names, params, project_id, models)
        report.write("\n},\n" + json.dumps(rest, indent=1, sort_keys=True)[1:] + "\n")
    return rest["summary"]


def agreement_summary(tally: Tally, names: list[str], params: MergeParams, project_id: int | None,
                      models: AnnotatorModels | None) -> dict:
    """agreement.json besides its per-task entries: summary, annotators, the tasks to review."""
    annotators = {}
    for key, matrix in sorted(tally.totals.items()):
        quality = annotator_quality(matrix, names)
        annotators[key] = {"email": tally.emails.get(key), "tasks": tally.task_counts[key],
                           "iou_vs_consensus": quality["mean_iou"], **quality}
    per_class = np.divide(tally.class_sum, tally.class_count, out=np.full(len(names), np.nan), where=tally.class_count > 0)
    summary = {
        "method": params.method,
        "tasks": tally.tasks,
        "single_annotator_tasks": tally.single,
        "mean_pairwise_iou": _round(tally.iou_sum / tally.iou_count) if tally.iou_count else None,
        "per_class_pairwise_iou": {n: _round(v) for n, v in zip(names, per_class)},
        "below_min_agreement": len(tally.low),
        "min_agreement": params.min_agreement,
    }
    return {
        "summary": summary,
        "classes": names,
        "annotators": annotators,
        "review": [{"task_id": task_id, "mean_pairwise_iou": iou, "link": task_link(project_id, task_id)}
                   for iou, task_id in sorted(tally.low)],
        "annotator_models": models.to_dict() if models is not None else None,
    }
