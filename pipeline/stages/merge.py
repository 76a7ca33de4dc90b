"""merge: one consensus label map per task, with agreement and annotator-quality figures.

Methods (merge.method):
  dawid_skene  the default: Dawid-Skene by soft EM over the whole project, each annotator's
            confusion per zone of distance from the nearest edge anyone drew (merge.boundary_zones)
            or per band of distance from their own edges (merge.edge_bands;
            pipeline.dataset.dawid_skene), on maps with each annotator's missed objects and
            boundary offset undone first (merge.corrections; pipeline.dataset.crowd_corrections),
            the offsets measured against the images' edges when --images is given
            (pipeline.dataset.edge_offsets)
  vote      weighted per-pixel vote: each annotator's confusion matrix (how they label each true
            class) is estimated over the whole project (consensus -> agreement with it ->
            annotator models, repeated; Dawid-Skene), and each pixel takes the most likely class
  staple    SimpleITK MultiLabelSTAPLE, per image
  majority  one vote per annotator
Ties follow merge.undecided (ignore: 255; resolve: the most probable class); pixels nobody
labelled are 255. Beside the label maps, confidence/<task_id>.png holds the confidence of each
pixel's label, round(255 p) (pipeline.dataset.task_consensus). A task with one annotator is copied and
flagged `single`. Agreement is the mean pairwise IoU over the pixels both annotators labelled
(pipeline.dataset.metrics.pairwise_iou); annotator quality compares each annotator with the final
consensus over the whole project.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from itertools import combinations
from pathlib import Path

import numpy as np
import orjson
from tqdm import tqdm

from pipeline.artifacts.annotations import iter_index, load_maps
from pipeline.artifacts.labels import CONFIDENCE_DIR, confidence_path, label_path
from pipeline.artifacts.reports import report_project, streamed_report
from pipeline.core.atomic import replace_dir
from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import ImageError, ParamsError, PipelineError, UnsafeReferenceError
from pipeline.core.images import read_rgb
from pipeline.core.parallel import ordered_map
from pipeline.core.params import BaseParams, MergeParams
from pipeline.core.taskmap import choose_backend, pack, unpack
from pipeline.dataset.consensus import AnnotatorModels, annotator_quality, estimate_annotator_models
from pipeline.dataset.cooccurrence import (
    LabelTuples,
    confusion_against,
    decode_index_map,
    pair_confusion,
    pixel_keys,
    read_index_map,
)
from pipeline.dataset.crowd_corrections import MIN_ANNOTATORS, CorrectedModels, estimate_corrected, sample_tasks
from pipeline.dataset.dawid_skene import BandedModels, estimate_models
from pipeline.dataset.decision import POLICIES
from pipeline.dataset.edge_bands import check_bands
from pipeline.dataset.edge_offsets import image_edges
from pipeline.dataset.masks import decode_label_map, encode_label_map
from pipeline.dataset.metrics import mean_pair_iou
from pipeline.dataset.task_consensus import METHODS, banded_of, merge_tuples
from pipeline.labelstudio.references import local_file_path
from pipeline.labelstudio.tasks import task_link


def task_tuples(task: dict, annotations_dir: Path, num_classes: int) -> tuple[LabelTuples, np.ndarray]:
    """The task's label combinations and each pixel's row, from validate's index map when stored."""
    stored = task.get("cooccurrence", {})
    if len(task["maps"]) > 1 and "pixels" in stored:
        tuples = LabelTuples.from_dict(stored, num_classes)
        shape = (task["height"], task["width"])
        return tuples, read_index_map(annotations_dir / stored["pixels"], shape, len(tuples.counts)).ravel()
    return pixel_keys(load_maps(annotations_dir, task), num_classes)


def estimation_tuples(
    task: dict, annotations_dir: Path, num_classes: int, bands: tuple[tuple[int, ...], bool]
) -> LabelTuples:
    """What Dawid-Skene estimation needs of one task: its combinations, banded when bands
    (thresholds, zones: MergeParams.bands) are on."""
    thresholds, zones = bands
    if not thresholds and "cooccurrence" in task:
        return LabelTuples.from_dict(task["cooccurrence"], num_classes)
    tuples, pixels = task_tuples(task, annotations_dir, num_classes)
    return banded_of(tuples, pixels, (task["height"], task["width"]), thresholds, zones)[0]


def merge_payload_of(task: dict, annotations_dir: Path) -> bytes:
    """What a worker needs for one task: its index entry and the files its merge reads, as bytes."""
    parts = {"task": orjson.dumps(task)}
    stored = task.get("cooccurrence", {})
    if len(task["maps"]) > 1 and "pixels" in stored:
        parts["pixels"] = (annotations_dir / stored["pixels"]).read_bytes()
    else:
        parts.update(
            (f"map:{key}", (annotations_dir / entry["file"]).read_bytes())
            for key, entry in sorted(task["maps"].items())
        )
    return pack(parts)


