"""evaluate: score trained models on a split, draw the results, and list suspect training labels.

Reads   <images>/..., <annotations>/index.jsonl, <labels>/*.png, <splits>/<evaluate.split>.txt and the
        split the primary model was trained on, the checkpoints given (the first is the primary model),
        <validation> (Label Studio project id)
Writes  (see ReportPaths) metrics.json, confusion.json/.png, overlays/, comparison.md/.json/.png and
        suspect_labels.csv; everything but the comparison is about the primary model.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts.reports import report_project
from pipeline.core.atomic import replace_dir, replace_file, write_json
from pipeline.core.errors import TrainingError
from pipeline.core.params import BaseParams, EvaluateParams
from pipeline.dataset.metrics import confusion_matrix, dice_per_class, iou_per_class, mean_iou, pixel_accuracy
from pipeline.model.checkpoint import checkpoint_params, finite_or_none, load_checkpoint, model_from_checkpoint
from pipeline.model.data import EvalDataset, collate_eval, list_samples, make_loader, read_image
from pipeline.model.distributed import resolve_device, set_cpu_threads
from pipeline.model.models import count_parameters
from pipeline.model.predict import amp_dtype, predictions
from pipeline.quality import hints
from pipeline.quality.comparison import write_comparison
from pipeline.quality.plots import confusion_png, overlay, write_png


@dataclasses.dataclass(frozen=True)
class ReportPaths:
    metrics: Path  # metrics.json of the primary model
    confusion_json: Path  # its confusion matrix, rows actual, columns predicted
    confusion_png: Path
    overlays: Path  # folder of image | truth | prediction | errors PNGs
    comparison: Path  # stem: .md, .json and .png are written
    suspects: Path  # suspect_labels.csv

    @classmethod
    def under(cls, folder: Path) -> ReportPaths:
        """The default names inside one reports folder."""
        folder = Path(folder)
        return cls(
            folder / "metrics.json",
            folder / "confusion.json",
            folder / "confusion.png",
            folder / "overlays",
            folder / "comparison",
            folder / "suspect_labels.csv",
        )


@dataclasses.dataclass
class Scored:
    """One model's results on the split."""

    path: Path
    state: dict
    model: torch.nn.Module
    cm: np.ndarray  # (C, C)
    image_miou: list[float]  # per image, NaN where nothing was labelled
    ms_per_image: float


def run(
    images_dir: Path,
    annotations_dir: Path,
    labels_dir: Path,
    splits_dir: Path,
    checkpoints: Sequence[Path],
    reports: ReportPaths | Path,
    base: BaseParams,
    params: EvaluateParams,
    validation_path: Path | None = None,
) -> dict:
    """Evaluate every checkpoint on `params.split`; returns the primary model's metrics."""
    if not checkpoints:
        raise TrainingError("no checkpoint to evaluate; pass at least one, e.g. models/best.pt")
    paths = reports if isinstance(reports, ReportPaths) else ReportPaths.under(reports)
    device = resolve_device(params.device)
    set_cpu_threads(params.threads, device)
    dataset = (Path(images_dir), Path(annotations_dir), Path(labels_dir))
    samples = list_samples(*dataset, Path(splits_dir), params.split, "evaluate.split")
    if not samples:
        raise TrainingError(f"split {params.split!r} holds no task; nothing to evaluate")
    scored = [_score(Path(p), samples, base, params, device) for p in checkpoints]
    primary = scored[0]
    metrics = {
        "model": str(primary.path),
        "split": params.split,
        "images": len(samples),
        **summarize(primary.cm, base.names),
    }
    write_json(paths.metrics, metrics)
    write_json(
        paths.confusion_json,
        {"classes": base.names, "rows": "actual", "columns": "predicted", "matrix": primary.cm.tolist()},
    )
    confusion_png(
        paths.confusion_png, primary.cm, base.names, f"{params.split}: {primary.path.parent.name}/{primary.path.name}"
    )
    _write_overlays(paths.overlays, primary, samples, base, params, device)
    write_comparison(paths.comparison, [_row(s, base.names) for s in scored], base.names, params.split)
    # Suspect labels are looked for in what the primary model was trained on.
    trained_on = checkpoint_params(primary.state).train_split
    train_samples = list_samples(*dataset, Path(splits_dir), trained_on, f"train.train_split of {primary.path}")
    _write_suspects(
        paths.suspects, primary, train_samples, base, params, device, report_project(validation_path).get("id")
    )
    return metrics


