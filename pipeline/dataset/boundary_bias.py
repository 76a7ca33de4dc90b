"""How far, and to which side, an annotator's boundaries lie from the consensus boundaries.

For each class k and each boundary pixel p of an annotator's class-k region (p labelled k, a
4-neighbour labelled another class), the signed offset of their boundary from the consensus
boundary of class k is

    + d   p lies outside the consensus k region, d px from it (they paint k larger: dilation)
    - d   p lies inside it and their boundary is d px short of the consensus one (erosion)
      0   their boundary is the consensus boundary

(Euclidean distances of pixel centres; a boundary pixel on the consensus boundary reads 0.)
Pixels more than ``max_offset`` px from the consensus boundary are not counted: they belong to
regions the consensus does not have (a missed or invented object), not to a shifted boundary.

Shapes: H, W label maps; C classes. Pure functions on arrays.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_OFFSET = 10.0


def _boundary_pixels(label_map: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) bool: labelled pixels with a 4-neighbour holding another class (not unlabelled)."""
    m = label_map
    out = np.zeros(m.shape, bool)
    labelled = m < num_classes
    for a, b, sa, sb in (
        (m[:, 1:], m[:, :-1], np.s_[:, 1:], np.s_[:, :-1]),
        (m[1:, :], m[:-1, :], np.s_[1:, :], np.s_[:-1, :]),
    ):
        differ = (a != b) & labelled[sa] & labelled[sb]
        out[sa] |= differ
        out[sb] |= differ
    return out


def boundary_offsets(
    label_maps: list[np.ndarray], consensus: np.ndarray, num_classes: int, max_offset: float = MAX_OFFSET
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per label map: (C,) sum of signed offsets, (C,) sum of their absolute values, (C,) pixel counts.

    label_maps: annotators' (H, W) uint8 maps; consensus (H, W) uint8; 255 (or any value >= C) =
    not labelled / undecided. Boundary pixels where the consensus is undecided are skipped. The
    consensus distances of a class are computed once for all maps, inside the bounding box of
    that class's boundary pixels padded by ``max_offset`` (exact there for every counted pixel).
    """
    c = num_classes
    height, width = consensus.shape
    decided = consensus < c
    # Flat positions and labels of each map's boundary pixels, found once: the class loop below
    # then touches only those pixels and its boxes, not whole maps.
    positions = [np.flatnonzero(_boundary_pixels(m, c) & decided) for m in label_maps]
    labels = [m.ravel()[at] for m, at in zip(label_maps, positions)]
    out = [(np.zeros(c), np.zeros(c), np.zeros(c, np.int64)) for _ in label_maps]
    pad = int(np.ceil(max_offset)) + 1
    for k in np.unique(np.concatenate(labels)):
        mine = [at[label == k] for at, label in zip(positions, labels)]
        every = np.concatenate(mine)
        rows, cols = every // width, every % width
        top, left = max(int(rows.min()) - pad, 0), max(int(cols.min()) - pad, 0)
        bottom, right = min(int(rows.max()) + pad + 1, height), min(int(cols.max()) + pad + 1, width)
        inside = (consensus[top:bottom, left:right] == k).astype(np.uint8)
        if not inside.any():
            continue
        outside_distance = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5).ravel()  # to the nearest k pixel
        inside_distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5).ravel()  # to the nearest non-k pixel
        for (signed, unsigned, counts), at in zip(out, mine):
            local = (at // width - top) * (right - left) + (at % width - left)  # flat index in the box
            offset = np.where(inside.ravel()[local] == 1, 1.0 - inside_distance[local], outside_distance[local])
            offset = offset[np.abs(offset) <= max_offset]
            signed[k], unsigned[k], counts[k] = offset.sum(), np.abs(offset).sum(), offset.size
    return out