def payload_tuples(task: dict, parts: dict[str, bytes], num_classes: int) -> tuple[LabelTuples, np.ndarray]:
    """The task's label combinations and each pixel's row, from the index map's bytes when sent."""
    if "pixels" in parts:
        tuples = LabelTuples.from_dict(task["cooccurrence"], num_classes)
        shape = (task["height"], task["width"])
        return tuples, decode_index_map(
            parts["pixels"], shape, len(tuples.counts), f"task {task['task_id']} index map"
        ).ravel()
    maps = {
        name[len("map:") :]: decode_label_map(content, f"task {task['task_id']} map {name[len('map:') :]}")
        for name, content in parts.items()
        if name.startswith("map:")
    }
    return pixel_keys(maps, num_classes)


def merge_payload(payload: bytes, method: str, models, num_classes: int, undecided: str = "resolve") -> bytes:
    """The worker's kernel: a `merge_payload_of` in; consensus and confidence PNGs, the agreement entry,
    (A, C, C) confusions and (A', 3, C) boundary offsets out."""
    parts = unpack(payload)
    task = orjson.loads(parts["task"])
    tuples, pixels = payload_tuples(task, parts, num_classes)
    consensus, confidence, entry, confusions, offsets = merge_task(
        task, tuples, pixels, method, models, num_classes, undecided
    )
    stacked = np.stack([confusions[name] for name in entry["annotators"]]).astype("<i8")
    names = sorted(offsets)
    bands = np.stack([np.stack(offsets[name]) for name in names]).astype("<f8") if names else np.empty(0, "<f8")
    return pack(
        {
            "label": encode_label_map(consensus),
            "confidence": encode_label_map(confidence),
            "entry": orjson.dumps(entry, option=orjson.OPT_SORT_KEYS),
            "confusions": stacked.tobytes(),
            "offset_names": orjson.dumps(names),
            "offsets": bands.tobytes(),
        }
    )


def merge_task(
    task: dict,
    tuples: LabelTuples,
    pixels: np.ndarray,
    method: str,
    models,
    num_classes: int,
    undecided: str = "resolve",
) -> tuple[np.ndarray, np.ndarray, dict, dict[str, np.ndarray], dict]:
    """One task's (H, W) consensus and confidence maps, agreement entry, each annotator's (C, C)
    confusion and boundary offsets (pipeline.dataset.boundary_bias)."""
    single = len(tuples.annotators) == 1
    result = merge_tuples(
        tuples, pixels, (task["height"], task["width"]), "majority" if single else method, models, undecided
    )
    consensus = result.labels
    merged = result.tuples
    confusions = {
        name: confusion_against(merged, result.per_tuple, column) for column, name in enumerate(merged.annotators)
    }
    pairs = [pair_confusion(merged, i, j) for i, j in combinations(range(len(merged.annotators)), 2)]
    per_class, overall = mean_pair_iou(pairs) if pairs else (np.full(num_classes, np.nan), float("nan"))
    confidence = result.mean_confidence()
    entry = {
        "task_id": task["task_id"],
        "annotators": list(merged.annotators),
        "single": single,
        "mean_pairwise_iou": _round(overall),
        "per_class_iou": [_round(v) for v in per_class],
        "undecided_fraction": round(np.count_nonzero(consensus == IGNORE_INDEX) / consensus.size, 5),
        "against_majority": round(result.against_majority(), 5),
        "mean_confidence": None if confidence is None else round(confidence, 5),
    }
    return consensus, result.confidence_png(), entry, confusions, ({} if single else result.boundary_offsets())


def _payloads(annotations_dir: Path, pending: deque) -> Iterator[bytes]:
    for task in iter_index(annotations_dir):
        pending.append(task)
        yield merge_payload_of(task, annotations_dir)


def _unpacked(parts: dict[str, bytes], num_classes: int) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(entry, confusions, offsets) of a worker's result."""
    entry = orjson.loads(parts["entry"])
    matrices = np.frombuffer(parts["confusions"], "<i8").reshape(len(entry["annotators"]), num_classes, num_classes)
    names = orjson.loads(parts["offset_names"])
    bands = np.frombuffer(parts["offsets"], "<f8").reshape(len(names), 3, num_classes) if names else []
    return entry, dict(zip(entry["annotators"], matrices)), dict(zip(names, bands))


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
        self.offsets: dict[str, np.ndarray] = {}  # annotator -> (3, C): signed sum, absolute sum, pixels

    def add(self, task: dict, entry: dict, confusions: dict, min_agreement: float, offsets: dict) -> None:
        self.tasks += 1
        for key, parts in offsets.items():
            self.offsets[key] = self.offsets.get(key, 0) + np.stack(parts)
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


