"""Label maps on disk: single-channel uint8 PNG, class ids in params order, 255 = ignore."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import PipelineError

IGNORE_INDEX = 255
# Label maps are long runs of a few values: run-length deflate without row filters is half the
# encode and decode time of OpenCV's default (adaptive filters) and gives smaller files.
FLAT_PNG = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE)


def write_label_map(path: Path, label_map: np.ndarray) -> None:
    """Save a (H, W) uint8 label map as a lossless grayscale PNG."""
    if label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise PipelineError(f"a label map is (H, W) uint8, got shape {label_map.shape} dtype {label_map.dtype}")
    ok, encoded = cv2.imencode(".png", label_map, FLAT_PNG)
    if not ok:
        raise PipelineError(f"could not encode label map for {path}")
    Path(path).write_bytes(encoded.tobytes())


def read_label_map(path: Path) -> np.ndarray:
    """Load a label map written by `write_label_map`: (H, W) uint8."""
    label_map = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label_map is None or label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise PipelineError(f"{path} is not a single-channel uint8 PNG label map")
    return label_map


def colorize(label_map: np.ndarray, palette: list[tuple[int, int, int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ignore pixels are white."""
    table = np.full((256, 3), 255, np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[label_map]