def summarize(cm: np.ndarray, names: Sequence[str]) -> dict:
    """JSON-ready metrics of one confusion matrix: class means skip classes absent from truth and prediction."""
    iou, dice = iou_per_class(cm), dice_per_class(cm)
    return {
        "mIoU": finite_or_none(mean_iou(cm)),
        "pixel_accuracy": finite_or_none(pixel_accuracy(cm)),
        "mean_dice": finite_or_none(float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan")),
        "iou": {n: finite_or_none(v) for n, v in zip(names, iou)},
        "dice": {n: finite_or_none(v) for n, v in zip(names, dice)},
    }


def _loader(samples, state: dict, params: EvaluateParams, device: torch.device, seed: int):
    dataset = EvalDataset(samples, checkpoint_params(state).base_size)
    return make_loader(
        dataset,
        params.batch_size,
        params.workers,
        shuffle=False,
        seed=seed,
        collate_fn=collate_eval,
        pin_memory=device.type == "cuda",
    )


def _score(path: Path, samples, base: BaseParams, params: EvaluateParams, device: torch.device) -> Scored:
    state = load_checkpoint(path)
    if state["classes"] != base.names:
        raise TrainingError(
            f"{path} predicts classes {state['classes']}, base.classes are {base.names}; "
            "train it again on the current classes"
        )
    model = model_from_checkpoint(state, device)
    num_classes = len(base.names)
    cm = np.zeros((num_classes, num_classes), np.int64)
    image_miou = [float("nan")] * len(samples)
    start = time.perf_counter()
    for p in predictions(model, _loader(samples, state, params, device, base.seed), device, amp_dtype(device, "auto")):
        one = confusion_matrix(p.truth, p.pred, num_classes)
        cm += one
        image_miou[p.index] = mean_iou(one)
    elapsed = time.perf_counter() - start
    return Scored(path, state, model, cm, image_miou, 1000 * elapsed / len(samples))


def _row(scored: Scored, names: Sequence[str]) -> dict:
    train = scored.state["params"]
    return {
        "model": str(scored.path),
        "architecture": train["architecture"],
        "encoder": train["encoder"],
        "epochs": scored.state["epoch"],
        "parameters": count_parameters(scored.model),
        "ms_per_image": round(scored.ms_per_image, 2),
        **summarize(scored.cm, names),
    }


def pick_overlays(image_miou: Sequence[float], worst: int, random: int, seed: int) -> list[tuple[str, int]]:
    """(kind, index) pairs: the `worst` lowest per-image mIoU (ties by index), then `random` others."""
    scored = [i for i, v in enumerate(image_miou) if np.isfinite(v)]
    chosen = sorted(scored, key=lambda i: (image_miou[i], i))[:worst]
    rest = [i for i in range(len(image_miou)) if i not in set(chosen)]
    drawn = np.random.default_rng(seed).permutation(rest)[:random].tolist() if rest else []
    return [("worst", i) for i in chosen] + [("random", int(i)) for i in drawn]


def _write_overlays(
    folder: Path, scored: Scored, samples, base: BaseParams, params: EvaluateParams, device: torch.device
) -> None:
    picks = pick_overlays(scored.image_miou, params.overlays_worst, params.overlays_random, base.seed)
    subset = [samples[i] for _, i in picks]
    loader = _loader(subset, scored.state, dataclasses.replace(params, workers=0), device, base.seed)
    with replace_dir(folder) as staging:
        for p in predictions(scored.model, loader, device, amp_dtype(device, "auto")):
            kind, index = picks[p.index]
            sample = samples[index]
            rank = sum(1 for k, _ in picks[: p.index + 1] if k == kind)
            caption = f"task {sample.task_id}  mIoU {scored.image_miou[index]:.2f}"
            picture = overlay(read_image(sample.image), p.truth, p.pred, base.palette, caption)
            write_png(staging / f"{kind}_{rank:02d}_task{sample.task_id}.png", picture)


def _write_suspects(
    path: Path,
    scored: Scored,
    samples,
    base: BaseParams,
    params: EvaluateParams,
    device: torch.device,
    project_id: int | None,
) -> None:
    """suspect_labels.csv: training tasks ranked by confident disagreement with their consensus labels."""
    names = base.names
    found = [
        hints.disagreement(
            samples[p.index].task_id, p.truth, p.pred, p.confidence, params.suspect_threshold, len(names)
        )
        for p in predictions(
            scored.model, _loader(samples, scored.state, params, device, base.seed), device, amp_dtype(device, "auto")
        )
    ]
    by_id = {s.task_id: s for s in samples}
    with replace_file(Path(path)) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(
            [
                "rank",
                "task_id",
                "score",
                "disagree_pixels",
                "labelled_pixels",
                "label_class",
                "predicted_class",
                "image_name",
                "link",
            ]
        )
        for k, d in enumerate(hints.rank(found, params.suspect_top), 1):
            label = names[d.label_class] if d.label_class is not None else ""
            predicted = names[d.predicted_class] if d.predicted_class is not None else ""
            writer.writerow(
                [
                    k,
                    d.task_id,
                    f"{d.score:.6f}",
                    d.disagree,
                    d.labelled,
                    label,
                    predicted,
                    by_id[d.task_id].image_name,
                    hints.task_link(project_id, d.task_id),
                ]
            )
