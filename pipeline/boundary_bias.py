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
    for a, b, sa, sb in ((m[:, 1:], m[:, :-1], np.s_[:, 1:], np.s_[:, :-1]),
                         (m[1:, :], m[:-1, :], np.s_[1:, :], np.s_[:-1, :])):
        differ = (a != b) & labelled[sa] & labelled[sb]
        out[sa] |= differ
        out[sb] |= differ
    return out


def boundary_offsets(label_map: np.ndarray, consensus: np.ndarray, num_classes: int,
                     max_offset: float = MAX_OFFSET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: (C,) sum of signed offsets, (C,) sum of their absolute values, (C,) pixel counts.

    label_map, consensus: (H, W) uint8, 255 (or any value >= C) = not labelled / undecided.
    Boundary pixels where the consensus is undecided are skipped.
    """
    signed, unsigned, counts = np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes, np.int64)
    edge = _boundary_pixels(label_map, num_classes) & (consensus < num_classes)
    for k in np.unique(label_map[edge]):
        mine = edge & (label_map == k)
        inside = (consensus == k).astype(np.uint8)
        if not inside.any():
            continue
        outside_distance = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)  # to the nearest k pixel
        inside_distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)       # to the nearest non-k pixel
        offset = np.where(inside[mine] == 1, 1.0 - inside_distance[mine], outside_distance[mine])
        offset = offset[np.abs(offset) <= max_offset]
        signed[k], unsigned[k], counts[k] = offset.sum(), np.abs(offset).sum(), offset.size
    return signed, unsigned, counts
