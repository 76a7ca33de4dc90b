"""train: fit the configured model on the train split, validate each epoch, keep the best and the last.

Reads   <images>/..., <annotations>/index.jsonl, <labels>/<task_id>.png, <splits>/<train.train_split, val_split>.txt
Writes  <models>/best.pt (best validation mIoU), <models>/last.pt (for resuming), <live>/ (dvclive)
Under torchrun every process trains its shard; only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from pipeline.core.errors import TrainingError
from pipeline.core.params import BaseParams, TrainParams
from pipeline.dataset.metrics import iou_per_class, mean_iou, pixel_accuracy
from pipeline.model import distributed
from pipeline.model.checkpoint import check_resumable, finite_or_none, load_checkpoint, save_checkpoint
from pipeline.model.data import EvalDataset, TrainDataset, collate_eval, label_frequencies, list_samples, make_loader
from pipeline.model.loop import (
    SegmentationLoss,
    make_optimizer,
    make_scheduler,
    train_one_epoch,
    validation_confusion,
)
from pipeline.model.models import STRIDE, build_model
from pipeline.model.predict import amp_dtype
from pipeline.model.transforms import check_geometry, train_transform
from pipeline.quality.plots import training_curves_png


def run(
    images_dir: Path,
    annotations_dir: Path,
    labels_dir: Path,
    splits_dir: Path,
    models_dir: Path,
    live_dir: Path,
    base: BaseParams,
    params: TrainParams,
    *,
    resume: bool = False,
) -> dict:
    """Train; returns a summary (epochs, best_miou, last_loss, best and last paths). Same code under torchrun."""
    runtime = distributed.setup(params.device, params.threads)
    try:
        return _train(
            Path(images_dir),
            Path(annotations_dir),
            Path(labels_dir),
            Path(splits_dir),
            Path(models_dir),
            Path(live_dir),
            base,
            params,
            resume,
            runtime,
        )
    finally:
        distributed.teardown(runtime)


def seed_everything(seed: int, device: torch.device) -> None:
    """Same seed, same run on CPU; on GPU cudnn autotuning is worth more than bit-exact repeats."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)


def check_params(params: TrainParams) -> None:
    """Refuse values the loop cannot run with, naming the key and the fix."""
    check_geometry(params.crop_size, params.scale_range, STRIDE)
    for key in ("epochs", "batch_size", "val_every"):
        if getattr(params, key) < 1:
            raise TrainingError(f"train.{key} must be >= 1, got {getattr(params, key)}")
    if params.lr <= 0 or params.weight_decay < 0 or params.dice_weight < 0 or params.color_jitter < 0:
        raise TrainingError("train.lr must be > 0 and train.weight_decay, dice_weight, color_jitter >= 0")
    if params.base_size is not None and params.base_size < STRIDE:
        raise TrainingError(f"train.base_size must be null or >= {STRIDE}, got {params.base_size}")
    if not 0 <= params.min_label_confidence <= 1:
        raise TrainingError(f"train.min_label_confidence must lie in [0, 1], got {params.min_label_confidence}")


def class_weight_tensor(value, samples, num_classes: int) -> torch.Tensor | None:
    """train.class_weights -> (C,) float tensor: null, one weight per class, or median_frequency."""
    if value is None:
        return None
    if value == "median_frequency":
        freq = label_frequencies(samples, num_classes)
        present = freq > 0
        weights = np.ones(num_classes)
        weights[present] = np.median(freq[present]) / freq[present]
        return torch.tensor(weights, dtype=torch.float32)
    if isinstance(value, str) or len(value) != num_classes or any(isinstance(w, bool) for w in value):
        raise TrainingError(
            f"train.class_weights must be null, median_frequency or {num_classes} numbers "
            f"(one per base.classes entry), got {value!r}"
        )
    return torch.tensor([float(w) for w in value], dtype=torch.float32)


