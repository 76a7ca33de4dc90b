"""Label co-occurrence of several annotators on one image: the sufficient statistic of a per-pixel vote.

Any per-pixel merge (majority, weighted vote, Dawid-Skene) gives the same answer to two
pixels on which every annotator said the same thing. So an image with P pixels reduces to
its K distinct label combinations ("tuples") and their pixel counts, with K in the tens
where P is in the hundreds of thousands: annotator models are estimated over a whole
project from these small tables without reading a single label map again, and the
consensus map is a table lookup per pixel.

Shapes: A = annotators, P = pixels, K = distinct tuples, C = classes.
Labels 0..C-1 are classes; anything else (255 in practice) is "not labelled" and becomes
code C inside this module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import zstandard

from pipeline.core.errors import PipelineError

COMBINATIONS = "_combinations.zst"  # per task: each pixel's row in its co-occurrence table
# Key spaces up to this size are counted in a dense table (fast); larger ones fall back to np.unique.
MAX_DENSE_KEYS = 1 << 22
_ZSTD_CONTEXTS = threading.local()


@dataclass(frozen=True)
class LabelTuples:
    """annotators (A,) ids; codes (K, A) uint8 with C = unlabeled; counts (K,) int64 pixels."""

    annotators: tuple[str, ...]
    codes: np.ndarray
    counts: np.ndarray
    num_classes: int

    def to_dict(self) -> dict:
        return {"annotators": list(self.annotators), "codes": self.codes.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping, num_classes: int) -> LabelTuples:
        annotators = tuple(str(a) for a in data["annotators"])
        codes = np.asarray(data["codes"], np.uint8).reshape(-1, len(annotators))
        return cls(annotators, codes, np.asarray(data["counts"], np.int64), num_classes)


def _stack(maps: Mapping[str, np.ndarray]) -> tuple[tuple[str, ...], np.ndarray]:
    """Annotator ids in sorted order and their label maps flattened, (A, P) uint8."""
    if not maps:
        raise PipelineError("no label maps to combine; expected at least one (H, W) uint8 map")
    annotators = tuple(sorted(maps))
    shape = maps[annotators[0]].shape
    for annotator in annotators:
        label_map = maps[annotator]
        if label_map.dtype != np.uint8 or label_map.shape != shape:
            raise PipelineError(
                f"label maps must be (H, W) uint8 of one shape; {annotator} has {label_map.dtype} "
                f"{label_map.shape}, expected {shape}"
            )
    return annotators, np.stack([maps[a].ravel() for a in annotators])


def _row_dtype(num_rows: int) -> type:
    return np.uint8 if num_rows <= 256 else np.uint16 if num_rows <= 65536 else np.int64


def pixel_keys(maps: Mapping[str, np.ndarray], num_classes: int) -> tuple[LabelTuples, np.ndarray]:
    """The image's tuples and, per pixel, the index of its tuple: (LabelTuples, (P,) uint8, uint16 or int64).

    The per-pixel index takes the smallest type that holds it (uint8 for up to 256 tuples, the
    common case): the map is written to disk and painted through with a 256-entry table.
    """
    # Compiled kernels load numba (a tenth of a second) only where keys are counted: merge reads
    # them from validate's index maps and never needs it.
    from pipeline.dataset.cooccurrence_kernels import count_keys, rows_of_keys

    annotators, stacked = _stack(maps)
    base = num_classes + 1
    if base ** len(annotators) <= MAX_DENSE_KEYS:
        keys, histogram = count_keys(stacked, num_classes, base, base ** len(annotators))
        present = np.flatnonzero(histogram)
        index_of_key = np.zeros(len(histogram), np.int64)
        index_of_key[present] = np.arange(len(present))
        digits = (present[:, None] // base ** np.arange(len(annotators))[None, :]) % base
        rows = np.empty(len(keys), _row_dtype(len(present)))
        rows_of_keys(keys, index_of_key, rows)
        return LabelTuples(annotators, digits.astype(np.uint8), histogram[present], num_classes), rows
    codes = np.minimum(stacked, num_classes)  # anything not a class is code C, unlabelled
    unique, inverse, counts = np.unique(codes.T, axis=0, return_inverse=True, return_counts=True)
    rows = inverse.ravel().astype(_row_dtype(len(unique)))
    return LabelTuples(annotators, unique.astype(np.uint8), counts.astype(np.int64), num_classes), rows


def joint_rows(first: np.ndarray, second: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (first, second) row pairs of the pixels: (R,) keys first * width + second, (R,) pixel
    counts and (P,) each pixel's pair. first, second: (P,) rows; second < width."""
    key = first.astype(np.int64) * width + second
    if (int(first.max(initial=0)) + 1) * width <= MAX_DENSE_KEYS:  # a histogram: no sort
        histogram = np.bincount(key)
        present = np.flatnonzero(histogram)
        position = np.zeros(len(histogram), np.int64)
        position[present] = np.arange(len(present))
        return present, histogram[present], position[key]
    present, index, counts = np.unique(key, return_inverse=True, return_counts=True)
    return present, counts, index.ravel()


