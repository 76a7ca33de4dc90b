"""A tiny labelled dataset on disk in the pipeline's layout, for training and evaluation tests.

Images are noisy backgrounds with a bright rectangle (class 1) and a dark disc (class 2), so a
small network learns them in a few epochs; a band of 255 (ignore) runs along the top.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.params import BaseParams, ClassInfo, TrainParams
from pipeline.dataset.masks import write_label_map

CLASSES = ("background", "box", "disc")


@dataclasses.dataclass(frozen=True)
class Layout:
    raw: Path
    annotations: Path
    labels: Path
    splits: Path
    models: Path
    live: Path
    reports: Path
    validation: Path

    def train_args(self) -> tuple[Path, ...]:
        return self.raw, self.annotations, self.labels, self.splits, self.models, self.live


def scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image and its (H, W) uint8 label map."""
    image = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
    label = np.zeros((height, width), np.uint8)
    y, x = rng.integers(4, height // 2), rng.integers(0, width // 2)
    h, w = rng.integers(height // 5, height // 2), rng.integers(width // 5, width // 2)
    image[y : y + h, x : x + w] = (230, 220, 40)
    label[y : y + h, x : x + w] = 1
    cy, cx, r = rng.integers(height // 2, height - 4), rng.integers(width // 3, width - 4), rng.integers(5, 12)
    cv2.circle(image, (int(cx), int(cy)), int(r), (20, 30, 200), -1)
    cv2.circle(label, (int(cx), int(cy)), int(r), 2, -1)
    label[:2] = 255
    return image, label


def make_dataset(
    root: Path,
    n: int = 8,
    size: tuple[int, int] = (64, 64),
    seed: int = 0,
    splits: dict[str, slice] | None = None,
    project_id: int | None = 7,
) -> Layout:
    """Write raw images, annotations/index.jsonl, labels, splits and validation.json under `root`."""
    root = Path(root)
    layout = Layout(
        root / "data/raw",
        root / "data/annotations",
        root / "data/labels",
        root / "data/splits",
        root / "models",
        root / "dvclive",
        root / "reports",
        root / "data/reports/validation.json",
    )
    for folder in (layout.raw / "images", layout.annotations, layout.labels, layout.splits, layout.validation.parent):
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [100 + i for i in range(n)]
    with open(layout.annotations / "index.jsonl", "w") as index:
        for task_id in ids:
            image, label = scene(rng, *size)
            cv2.imwrite(str(layout.raw / f"images/{task_id}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            write_label_map(layout.labels / f"{task_id}.png", label)
            entry = {
                "task_id": task_id,
                "image": f"images/{task_id}.png",
                "height": size[0],
                "width": size[1],
                "image_name": f"scene_{task_id}.png",
                "data": {},
                "maps": {},
            }
            index.write(json.dumps(entry) + "\n")
    splits = splits or {"train": slice(0, n), "val": slice(0, n), "test": slice(0, n)}
    for name, part in splits.items():
        (layout.splits / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids[part]))
    layout.validation.write_text(json.dumps({"tasks": [], "counts": {}, "project": {"id": project_id, "title": "t"}}))
    return layout


def base_params(seed: int = 0) -> BaseParams:
    colors = ((0, 0, 0), (230, 220, 40), (20, 30, 200))
    return BaseParams(seed, 255, tuple(ClassInfo(n, c) for n, c in zip(CLASSES, colors)))


def tiny_params(**changes) -> TrainParams:
    """A configuration that trains in seconds on CPU."""
    values = dict(
        architecture="Unet",
        encoder="resnet18",
        encoder_weights=None,
        epochs=3,
        batch_size=4,
        lr=3e-3,
        base_size=None,
        crop_size=64,
        scale_range=(0.75, 1.25),
        color_jitter=0.1,
        workers=0,
        device="cpu",
        precision="fp32",
        channels_last=False,
        class_weights=None,
    )
    values.update(changes)
    return TrainParams(**values)
