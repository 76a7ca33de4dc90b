"""Inference at evaluation scale, scored at full resolution: validation, evaluate and label hints share it.

Shapes legend:
    N   batch;  C  classes;  h, w  image size at base_size (padded to the stride in the batch)
    H, W  the original image and label size: logits are resized back to it before the argmax
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn
from torch.utils.data import DataLoader

from pipeline.core.errors import TrainingError
from pipeline.model.data import EvalBatch

PRECISIONS = ("auto", "bf16", "fp32")


def amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype: bf16 on a GPU that supports it for 'auto', None (fp32) otherwise."""
    if precision not in PRECISIONS:
        raise TrainingError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # CPU bf16 autocast is slower than fp32 on most CPUs


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


@dataclasses.dataclass
class Prediction:
    index: int  # position in the dataset
    pred: np.ndarray  # (H, W) uint8 class ids
    confidence: np.ndarray  # (H, W) float32 max softmax
    truth: np.ndarray  # (H, W) uint8 label map, 255 = ignore


@torch.no_grad()
def predict_batch(
    model: nn.Module,
    batch: EvalBatch,
    device: torch.device,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> list[Prediction]:
    """Forward a padded batch; crop each image's logits, resize them (bilinear) to its label size."""
    images = batch.images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(device, dtype):
        logits = model(images)
    out = []
    for k, ((h, w), truth) in enumerate(zip(batch.sizes, batch.truths)):
        one = logits[k : k + 1, :, :h, :w].float()
        if (h, w) != tuple(truth.shape):
            one = nnf.interpolate(one, size=tuple(truth.shape), mode="bilinear", align_corners=False)
        confidence, pred = one.softmax(dim=1)[0].max(dim=0)
        out.append(
            Prediction(batch.indices[k], pred.to(torch.uint8).cpu().numpy(), confidence.cpu().numpy(), truth.numpy())
        )
    return out


def predictions(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> Iterator[Prediction]:
    """Every image of an evaluation loader (collate_eval batches), in loader order, model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            yield from predict_batch(model, batch, device, dtype, channels_last)
    finally:
        model.train(was_training)