def _loaders(train_samples, val_samples, params: TrainParams, seed: int, runtime: distributed.Runtime):
    transform = train_transform(
        params.base_size, params.crop_size, params.scale_range, params.hflip, params.color_jitter
    )
    train_set = TrainDataset(train_samples, transform, params.min_label_confidence)
    sampler = (
        DistributedSampler(train_set, runtime.world_size, runtime.rank, shuffle=True, seed=seed)
        if runtime.distributed
        else None
    )
    pin = runtime.device.type == "cuda"
    per_process = len(train_set) // runtime.world_size
    train_loader = make_loader(
        train_set,
        params.batch_size,
        params.workers,
        shuffle=True,
        seed=seed + runtime.rank,
        sampler=sampler,
        drop_last=per_process > params.batch_size,
        pin_memory=pin,
    )
    # Each process scores every world_size-th image; confusion matrices are summed, nothing counts twice.
    val_set = Subset(
        EvalDataset(val_samples, params.base_size), range(runtime.rank, len(val_samples), runtime.world_size)
    )
    val_loader = make_loader(
        val_set, params.batch_size, params.workers, shuffle=False, seed=seed, collate_fn=collate_eval, pin_memory=pin
    )
    return train_loader, val_loader, sampler


def _model(params: TrainParams, num_classes: int, runtime: distributed.Runtime):
    with distributed.main_first(runtime):  # one hub download into the shared cache, not one per process
        model = build_model(params.architecture, params.encoder, params.encoder_weights, num_classes)
    model = model.to(runtime.device)
    if params.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if runtime.distributed and runtime.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _wrap(model, params: TrainParams, runtime: distributed.Runtime):
    """DDP then compile, as the PyTorch docs order them; compiled in place, so no wrapper to unwrap."""
    if runtime.distributed:
        model = DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None
        )
    if params.compile:
        model.compile()
    return model


def _validation_metrics(cm: np.ndarray, names: list[str]) -> dict:
    iou = iou_per_class(cm)
    return {
        "mIoU": finite_or_none(mean_iou(cm)),
        "pixel_accuracy": finite_or_none(pixel_accuracy(cm)),
        "iou": {name: finite_or_none(v) for name, v in zip(names, iou)},
    }


def _log(live, stats, metrics: dict | None) -> None:
    live.log_metric("train/loss", stats.loss)
    live.log_metric("train/lr", stats.lr)
    live.log_metric("train/data_wait", stats.data_wait)
    if metrics is None:
        return
    for key in ("mIoU", "pixel_accuracy"):
        if metrics[key] is not None:
            live.log_metric(f"val/{key}", metrics[key])
    for name, value in metrics["iou"].items():
        if value is not None:  # a class absent from the validation split has no IoU
            live.log_metric(f"val/iou/{name}", value)


@dataclasses.dataclass
class _Fit:
    """What the epoch loop works with."""

    model: torch.nn.Module  # the plain module (saved, validated)
    trained: torch.nn.Module  # the same, wrapped for DDP and compiled when asked (trained)
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    start: int  # epochs already done (resume)
    best: float  # best validation mIoU so far, NaN if none


