"""Build a segmentation model from params: any smp architecture, or an FCN-8s on the same smp encoder.

Shapes legend:
    N      batch size
    C      number of classes
    H, W   input height and width, multiples of STRIDE (pad with `pipeline.model.data.pad_to_stride`)

Every model maps (N, 3, H, W) float images to (N, C, H, W) logits and has an `.encoder`
(an smp encoder) so that encoder weights load the same way for all of them.
"""

from __future__ import annotations

import difflib

import segmentation_models_pytorch as smp
import torch
from torch import nn

from pipeline.core.errors import TrainingError
from pipeline.model.weights import check_hub_reachable, is_hub_weights, load_encoder_weights

STRIDE = 32  # the encoders' output stride: inputs must be multiples of it
FCN_NAMES = ("fcn8s", "fcn-8s", "fcn_8s")


def architecture_names() -> list[str]:
    """Valid values of train.architecture."""
    return sorted(cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()) + ["FCN8s"]


def build_model(architecture: str, encoder: str, encoder_weights: str | None, num_classes: int) -> nn.Module:
    """A freshly initialised model with its encoder weights loaded (hub, local file or package)."""
    arch = architecture.lower()
    if arch not in smp.MODEL_ARCHITECTURES_MAPPING and arch not in FCN_NAMES:
        raise TrainingError(f"unknown architecture {architecture!r}; valid: {', '.join(architecture_names())}")
    _check_encoder(encoder)
    hub = is_hub_weights(encoder_weights)
    if hub:
        _check_hub(encoder, encoder_weights)
    try:
        if arch in FCN_NAMES:
            model = FCN8s(encoder, num_classes, encoder_weights=encoder_weights if hub else None)
        else:
            model = smp.create_model(
                arch, encoder_name=encoder, encoder_weights=encoder_weights if hub else None, classes=num_classes
            )
    except KeyError as error:  # smp's way to reject a weight set the encoder does not have
        raise TrainingError(f"{architecture}/{encoder}: {error.args[0]}") from None
    except OSError as error:  # hub download failed after the quick check (e.g. connection dropped)
        raise TrainingError(f"downloading {encoder} {encoder_weights} weights failed: {error}") from None
    if encoder_weights is not None and not hub:
        load_encoder_weights(model.encoder, encoder_weights)
    return model


def _check_encoder(encoder: str) -> None:
    names = smp.encoders.get_encoder_names()
    if encoder in names or encoder.startswith("tu-"):
        return
    close = difflib.get_close_matches(encoder, names, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise TrainingError(
        f"unknown encoder {encoder!r}; {hint}valid: smp's encoders "
        "(segmentation_models_pytorch.encoders.get_encoder_names()) or tu-<timm model name>"
    )


def _check_hub(encoder: str, weights: str) -> None:
    """Fail fast offline; hub errors otherwise surface only after about 20 s of retries."""
    if encoder.startswith("tu-"):
        check_hub_reachable()
        return
    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if weights not in settings:
        raise TrainingError(
            f"encoder {encoder} has no {weights!r} weights; valid: {', '.join(settings) or 'none'}, "
            "a local .pth, a package:<dist>, or null"
        )
    check_hub_reachable(settings[weights]["repo_id"], settings[weights]["revision"])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """(channels, channels, k, k) weight making a ConvTranspose2d a per-channel bilinear upsampler."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    grid = torch.arange(kernel_size, dtype=torch.float32)
    line = 1 - (grid - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = line[:, None] * line[None, :]
    return weight


def _upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Learned ×factor upsampling, started as bilinear; output size is exactly factor × input size."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


class FCN8s(nn.Module):
    """FCN-8s (Long, Shelhamer and Darrell 2015) on an smp encoder.

    Class scores at strides 32, 16 and 8 are fused coarse to fine: score32 is upsampled ×2 by a
    learned transposed convolution and added to score16; the sum is upsampled ×2 and added to
    score8; that sum is upsampled ×8 to the input size. Transposed convolutions start as bilinear
    interpolation and the stride-16/8 score layers start at zero, as in the paper, so training
    begins from the FCN-32s prediction. x: (N, 3, H, W), H, W multiples of 32 -> (N, C, H, W).
    """

    def __init__(
        self,
        encoder_name: str,
        classes: int,
        encoder_weights: str | None = None,
        head_channels: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.encoder = smp.encoders.get_encoder(encoder_name, in_channels=3, depth=5, weights=encoder_weights)
        channels = self.encoder.out_channels  # (3, c2, c4, c8, c16, c32)
        # fc6/fc7 of the paper, slimmed: a 3x3 conv block on the stride-32 features
        self.head = nn.Sequential(
            nn.Conv2d(channels[-1], head_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.score32 = nn.Conv2d(head_channels, classes, 1)
        self.score16 = nn.Conv2d(channels[-2], classes, 1)
        self.score8 = nn.Conv2d(channels[-3], classes, 1)
        for layer in (self.score16, self.score8):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.up32to16 = _upsampler(classes, 2)
        self.up16to8 = _upsampler(classes, 2)
        self.up8to1 = _upsampler(classes, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height % STRIDE or width % STRIDE:
            padded = (-(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE)
            raise TrainingError(
                f"FCN8s input {height}x{width} is not a multiple of {STRIDE}; pad it to "
                f"{padded[0]}x{padded[1]} (pipeline.model.data.pad_to_stride)"
            )
        features = self.encoder(x)
        fused = self.up32to16(self.score32(self.head(features[-1]))) + self.score16(features[-2])
        fused = self.up16to8(fused) + self.score8(features[-3])
        return self.up8to1(fused)
