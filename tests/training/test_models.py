"""Model building: architecture names, FCN-8s structure and shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.core.errors import TrainingError
from pipeline.model.models import STRIDE, FCN8s, architecture_names, bilinear_kernel, build_model
from pipeline.model.transforms import pad_to_stride


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(TrainingError) as caught:
        build_model("UNetX", "resnet18", None, 3)
    for name in ("Unet", "FPN", "DeepLabV3Plus", "FCN8s"):
        assert name in str(caught.value)


def test_unknown_encoder_suggests_close_names():
    with pytest.raises(TrainingError, match="resnet18"):
        build_model("Unet", "resnet19", None, 3)


@pytest.mark.parametrize("architecture", ["Unet", "FPN", "DeepLabV3Plus", "fcn8s"])
def test_architectures_by_name_give_full_size_logits(architecture):
    model = build_model(architecture, "resnet18", None, 4).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 4, 64, 96)
    assert "FCN8s" in architecture_names()


@pytest.mark.parametrize("size", [(37, 53), (65, 31), (64, 64)])
def test_fcn8s_output_matches_padded_input_for_odd_sizes(size):
    model = FCN8s("resnet18", 3).eval()
    image = pad_to_stride(torch.randn(2, 3, *size), STRIDE, 0.0)
    with torch.no_grad():
        logits = model(image)
    assert logits.shape == (2, 3, *image.shape[-2:])
    assert logits[..., : size[0], : size[1]].shape == (2, 3, *size)


def test_fcn8s_upsamples_with_learned_transposed_convolutions():
    model = FCN8s("resnet18", 5)
    ups = [model.up32to16, model.up16to8, model.up8to1]
    assert all(isinstance(up, nn.ConvTranspose2d) and up.weight.requires_grad for up in ups)
    assert [up.stride[0] for up in ups] == [2, 2, 8]  # strides 32 -> 16 -> 8 -> 1
    # the skip score layers read the encoder's stride-16 and stride-8 features
    channels = model.encoder.out_channels
    assert (model.score16.in_channels, model.score8.in_channels) == (channels[-2], channels[-3])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert {"up32to16.weight", "up16to8.weight", "up8to1.weight"} <= trainable


def test_transposed_convolutions_start_as_bilinear_upsampling():
    up = FCN8s("resnet18", 2).up8to1
    flat = torch.ones(1, 2, 4, 4)
    with torch.no_grad():
        out = up(flat)
    assert out.shape == (1, 2, 32, 32)
    assert torch.allclose(out[..., 8:-8, 8:-8], torch.ones(1, 2, 16, 16))  # constant stays constant inside
    assert torch.equal(bilinear_kernel(2, 4)[0, 1], torch.zeros(4, 4))  # no mixing between classes


def test_fcn8s_refuses_unpadded_input_and_suggests_size():
    with pytest.raises(TrainingError, match="64x96"):
        FCN8s("resnet18", 3)(torch.zeros(1, 3, 50, 70))
