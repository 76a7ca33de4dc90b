"""Paired transforms: labels never interpolated, padding to the stride, evaluation scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from pipeline.core.errors import TrainingError
from pipeline.model.transforms import (
    MEAN_PIXEL,
    check_geometry,
    eval_image,
    pad_to_stride,
    padded_size,
    scaled_size,
    train_transform,
)


@pytest.mark.parametrize("seed", range(6))
def test_augmentations_never_interpolate_masks(seed):
    rng = np.random.default_rng(seed)
    values = np.array([0, 3, 7], np.uint8)
    label = values[rng.integers(0, 3, (41, 57))]
    image = tv_tensors.Image(torch.from_numpy(rng.integers(0, 256, (3, 41, 57), dtype=np.uint8)))
    transform = train_transform(48, 64, (0.3, 2.5), hflip=True, color_jitter=0.3)
    torch.manual_seed(seed)
    for _ in range(5):
        out_image, out_mask = transform(image, tv_tensors.Mask(torch.from_numpy(label)))
        assert out_image.shape == (3, 64, 64) and out_image.dtype == torch.float32
        assert out_mask.shape == (64, 64)
        assert set(out_mask.unique().tolist()) <= {0, 3, 7, 255}


def test_small_images_are_padded_with_ignore():
    transform = train_transform(None, 64, (1.0, 1.0), hflip=False, color_jitter=0.0)
    image = tv_tensors.Image(torch.zeros(3, 20, 30, dtype=torch.uint8))
    _, mask = transform(image, tv_tensors.Mask(torch.ones(20, 30, dtype=torch.uint8)))
    assert (mask == 1).sum() == 20 * 30 and (mask == 255).sum() == 64 * 64 - 20 * 30


def test_pad_to_stride():
    assert padded_size(37, 64, 32) == (64, 64)
    tensor = torch.ones(1, 37, 65)
    padded = pad_to_stride(tensor, 32, 255)
    assert padded.shape == (1, 64, 96)
    assert torch.equal(padded[:, :37, :65], tensor)
    assert (padded[:, 37:] == 255).all() and (padded[:, :, 65:] == 255).all()
    assert pad_to_stride(torch.ones(1, 64, 32), 32, 0).shape == (1, 64, 32)


def test_crop_size_must_be_a_multiple_of_the_stride():
    with pytest.raises(TrainingError, match="use 224 or 256"):
        check_geometry(250, (0.5, 2.0), 32)
    with pytest.raises(TrainingError, match="scale_range"):
        check_geometry(256, (2.0, 0.5), 32)


def test_eval_image_scales_shorter_side_and_normalises():
    assert scaled_size(360, 480, 180) == (180, 240)
    assert scaled_size(360, 480, None) == (360, 480)
    mean_colour = torch.tensor(MEAN_PIXEL, dtype=torch.uint8)[:, None, None].expand(3, 360, 480)
    out = eval_image(mean_colour, 180)
    assert out.shape == (3, 180, 240) and out.dtype == torch.float32
    assert out.abs().max() < 0.1  # the ImageNet mean colour normalises to about zero
