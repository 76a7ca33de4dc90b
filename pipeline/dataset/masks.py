"""Label maps on disk: single-channel uint8 PNG, class ids in params order, 255 = ignore."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.core.errors import PipelineError

# Label maps are long runs of a few values: run-length deflate without row filters is half the
# encode and decode time of OpenCV's default (adaptive filters) and gives smaller files.
FLAT_PNG = (
    cv2.IMWRITE_PNG_COMPRESSION,
    1,
    cv2.IMWRITE_PNG_STRATEGY,
    cv2.IMWRITE_PNG_STRATEGY_RLE,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_NONE,
)


def encode_label_map(label_map: np.ndarray) -> bytes:
    """A (H, W) uint8 label map as lossless grayscale PNG bytes (deterministic for equal input)."""
    if label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise PipelineError(f"a label map is (H, W) uint8, got shape {label_map.shape} dtype {label_map.dtype}")
    ok, encoded = cv2.imencode(".png", label_map, FLAT_PNG)
    if not ok:
        raise PipelineError(f"could not encode a {label_map.shape} label map as PNG")
    return encoded.tobytes()


def decode_label_map(content: bytes, name: str = "label map") -> np.ndarray:
    """(H, W) uint8 from PNG bytes written by `encode_label_map`; `name` goes into the error."""
    label_map = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) if content else None
    if label_map is None or label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise PipelineError(f"{name} is not a single-channel uint8 PNG label map")
    return label_map


def write_label_map(path: Path, label_map: np.ndarray) -> None:
    """Save a (H, W) uint8 label map as a lossless grayscale PNG."""
    Path(path).write_bytes(encode_label_map(label_map))


def read_label_map(path: Path) -> np.ndarray:
    """Load a label map written by `write_label_map`: (H, W) uint8."""
    try:
        content = Path(path).read_bytes()
    except OSError:
        content = b""
    return decode_label_map(content, str(path))


def colorize(label_map: np.ndarray, palette: list[tuple[int, int, int]]) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) uint8 RGB; ignore pixels are white."""
    table = np.full((256, 3), 255, np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[label_map]
