"""Checkpoint -> Label Studio prediction records: the one owner for the batch path and the live path.

`preannotate` (batch) and the ML backend (live) both load a checkpoint with `load_predictor` and
turn image files into records with `predict_files`, so a task predicted by either path carries
the same brush regions, the same `model_version` and the same score.

Shapes: H, W = image height and width at full resolution.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from pipeline.core.errors import TrainingError
from pipeline.labelstudio.predictions import prediction_record
from pipeline.model.checkpoint import checkpoint_params, load_checkpoint, model_from_checkpoint, model_version
from pipeline.model.data import collate_eval, read_image
from pipeline.model.distributed import resolve_device, set_cpu_threads
from pipeline.model.predict import amp_dtype, predict_batch
from pipeline.model.transforms import eval_image


class ImageFiles(Dataset):
    """Image files at evaluation scale: item -> ((3, h, w), (H, W) placeholder, index)."""

    def __init__(self, paths: Sequence[Path], base_size: int | None):
        self.paths, self.base_size = list(paths), base_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = read_image(self.paths[i])
        # predict_batch sizes its output like the label map; there is none here, so a blank one.
        blank = torch.full(image.shape[:2], 255, dtype=torch.uint8)
        return eval_image(torch.from_numpy(image).permute(2, 0, 1), self.base_size), blank, i


@dataclass(frozen=True)
class FileStamp:
    """What identifies a checkpoint file on disk without reading it (an atomic rename changes the inode)."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        stat = os.stat(path)
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Predictor:
    """A checkpoint loaded once: its network on a device, and the version its predictions carry."""

    checkpoint: Path
    stamp: FileStamp
    version: str
    classes: tuple[str, ...]
    model: nn.Module
    device: torch.device
    dtype: torch.dtype | None
    base_size: int | None


def load_predictor(
    checkpoint: Path, classes: Sequence[str], model_name: str | None = None, device: str = "auto", threads: int = 1
) -> Predictor:
    """Load `checkpoint`, check it predicts `classes` (empty: the checkpoint's own).

    The version is the model name + a hash of the file.
    """
    checkpoint = Path(checkpoint)
    try:
        stamp = FileStamp.of(checkpoint)  # before reading: a file replaced meanwhile is reloaded next time
    except FileNotFoundError:
        raise TrainingError(f"checkpoint {checkpoint} not found; run the train stage first") from None
    state = load_checkpoint(checkpoint)
    classes = list(classes) or state["classes"]  # empty: base.classes come from the label config
    if state["classes"] != classes:
        raise TrainingError(f"{checkpoint} predicts {state['classes']}, base.classes are {list(classes)}; train again")
    train_params = checkpoint_params(state)
    version = model_version(model_name or train_params.architecture.lower(), checkpoint)
    target = resolve_device(device)
    set_cpu_threads(threads, target)
    return Predictor(
        checkpoint,
        stamp,
        version,
        tuple(classes),
        model_from_checkpoint(state, target),
        target,
        amp_dtype(target, "auto"),
        train_params.base_size,
    )


def predict_files(
    predictor: Predictor,
    paths: Sequence[Path],
    task_ids: Sequence[int],
    from_name: str,
    to_name: str,
    batch_size: int = 4,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """One prediction record per image file, in order, forwarded `batch_size` images at a time."""
    if len(paths) != len(task_ids):
        raise TrainingError(f"{len(paths)} images for {len(task_ids)} tasks; give one image per task")
    loader = DataLoader(
        ImageFiles(paths, predictor.base_size),
        batch_size=max(1, batch_size),
        collate_fn=collate_eval,
        pin_memory=predictor.device.type == "cuda",
    )
    records = []
    for batch in loader:
        for item in predict_batch(predictor.model, batch, predictor.device, predictor.dtype):
            records.append(
                prediction_record(
                    task_ids[item.index],
                    item.pred,
                    item.confidence,
                    list(predictor.classes),
                    predictor.version,
                    from_name,
                    to_name,
                )
            )
        if progress is not None:
            progress(len(batch.indices))
    return records
