"""Bands of distance from label edges, and label combinations that carry them.

Annotators' errors cluster where boundaries are drawn. Two ways of tagging each label:

own edges   the band of its distance to the nearest edge of that annotator's own map: one who
            paints every region a few pixels too large is wrong only within those pixels of
            their own edges (``merge.edge_bands``)
zones       the pixel's boundary zone: the band of its distance to the nearest edge anyone drew,
            the same for every annotator of the pixel; with it the class prior is per zone too,
            since a pixel next to a boundary is far more often a small object's than one inside a
            region is (``merge.boundary_zones``)

Shapes: H, W label map; P = H * W pixels; A annotators; C classes; B bands; K distinct
combinations. A banded code is ``label * B + band`` for a class label, ``C * B`` for "not
labelled" (any value >= C); codes fit in uint8 while C * B < 255.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import cv2
import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.dataset.cooccurrence import LabelTuples, joint_rows, pixel_keys

DEFAULT_BANDS = (2, 4)  # band 0: 0-1 px from an own edge, band 1: 2-3 px, band 2: 4 px and more


def check_bands(thresholds: Sequence[int], num_classes: int) -> tuple[int, ...]:
    """Strictly increasing positive band edges (px) whose codes fit in uint8, as a tuple."""
    edges = tuple(int(t) for t in thresholds)
    if any(b <= a for a, b in pairwise(edges)) or any(t < 1 for t in edges):
        raise PipelineError(f"edge bands must be increasing whole pixels >= 1, e.g. [2, 4]; got {list(thresholds)}")
    if num_classes * (len(edges) + 1) >= IGNORE_INDEX:  # codes stay below the ignore value
        raise PipelineError(
            f"{num_classes} classes x {len(edges) + 1} bands do not fit a uint8 code; "
            "use fewer bands (merge.edge_bands) or merge.method: vote"
        )
    return edges


def edge_mask(label_map: np.ndarray) -> np.ndarray:
    """(H, W) uint8 1 where a 4-neighbour holds another value (both sides of an edge), else 0."""
    m = label_map
    edge = np.zeros(m.shape, np.uint8)
    across = m[:, 1:] != m[:, :-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = m[1:, :] != m[:-1, :]
    edge[1:, :] |= down
    edge[:-1, :] |= down
    return edge


def band_map(label_map: np.ndarray, thresholds: Sequence[int]) -> np.ndarray:
    """(H, W) uint8 band of each pixel: the number of thresholds t its edge distance reaches.

    Distance is chessboard distance to the nearest edge pixel (``edge_mask``): band 0 holds the
    pixels within t0 - 1 px of an edge, band len(thresholds) those at least t_last px away. A map
    without edges is all in the last band.
    """
    return _bands_of_edges(edge_mask(label_map), thresholds)


def zone_map(maps: Mapping[str, np.ndarray], thresholds: Sequence[int]) -> np.ndarray:
    """(H, W) uint8 boundary zone of each pixel: ``band_map`` of the edges of every map together,
    the band of its distance from the nearest edge anyone drew."""
    edges = [edge_mask(m) for m in maps.values()]
    return _bands_of_edges(np.bitwise_or.reduce(edges) if len(edges) > 1 else edges[0], thresholds)


def _bands_of_edges(edge: np.ndarray, thresholds: Sequence[int]) -> np.ndarray:
    band = np.full(edge.shape, len(thresholds), np.uint8)
    for t in thresholds:  # dilation by a (2t - 1) square marks the pixels closer than t
        near = cv2.dilate(edge, np.ones((2 * t - 1, 2 * t - 1), np.uint8))
        band -= near
    return band


def unbanded(tuples: LabelTuples, bands: int) -> LabelTuples:
    """The same combinations with class labels for codes (rows may repeat): codes // bands."""
    c = tuples.num_classes // bands
    return LabelTuples(tuples.annotators, (tuples.codes // bands).astype(np.uint8), tuples.counts, c)


def banded_tuples(
    maps: Mapping[str, np.ndarray],
    num_classes: int,
    thresholds: Sequence[int],
    plain: tuple[LabelTuples, np.ndarray] | None = None,
    zones: bool = False,
) -> tuple[LabelTuples, np.ndarray]:
    """The image's distinct banded-code combinations and each pixel's row: (LabelTuples, (P,) int).

    maps: {annotator: (H, W) uint8}. The returned LabelTuples has codes (K, A) in the banded
    alphabet (``num_classes`` = C * B, so "not labelled" is code C * B) and annotators sorted.
    ``plain``: the image's label-only combinations and pixel rows (``pixel_keys``), when known.
    ``zones``: every annotator's band is the pixel's boundary zone (``zone_map``), not their own.
    Two-level keys (label combination, band combination) keep the count dense and fast.
    """
    thresholds = check_bands(thresholds, num_classes)
    bands, annotators = len(thresholds) + 1, tuple(sorted(maps))
    tuples, rows = plain if plain is not None else pixel_keys(dict(maps), num_classes)
    if not thresholds:  # one band: the banded codes are the labels
        return tuples, rows
    if zones:
        band_key, width = zone_map(maps, thresholds).ravel(), bands
    else:
        band_key = np.zeros(rows.shape, np.int64)
        for a in reversed(annotators):  # annotator 0 is the lowest digit
            band_key = band_key * bands + band_map(maps[a], thresholds).ravel()
        width = bands ** len(annotators)
    present, counts, index = joint_rows(rows, band_key, width)
    label_rows, band_rows = present // width, present % width
    if zones:
        digits = np.repeat(band_rows[:, None], len(annotators), axis=1)
    else:
        digits = (band_rows[:, None] // bands ** np.arange(len(annotators))[None, :]) % bands
    labels = tuples.codes[label_rows].astype(np.int64)
    codes = np.where(labels < num_classes, labels * bands + digits, num_classes * bands)
    return LabelTuples(annotators, codes.astype(np.uint8), counts.astype(np.int64), num_classes * bands), index.ravel()
