"""Compiled per-pixel loops of `pipeline.dataset.cooccurrence.pixel_keys`.

Shapes: A = annotators, P = pixels. A pixel's key is its label combination written as a number
in base C + 1, annotator a being digit a.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def count_keys(maps: np.ndarray, num_classes: int, base: int, num_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Key (P,) int32 of each pixel's label combination (annotator a is digit a), and key counts.

    min(label, C) is the code (anything not a class is "unlabelled"); one annotator per pass and
    counting runs of equal keys rather than single pixels keep the loops branch-light and
    vectorisable: label maps are long runs.
    """
    annotators, num_pixels = maps.shape
    keys = np.empty(num_pixels, np.int32)
    for p in range(num_pixels):
        keys[p] = min(maps[annotators - 1, p], num_classes)
    for a in range(annotators - 2, -1, -1):
        for p in range(num_pixels):
            keys[p] = keys[p] * base + min(maps[a, p], num_classes)
    counts = np.zeros(num_keys, np.int64)
    if num_pixels == 0:
        return keys, counts
    run_key, run = keys[0], 0
    for p in range(num_pixels):
        if keys[p] == run_key:
            run += 1
        else:
            counts[run_key] += run
            run_key, run = keys[p], 1
    counts[run_key] += run
    return keys, counts


@numba.njit(cache=True, nogil=True)
def rows_of_keys(keys: np.ndarray, row_of_key: np.ndarray, rows: np.ndarray) -> None:
    """rows[p] = row_of_key[keys[p]], into the smallest integer type that holds every row."""
    for p in range(len(keys)):
        rows[p] = row_of_key[keys[p]]
