"""One epoch of training, one pass of validation, and the loss/optimiser/schedule they use.

Shapes legend: N batch; C classes; H, W crop size; logits (N, C, H, W); target (N, H, W) int64, 255 = ignore.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import TrainingError
from pipeline.core.params import TrainParams
from pipeline.dataset.metrics import confusion_matrix
from pipeline.model.distributed import Runtime, all_reduce_sum
from pipeline.model.predict import autocast, predictions

SCHEDULES = ("cosine", "onecycle")


class SegmentationLoss(nn.Module):
    """Cross-entropy (optionally class-weighted) + dice_weight × Dice, both ignoring 255; computed in fp32."""

    def __init__(self, dice_weight: float = 1.0, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.cross_entropy = nn.CrossEntropyLoss(weight=class_weights, ignore_index=IGNORE_INDEX)
        self.dice = smp.losses.DiceLoss(mode="multiclass", ignore_index=IGNORE_INDEX)
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = self.cross_entropy(logits, target)
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits, target)
        return loss


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Learning-rate multiplier at `step` of `total`, in closed form so a resumed run can change `total`.

    cosine: from 1 down to 0.01 along half a cosine. onecycle: from 1/25 up to 1 over the first 30 %
    of the steps, then down to 1/(25 * 10^4), both halves cosine (torch's OneCycleLR defaults for the
    learning rate; momentum is not cycled).
    """
    step = min(step, total)
    if schedule == "cosine":
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / total))
    warm = max(1, round(0.3 * total))
    if step < warm:
        return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * step / warm))
    low = 1 / (25 * 1e4)
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams, steps_per_epoch: int):
    """A per-batch schedule over the whole run (train.epochs × batches per epoch)."""
    if params.schedule not in SCHEDULES:
        raise TrainingError(f"unknown train.schedule {params.schedule!r}; valid: {', '.join(SCHEDULES)}")
    total = max(1, params.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(params.schedule, step, total))


@dataclasses.dataclass
class EpochStats:
    loss: float  # mean training loss over every process's batches
    lr: float  # learning rate at the end of the epoch
    seconds: float
    data_wait: float  # share of the epoch spent waiting for the next batch


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    runtime: Runtime,
    dtype: torch.dtype | None,
    channels_last: bool,
    description: str = "train",
) -> EpochStats:
    """One pass over `loader`, stepping the schedule per batch; the loss is averaged over processes."""
    model.train()
    device = runtime.device
    total = torch.zeros(2, dtype=torch.float64)  # loss sum, batch count
    waited, start = 0.0, time.perf_counter()
    batches = tqdm(loader, desc=description, unit="batch", leave=False, disable=not runtime.is_main)
    iterator = iter(batches)
    while True:
        tick = time.perf_counter()
        try:
            images, target = next(iterator)
        except StopIteration:
            break
        waited += time.perf_counter() - tick
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = target.to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(images)
        loss = loss_fn(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
        batches.set_postfix(loss=f"{loss.item():.4f}")
    total = all_reduce_sum(total, runtime)
    if total[1] == 0:
        raise TrainingError("the training loader yielded no batch; lower train.batch_size or add training tasks")
    seconds = time.perf_counter() - start
    return EpochStats(float(total[0] / total[1]), optimizer.param_groups[0]["lr"], seconds, waited / max(seconds, 1e-9))


def validation_confusion(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    runtime: Runtime,
    dtype: torch.dtype | None,
    channels_last: bool,
) -> np.ndarray:
    """(C, C) confusion matrix of this process's validation shard, summed over processes."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    for p in predictions(model, loader, runtime.device, dtype, channels_last):
        cm += confusion_matrix(p.truth, p.pred, num_classes)
    return all_reduce_sum(torch.from_numpy(cm), runtime).numpy()
