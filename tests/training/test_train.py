"""The train stage end to end on a tiny dataset: loss falls, runs repeat, checkpoints round-trip and resume."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
import torch

from pipeline.core.errors import TrainingError
from pipeline.core.params import TrainParams, with_overrides
from pipeline.model.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from pipeline.model.loop import lr_factor
from pipeline.stages import train
from tests.training.synthetic import CLASSES, Layout, base_params, tiny_params


def _run(dataset: Layout, out: Path, **changes) -> dict:
    return train.run(
        dataset.raw,
        dataset.annotations,
        dataset.labels,
        dataset.splits,
        out / "models",
        out / "live",
        base_params(),
        tiny_params(**changes),
    )


def _losses(live: Path) -> list[float]:
    with open(live / "plots/metrics/train/loss.tsv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle, delimiter="\t")]


def test_tiny_unet_trains_end_to_end_and_its_loss_falls(dataset, tmp_path):
    summary = _run(dataset, tmp_path, epochs=4)
    losses = _losses(tmp_path / "live")
    assert len(losses) == 4 and losses[-1] < 0.75 * losses[0]
    best = load_checkpoint(tmp_path / "models/best.pt")
    assert best["classes"] == list(CLASSES) and best["params"]["architecture"] == "Unet"
    assert "optimizer" not in best and "optimizer" in load_checkpoint(tmp_path / "models/last.pt")
    metrics = json.loads((tmp_path / "live/metrics.json").read_text())
    assert set(metrics["val"]["iou"]) == set(CLASSES) and metrics["train"]["lr"] > 0
    assert summary["best_miou"] == pytest.approx(best["best_score"])
    for name in ("val/mIoU.tsv", "val/iou/box.tsv", "train/lr.tsv"):
        assert (tmp_path / "live/plots/metrics" / name).is_file()


def test_same_seed_same_losses_on_cpu(dataset, tmp_path):
    # Two DataLoader workers: augmentation randomness must come from the seed, not from process timing.
    changes = dict(epochs=2, workers=2, architecture="FPN", schedule="onecycle", class_weights="median_frequency")
    _run(dataset, tmp_path / "a", **changes)
    _run(dataset, tmp_path / "b", **changes)
    assert _losses(tmp_path / "a/live") == _losses(tmp_path / "b/live")


def test_checkpoint_round_trip_gives_the_same_outputs(tmp_path):
    params = tiny_params(architecture="FCN8s")
    from pipeline.model.models import build_model

    model = build_model(params.architecture, params.encoder, None, 3).eval()
    base = base_params()
    save_checkpoint(tmp_path / "m.pt", model, params, base.names, base.palette, 5, 0.5, {"mIoU": 0.5})
    state = load_checkpoint(tmp_path / "m.pt")
    loaded = model_from_checkpoint(state)
    image = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(image), loaded(image))
    assert (state["epoch"], state["classes"]) == (5, list(CLASSES))
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary file, renamed


def test_resume_continues_the_epoch_count(dataset, tmp_path):
    _run(dataset, tmp_path, epochs=2)
    assert load_checkpoint(tmp_path / "models/last.pt")["epoch"] == 2
    train.run(
        dataset.raw,
        dataset.annotations,
        dataset.labels,
        dataset.splits,
        tmp_path / "models",
        tmp_path / "live",
        base_params(),
        tiny_params(epochs=3),
        resume=True,
    )
    last = load_checkpoint(tmp_path / "models/last.pt")
    assert last["epoch"] == 3 and last["scheduler"]["last_epoch"] == 3 * 2  # 8 images, batches of 4
    assert len(_losses(tmp_path / "live")) == 3
    with open(tmp_path / "live/plots/metrics/train/lr.tsv") as handle:
        lrs = [float(row["lr"]) for row in csv.DictReader(handle, delimiter="\t")]
    assert lrs[-1] == pytest.approx(0.01 * 3e-3)  # the schedule stretched to the new horizon and ended
    with pytest.raises(TrainingError, match="architecture"):
        train.run(
            dataset.raw,
            dataset.annotations,
            dataset.labels,
            dataset.splits,
            tmp_path / "models",
            tmp_path / "live",
            base_params(),
            tiny_params(epochs=4, architecture="FPN"),
            resume=True,
        )


def test_imagenet_offline_fails_fast_in_the_stage(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    with pytest.raises(TrainingError, match="local state dict"):
        _run(dataset, tmp_path, encoder_weights="imagenet")
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "models").exists()


def test_bad_params_are_refused_with_the_fix(dataset, tmp_path):
    with pytest.raises(TrainingError, match="multiple of 32"):
        _run(dataset, tmp_path, crop_size=60)
    with pytest.raises(TrainingError, match="median_frequency or 3 numbers"):
        _run(dataset, tmp_path, class_weights=(1.0, 2.0))
    with pytest.raises(TrainingError, match="cosine, onecycle"):
        _run(dataset, tmp_path, schedule="step")
    with pytest.raises(TrainingError, match="val_every must be >= 1"):
        _run(dataset, tmp_path, val_every=0)
    with pytest.raises(TrainingError, match="bf16, fp32"):
        _run(dataset, tmp_path, precision="fp16")
    with pytest.raises(TrainingError, match=r"min_label_confidence must lie in \[0, 1\]"):
        _run(dataset, tmp_path, min_label_confidence=1.5)


def test_schedules_in_closed_form():
    assert lr_factor("cosine", 0, 100) == 1.0 and lr_factor("cosine", 100, 100) == pytest.approx(0.01)
    onecycle = [lr_factor("onecycle", step, 100) for step in range(101)]
    assert onecycle[0] == pytest.approx(1 / 25) and max(onecycle) == onecycle[30] == 1.0
    assert onecycle[-1] < 1e-5


def test_override_parses_yaml_values():
    params = with_overrides(
        "train", TrainParams(), ["architecture=FCN8s", "epochs=2", "scale_range=[0.5, 1.0]", "encoder_weights=null"]
    )
    assert (params.architecture, params.epochs, params.scale_range, params.encoder_weights) == (
        "FCN8s",
        2,
        (0.5, 1.0),
        None,
    )


def test_compiled_in_place_model_saves_plain_weights(tmp_path):
    from pipeline.model.models import build_model

    params = tiny_params(compile=True)
    model = build_model(params.architecture, params.encoder, None, len(CLASSES))
    model.compile()  # what train does for train.compile: true (compilation itself waits for the first call)
    base = base_params()
    save_checkpoint(tmp_path / "m.pt", model, params, base.names, base.palette, 1, 0.5, {})
    state = load_checkpoint(tmp_path / "m.pt")
    assert not [key for key in state["model"] if "_orig_mod" in key]
    model_from_checkpoint(state)  # strict load into a fresh, uncompiled model