def _prepare(
    models_dir: Path,
    train_samples,
    train_loader,
    base: BaseParams,
    params: TrainParams,
    resume: bool,
    runtime: distributed.Runtime,
) -> _Fit:
    num_classes = len(base.classes)
    model = _model(params, num_classes, runtime)
    weights = class_weight_tensor(params.class_weights, train_samples, num_classes)
    loss_fn = SegmentationLoss(params.dice_weight, None if weights is None else weights.to(runtime.device))
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, params, len(train_loader))
    start, best = 0, float("nan")
    last_path = models_dir / "last.pt"
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        check_resumable(state, params, base.names, last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best = state["epoch"], state["best_score"]
    return _Fit(model, _wrap(model, params, runtime), loss_fn, optimizer, scheduler, start, best)


def _train(
    images_dir,
    annotations_dir,
    labels_dir,
    splits_dir,
    models_dir,
    live_dir,
    base: BaseParams,
    params: TrainParams,
    resume: bool,
    runtime: distributed.Runtime,
) -> dict:
    check_params(params)
    dtype = amp_dtype(runtime.device, params.precision)
    seed_everything(base.seed, runtime.device)
    dataset = (images_dir, annotations_dir, labels_dir, splits_dir)
    train_samples = list_samples(*dataset, params.train_split, "train.train_split")
    val_samples = list_samples(*dataset, params.val_split, "train.val_split") if params.val_split else []
    if len(train_samples) < runtime.world_size:
        raise TrainingError(f"{len(train_samples)} training tasks for {runtime.world_size} processes; label more tasks")
    train_loader, val_loader, sampler = _loaders(train_samples, val_samples, params, base.seed, runtime)
    fit = _prepare(models_dir, train_samples, train_loader, base, params, resume, runtime)
    live = _open_live(live_dir, resume and fit.start > 0, fit.start) if runtime.is_main else None
    stats, best = None, fit.best
    for epoch in range(fit.start, params.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        stats = train_one_epoch(
            fit.trained,
            train_loader,
            fit.loss_fn,
            fit.optimizer,
            fit.scheduler,
            runtime,
            dtype,
            params.channels_last,
            f"epoch {epoch + 1}/{params.epochs}",
        )
        metrics = None
        if val_samples and ((epoch + 1) % params.val_every == 0 or epoch + 1 == params.epochs):
            cm = validation_confusion(fit.model, val_loader, len(base.classes), runtime, dtype, params.channels_last)
            metrics = _validation_metrics(cm, base.names)
        # Metrics are summed over processes, so every rank reaches the same verdict.
        score = metrics["mIoU"] if metrics and metrics["mIoU"] is not None else None
        improved = score is not None and (math.isnan(best) or score > best)
        best = score if improved else best
        if runtime.is_main:
            _save_epoch(models_dir, fit, params, base, epoch + 1, best, improved, stats, metrics)
            _log(live, stats, metrics)
            live.next_step()
            tqdm.write(_epoch_line(epoch + 1, params.epochs, stats, metrics))
    distributed.barrier(runtime)
    if live is not None:
        live.end()
        training_curves_png(live_dir, live_dir / "curves.png")
    if stats is None:
        raise TrainingError(
            f"nothing to train: {models_dir / 'last.pt'} already holds {fit.start} of "
            f"train.epochs={params.epochs} epochs; raise train.epochs to continue"
        )
    return {
        "epochs": params.epochs,
        "best_miou": finite_or_none(best),
        "last_loss": stats.loss,
        "best": str(models_dir / "best.pt"),
        "last": str(models_dir / "last.pt"),
    }


def _open_live(live_dir: Path, resume: bool, step: int):
    from dvclive import Live  # imported here: it is slow to import and only rank 0 needs it

    live = Live(str(live_dir), resume=resume, dvcyaml=None, save_dvc_exp=False)
    live.step = step
    return live


def _save_epoch(
    models_dir: Path,
    fit: _Fit,
    params: TrainParams,
    base: BaseParams,
    epoch: int,
    best: float,
    improved: bool,
    stats,
    metrics: dict | None,
) -> None:
    """Write last.pt every epoch and best.pt when validation mIoU improved (or, before any validation, too)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    record = {"train_loss": stats.loss, **(metrics or {})}
    common = (fit.model, params, base.names, base.palette, epoch, best, record)
    if improved or metrics is None and math.isnan(best):
        save_checkpoint(models_dir / "best.pt", *common)
    save_checkpoint(models_dir / "last.pt", *common, fit.optimizer, fit.scheduler)


def _epoch_line(epoch: int, epochs: int, stats, metrics: dict | None) -> str:
    line = (
        f"epoch {epoch}/{epochs}: loss {stats.loss:.4f} lr {stats.lr:.2e} {stats.seconds:.1f}s "
        f"(data wait {stats.data_wait:.0%})"
    )
    if metrics and metrics["mIoU"] is not None:
        line += f", val mIoU {metrics['mIoU']:.4f}"
    return line