def run(
    annotations_dir: Path,
    validation_path: Path,
    out_dir: Path,
    report_path: Path,
    base: BaseParams,
    params: MergeParams,
    scheduler: str | None = None,
    images_dir: Path | None = None,
) -> dict:
    """Merge every task of `annotations_dir` into `out_dir`; write the agreement report.

    With `images_dir` (pull's image folder), the default merge measures each annotator's boundary
    offset and edge fidelity against the images' edges (pipeline.dataset.edge_offsets).

    Streams: tasks are read from the index in chunks and their report entries written as they
    come, so memory does not grow with the project (only the small co-occurrence tables do).
    Tasks are merged by `pipeline.core.taskmap` (local processes, or the Dask cluster at `scheduler`
    or $DASK_SCHEDULER_ADDRESS); only this process writes files.
    """
    if params.method not in METHODS:
        raise ParamsError(f"merge.method={params.method!r} is not known; use one of {', '.join(METHODS)}")
    if params.undecided not in POLICIES:
        raise ParamsError(f"merge.undecided={params.undecided!r} is not known; use one of {', '.join(POLICIES)}")
    params.check()
    params = zones_that_fit(params, len(base.names))
    for key in ("edge_bands", "boundary_zones"):
        try:
            check_bands(getattr(params, key), len(base.names))
        except PipelineError as error:
            raise ParamsError(f"merge.{key}: {error}") from None
    num_classes = len(base.names)
    project_id = report_project(validation_path).get("id")
    workers = params.workers or os.cpu_count() or 1
    models = estimate(annotations_dir, num_classes, params, workers, images_dir)
    if isinstance(models, CorrectedModels) and models.image_tasks and models.image_tasks[0] < models.image_tasks[1]:
        measured, sampled = models.image_tasks
        tqdm.write(
            f"merge: {sampled - measured} of {sampled} sampled tasks have no usable image in {images_dir} (missing, "
            "unreadable or not the size of their label maps); their boundaries were measured against the consensus only"
        )
    tally = Tally(num_classes)
    backend = choose_backend(scheduler, params.workers)
    with (
        replace_dir(out_dir) as staging,
        streamed_report(report_path, "tasks", keyed=True) as report,
        tqdm(desc=f"merge on {backend.describe()}", unit="task") as bar,
    ):
        (staging / CONFIDENCE_DIR).mkdir()
        kernel = partial(
            merge_payload, method=params.method, models=models, num_classes=num_classes, undecided=params.undecided
        )
        pending: deque = deque()  # tasks sent and not yet back, in order (bounded by the backend)
        try:
            for result in backend.map(kernel, _payloads(annotations_dir, pending)):
                task, parts = pending.popleft(), unpack(result)
                entry, confusions, offsets = _unpacked(parts, num_classes)
                label_path(staging, entry["task_id"]).write_bytes(parts["label"])
                confidence_path(staging, entry["task_id"]).write_bytes(parts["confidence"])
                report.add_encoded(parts["entry"].decode(), entry["task_id"])
                tally.add(task, entry, confusions, params.min_agreement, offsets)
                bar.update()
        finally:
            backend.close()
        rest = agreement_summary(tally, base.names, params, project_id, models)
        report.finish(rest)
    return rest["summary"]


def zones_that_fit(params: MergeParams, num_classes: int) -> MergeParams:
    """The params with one boundary zone when the classes times the zones do not fit a uint8 code."""
    zones = len(params.boundary_zones) + 1
    if params.boundary_zones and num_classes * zones >= IGNORE_INDEX:
        tqdm.write(f"merge: {num_classes} classes x {zones} boundary zones do not fit a uint8 code; one zone instead")
        return replace(params, boundary_zones=())
    return params


def task_edges(images_dir: Path, task: dict) -> np.ndarray | None:
    """(H, W) float32 edge map of a task's image (pipeline.dataset.edge_offsets), as displayed; None
    when the index names no image inside ``images_dir``, or it cannot be read or is not the size
    the label maps are (then the task's boundaries are measured against the consensus only)."""
    name = task.get("image")
    if not isinstance(name, str):
        return None
    try:
        path = local_file_path(name, images_dir)  # never outside the folder, symlinks included
    except UnsafeReferenceError:
        return None
    if not path.is_file():
        return None
    try:
        rgb = read_rgb(path)
    except ImageError:
        return None
    return image_edges(rgb) if rgb.shape[:2] == (task["height"], task["width"]) else None


