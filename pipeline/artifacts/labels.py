"""data/labels: the consensus of each task, written by merge.

<task_id>.png              (H, W) uint8 label map, 255 = ignore
confidence/<task_id>.png   (H, W) uint8 confidence of each pixel's label, round(255 p)
"""

from __future__ import annotations

from pathlib import Path

CONFIDENCE_DIR = "confidence"


def label_path(labels_dir: Path, task_id: int) -> Path:
    return Path(labels_dir) / f"{task_id}.png"


def confidence_path(labels_dir: Path, task_id: int) -> Path:
    return Path(labels_dir) / CONFIDENCE_DIR / f"{task_id}.png"
