"""Paired image/mask transforms (torchvision v2), scaling to the model's size and padding to its stride.

Masks travel as `tv_tensors.Mask`, so every geometric op resizes them NEAREST and pads them
with the ignore value: a label is never interpolated into a class that was not there.

Shapes legend:
    H, W   image height and width;  C  classes
    image  (3, H, W) uint8 before `normalize`, float32 after;  mask (H, W) int64, 255 = ignore
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as nnf
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2 import query_size

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import TrainingError

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: the pretrained encoders expect them
STD = (0.229, 0.224, 0.225)
MEAN_PIXEL = tuple(round(255 * m) for m in MEAN)  # pad value that normalises to about 0


def scaled_size(height: int, width: int, short_side: float | None) -> tuple[int, int]:
    """(H, W) resized so the shorter side is `short_side`; unchanged when it is None."""
    if short_side is None:
        return height, width
    ratio = short_side / min(height, width)
    return max(1, round(height * ratio)), max(1, round(width * ratio))


def padded_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """The smallest (H', W') >= (H, W) that are multiples of `stride`."""
    return -(-height // stride) * stride, -(-width // stride) * stride


def pad_to_stride(tensor: torch.Tensor, stride: int, value: float) -> torch.Tensor:
    """Pad the last two dims at the bottom/right up to multiples of `stride` with `value`."""
    height, width = tensor.shape[-2:]
    target_h, target_w = padded_size(height, width, stride)
    if (target_h, target_w) == (height, width):
        return tensor
    return nnf.pad(tensor, (0, target_w - width, 0, target_h - height), value=value)


class RandomScale(v2.Transform):
    """Resize so the shorter side is base_size × U(scale_range) (native size × U(...) without base)."""

    def __init__(self, base_size: int | None, scale_range: tuple[float, float]):
        super().__init__()
        self.base_size = base_size
        self.scale_range = scale_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = query_size(flat_inputs)
        low, high = self.scale_range
        factor = low + float(torch.rand(())) * (high - low)
        short = (self.base_size or min(height, width)) * factor
        return {"size": list(scaled_size(height, width, short))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # The functional dispatches on the input's type: masks get NEAREST whatever is asked here.
        # Only images and masks reach transform() (v2 passes other inputs through untouched).
        return F.resize(inpt, size=params["size"], antialias=True)


def check_geometry(crop_size: int, scale_range: tuple[float, ...], stride: int) -> None:
    if crop_size % stride:
        low = crop_size // stride * stride
        raise TrainingError(
            f"train.crop_size {crop_size} is not a multiple of {stride}; use {low or stride} or {low + stride}"
        )
    if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
        raise TrainingError(f"train.scale_range must be [low, high] with 0 < low <= high, got {list(scale_range)}")


def train_transform(
    base_size: int | None, crop_size: int, scale_range: tuple[float, float], hflip: bool, color_jitter: float
) -> v2.Compose:
    """Random scale, crop (padded with the mean colour / 255), flip, colour jitter, normalise."""
    steps: list[v2.Transform] = [
        RandomScale(base_size, tuple(scale_range)),
        v2.RandomCrop(
            crop_size, pad_if_needed=True, fill={tv_tensors.Image: MEAN_PIXEL, tv_tensors.Mask: IGNORE_INDEX}
        ),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


def normalize(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, H, W) float32, ImageNet-normalised."""
    return F.normalize(image.to(torch.float32) / 255.0, MEAN, STD)


def eval_image(image: torch.Tensor, base_size: int | None) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, h, w) float32: shorter side to base_size, normalised, not padded."""
    height, width = image.shape[-2:]
    size = scaled_size(height, width, base_size)
    if size != (height, width):
        image = F.resize(image, list(size), antialias=True)
    return normalize(image)
