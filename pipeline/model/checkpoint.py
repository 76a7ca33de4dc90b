"""Checkpoints: weights, the train params, the class list and the epoch count, written atomically.

A checkpoint is a plain dict saved with torch.save and read back with weights_only=True:
    format         CHECKPOINT_FORMAT
    model          the model's state dict (unwrapped from DDP)
    params         train params as a dict (architecture, encoder, base_size, ...)
    classes        class names in id order;  palette  their RGB colours
    epoch          epochs completed;  best_score  best validation mIoU so far (NaN if none)
    metrics        the validation metrics of that epoch
    optimizer, scheduler   their state dicts (last.pt only, for resuming)
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.core.atomic import replace_file
from pipeline.core.errors import TrainingError
from pipeline.core.params import TrainParams
from pipeline.model.models import build_model

CHECKPOINT_FORMAT = 1
# Params that change what the weights mean: a resumed run must agree on them.
ARCHITECTURE_KEYS = ("architecture", "encoder")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under a DistributedDataParallel wrapper.

    Training compiles with `nn.Module.compile()`, in place: its state dict keeps the plain keys,
    so no torch.compile wrapper (whose inner module is only reachable privately) is ever saved.
    """
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(
    path: Path,
    model: nn.Module,
    params: TrainParams,
    classes: list[str],
    palette: list[tuple[int, int, int]],
    epoch: int,
    best_score: float,
    metrics: dict,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> None:
    """Write the checkpoint to a temporary sibling, then rename it over `path`."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "params": dataclasses.asdict(params),
        "classes": list(classes),
        "palette": [list(c) for c in palette],
        "epoch": epoch,
        "best_score": float(best_score),
        "metrics": metrics,
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    with replace_file(Path(path), "wb") as handle:
        torch.save(state, handle)


def load_checkpoint(path: Path) -> dict:
    """The checkpoint dict, on CPU; refuses files that are not checkpoints of this pipeline."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(f"checkpoint {path} not found; run the train stage first") from None
    except Exception as error:  # unpickling errors come in several types
        raise TrainingError(f"{path} is not a readable checkpoint: {error}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a checkpoint written by this pipeline (format {CHECKPOINT_FORMAT})")
    return state


def checkpoint_params(state: dict) -> TrainParams:
    """The TrainParams a checkpoint was trained with (tuples restored)."""
    values = dict(state["params"])
    for key in ("scale_range", "class_weights"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return TrainParams(**values)


def model_from_checkpoint(state: dict, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the model (no weight download: the checkpoint holds every weight) in eval mode."""
    params = checkpoint_params(state)
    model = build_model(params.architecture, params.encoder, None, len(state["classes"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def check_resumable(state: dict, params: TrainParams, classes: list[str], path: Path) -> None:
    """A resumed run must train the same network on the same classes."""
    if state["classes"] != list(classes):
        raise TrainingError(
            f"{path} was trained on classes {state['classes']}, params have {list(classes)}; delete it to start afresh"
        )
    for key in ARCHITECTURE_KEYS:
        if state["params"][key] != getattr(params, key):
            raise TrainingError(
                f"{path} has train.{key}={state['params'][key]!r}, params have "
                f"{getattr(params, key)!r}; delete it to start afresh"
            )


def finite_or_none(value: float) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    return None if value is None or not math.isfinite(value) else float(value)


def model_version(name: str, checkpoint: Path) -> str:
    """A readable name plus the first 8 hex of the checkpoint's SHA-256: same file, same version."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{name}-{digest.hexdigest()[:8]}"