def estimate(
    annotations_dir: Path, num_classes: int, params: MergeParams, workers: int, images_dir: Path | None = None
):
    """Project-wide annotator models of merge.method (None for majority and staple).

    validate stored each task's label co-occurrence: plain Dawid-Skene without edge bands reads
    no label map; with bands, each task's maps are rebuilt from its index map, in parallel. With
    merge.corrections, the maps of up to merge.correction_tasks tasks are read in several
    parallel passes (pipeline.dataset.crowd_corrections), then every task's once more for the models;
    with ``images_dir``, the sampled tasks' images too (boundary offsets and edge fidelity).
    """
    if params.method == "vote":
        tables = (
            LabelTuples.from_dict(t["cooccurrence"], num_classes)
            if "cooccurrence" in t
            else load_maps(annotations_dir, t)
            for t in iter_index(annotations_dir)
        )
        return estimate_annotator_models(tables, num_classes, iterations=params.iterations)
    if params.method == "dawid_skene" and params.corrections:
        entries = sample_tasks(iter_index(annotations_dir), lambda t: sorted(t["maps"]), params.correction_tasks)
        return estimate_corrected(
            entries,
            num_classes,
            load=partial(load_maps, annotations_dir),
            mapper=lambda work, items: (result for _, result in ordered_map(work, items, workers)),
            corrections=params.corrections,
            thresholds=params.bands[0],
            zones=params.bands[1],
            iterations=params.iterations,
            # only tasks with three or more annotators teach the models: the others' maps stay unread
            every_task=lambda: (t for t in iter_index(annotations_dir) if len(t["maps"]) >= MIN_ANNOTATORS),
            edges=partial(task_edges, images_dir) if images_dir is not None else None,
        )
    if params.method == "dawid_skene":
        work = partial(
            estimation_tuples,
            annotations_dir=annotations_dir,
            num_classes=num_classes,
            bands=params.bands,
        )
        thresholds, zones = params.bands
        # without bands a task's table is in the index: not worth a process hop
        tables = (t for _, t in ordered_map(work, iter_index(annotations_dir), workers if thresholds else 1))
        return estimate_models(tables, num_classes, thresholds, iterations=params.iterations, zones=zones)
    return None


def boundary_figures(parts: np.ndarray | None, names: list[str]) -> dict:
    """Boundary bias of one annotator from summed offsets (3, C): per class and overall, in px."""
    if parts is None:
        return {"boundary_bias_px": {n: None for n in names}, "boundary_offset_px": None, "boundary_pixels": 0}
    signed, unsigned, count = parts
    return {
        "boundary_bias_px": {n: _round(s / k) if k else None for n, s, k in zip(names, signed, count)},
        "boundary_offset_px": _round(unsigned.sum() / count.sum()) if count.sum() else None,
        "boundary_pixels": int(count.sum()),
    }


def correction_figures(models, annotator: str, names: list[str]) -> dict:
    """What the merge undid on one annotator's maps: their boundary correction and missed classes."""
    if not isinstance(models, CorrectedModels):
        return {}
    offsets = models.corrections.offsets
    missed = sorted({names[k] for a, _, k in models.corrections.misses.order if a == annotator})
    fidelity = models.edge_fidelity.get(annotator)
    return {
        "estimated_boundary_offset_px": _round(offsets.raw[annotator]) if annotator in offsets.raw else None,
        "boundary_offset_reference": offsets.reference.get(annotator, "consensus")
        if annotator in offsets.raw
        else None,
        "boundary_correction_px": -offsets.radius.get(annotator, 0),
        "edge_fidelity": None if fidelity is None else _round(fidelity),
        "missed_object_classes": missed,
    }


def agreement_summary(
    tally: Tally,
    names: list[str],
    params: MergeParams,
    project_id: int | None,
    models: AnnotatorModels | BandedModels | CorrectedModels | None,
) -> dict:
    """agreement.json besides its per-task entries: summary, annotators, the tasks to review."""
    annotators = {}
    for key, matrix in sorted(tally.totals.items()):
        quality = annotator_quality(matrix, names)
        annotators[key] = {
            "email": tally.emails.get(key),
            "tasks": tally.task_counts[key],
            "iou_vs_consensus": quality["mean_iou"],
            **quality,
            **boundary_figures(tally.offsets.get(key), names),
            **correction_figures(models, key, names),
        }
    per_class = np.divide(
        tally.class_sum, tally.class_count, out=np.full(len(names), np.nan), where=tally.class_count > 0
    )
    summary = {
        "method": params.method,
        "corrections": list(params.corrections) if isinstance(models, CorrectedModels) else [],
        "boundary_zones": list(params.boundary_zones) if params.method == "dawid_skene" else [],
        # [tasks whose image was measured, tasks the corrections were estimated on]; null: no images
        "image_measured_tasks": list(models.image_tasks)
        if isinstance(models, CorrectedModels) and models.image_tasks is not None
        else None,
        "undecided": params.undecided,
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
        "review": [
            {"task_id": task_id, "mean_pairwise_iou": iou, "link": task_link(project_id, task_id) or None}
            for iou, task_id in sorted(tally.low)
        ],
        "annotator_models": models.to_dict() if models is not None else None,
    }