def label_tuples(maps: Mapping[str, np.ndarray], num_classes: int) -> LabelTuples:
    """The distinct label combinations of one image and their pixel counts."""
    return pixel_keys(maps, num_classes)[0]


def pair_confusion(tuples: LabelTuples, first: int, second: int) -> np.ndarray:
    """(C, C) pixel counts of annotator `first` (rows) against `second` (columns), both labelled."""
    c = tuples.num_classes
    a, b = tuples.codes[:, first].astype(np.int64), tuples.codes[:, second].astype(np.int64)
    both = (a < c) & (b < c)
    return (
        np.bincount(a[both] * c + b[both], weights=tuples.counts[both], minlength=c * c).reshape(c, c).astype(np.int64)
    )


def confusion_against(tuples: LabelTuples, consensus: np.ndarray, annotator: int) -> np.ndarray:
    """(C, C) counts: consensus label per tuple (K,) (rows) against one annotator's (columns)."""
    c = tuples.num_classes
    truth, given = consensus.astype(np.int64), tuples.codes[:, annotator].astype(np.int64)
    keep = (truth < c) & (given < c)
    return (
        np.bincount(truth[keep] * c + given[keep], weights=tuples.counts[keep], minlength=c * c)
        .reshape(c, c)
        .astype(np.int64)
    )


def paint(consensus: np.ndarray, tuple_index: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The (H, W) uint8 consensus map from a label per tuple (K,) and each pixel's tuple (P,)."""
    labels = consensus.astype(np.uint8)
    if tuple_index.dtype == np.uint8:  # a 256-entry table lookup: several times faster than indexing
        table = np.zeros(256, np.uint8)
        table[: len(labels)] = labels
        return cv2.LUT(tuple_index.reshape(shape), table)
    return labels[tuple_index].reshape(shape)


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    """This thread's zstd contexts: they are not thread-safe, and making one costs more than a map's worth of work."""
    if not hasattr(_ZSTD_CONTEXTS, "pair"):
        _ZSTD_CONTEXTS.pair = (zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor())
    return _ZSTD_CONTEXTS.pair


def write_index_map(path: Path, rows: np.ndarray) -> None:
    """Save (H, W) tuple indices, typed as `pixel_keys` types them, zstd-compressed.

    Not a PNG: the map is internal to validate and merge, and zstd writes and reads it several
    times faster than deflate, in fewer bytes. The file holds the bare array: its shape and
    type follow from the task's size and tuple count (see `read_index_map`).
    """
    path.write_bytes(encode_index_map(rows))


def encode_index_map(rows: np.ndarray) -> bytes:
    """(H, W) tuple indices as the zstd bytes `write_index_map` stores."""
    return _zstd()[0].compress(np.ascontiguousarray(rows).data)


def read_index_map(path: Path, shape: Sequence[int], num_tuples: int) -> np.ndarray:
    """The (H, W) tuple indices written by `write_index_map` for an image with `num_tuples` tuples."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise PipelineError(f"{path} is not a co-occurrence index map ({error}); run validate again") from None
    return decode_index_map(content, shape, num_tuples, str(path))


def decode_index_map(content: bytes, shape: Sequence[int], num_tuples: int, name: str = "index map") -> np.ndarray:
    """(H, W) tuple indices from `encode_index_map` bytes; `name` goes into the error."""
    dtype = np.dtype(_row_dtype(num_tuples))
    try:
        raw = _zstd()[1].decompress(content)
    except zstandard.ZstdError as error:
        raise PipelineError(f"{name} is not a co-occurrence index map ({error}); run validate again") from None
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise PipelineError(f"{name} holds {len(raw)} bytes, not a {shape} {dtype} index map; run validate again")
    return np.frombuffer(raw, dtype).reshape(shape)
