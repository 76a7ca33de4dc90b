"""Each annotator's boundary offset measured against the image's own edges.

Two annotators whose boundaries disagree by 2 px say nothing, by their labels alone, about which
of them is off: that takes a third reliable one, and the others' errors often fall on the same
pixels. The image says it: a class boundary sits where the colour changes. For shifts s of an
annotator's map (rarer classes grown, s > 0, or shrunk, s < 0, by |s| px over commoner ones:
``boundary_offsets.regrow``, the operation that undoes an offset), the mean image-gradient
strength along the shifted map's class boundaries peaks where they sit on the image's edges.
Summed over the project, the peak's sub-pixel position is minus the annotator's offset: a brush
1 px too fat peaks at s = -1. Random boundary noise flattens the profile but does not move it.

An annotator whose profile has no clear peak inside the shifts (spammers, labels that follow no
edges, images without contrast) gets no image-based offset; the consensus-based estimate
(``boundary_offsets``) is used for them instead.

Shapes: H, W image and label map; C classes; S shifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cv2
import numpy as np

from pipeline.dataset.boundary_offsets import regrow

SHIFTS = tuple(range(-4, 5))  # px; a peak at either end is not located
MIN_PROMINENCE = 1.15  # peak strength over the profile's median: below, the edges do not say
MIN_BOUNDARY = 2000  # boundary pixel pairs at shift 0 over the project, below: too little to measure

EdgeSums = dict[str, np.ndarray]  # annotator -> (S, 2) summed edge strength and boundary pairs


def image_edges(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 gradient magnitude of an (H, W, 3) uint8 RGB image, in CIELAB (Sobel 3x3):
    colour edges of equal brightness count too."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image_edges needs (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    squared = np.zeros(rgb.shape[:2], np.float32)
    for channel in cv2.split(lab):
        gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=3)
        squared += gx * gx + gy * gy
    return np.sqrt(squared)


def boundary_strength(label_map: np.ndarray, edges: np.ndarray, num_classes: int) -> tuple[float, int]:
    """(summed edge strength, pairs) over the 4-neighbour pixel pairs of differing labelled classes;
    a pair's strength is the mean of its two pixels' (the Sobel response straddles an edge)."""
    total, pairs = 0.0, 0
    for a, b, ea, eb in (
        (label_map[:, 1:], label_map[:, :-1], edges[:, 1:], edges[:, :-1]),
        (label_map[1:], label_map[:-1], edges[1:], edges[:-1]),
    ):
        at = (a != b) & (a < num_classes) & (b < num_classes)
        total += 0.5 * float(ea[at].sum() + eb[at].sum())
        pairs += int(np.count_nonzero(at))
    return total, pairs


def edge_profile(label_map: np.ndarray, edges: np.ndarray, num_classes: int) -> np.ndarray:
    """(S, 2) float64 (summed edge strength, boundary pairs) of ``label_map`` regrown by each of SHIFTS."""
    if label_map.shape != edges.shape:
        raise ValueError(f"label map {label_map.shape} and edge map {edges.shape} differ in size")
    return np.array([boundary_strength(regrow(label_map, s, num_classes), edges, num_classes) for s in SHIFTS])


def edge_sums(task: Mapping[str, np.ndarray], edges: np.ndarray, num_classes: int) -> EdgeSums:
    """{annotator: (S, 2) profile} of one image's maps ({annotator: (H, W) uint8})."""
    return {a: edge_profile(m, edges, num_classes) for a, m in task.items()}


def peak_offset(profile: np.ndarray) -> float | None:
    """The offset (px, rarer over commoner positive) a summed (S, 2) profile says, or None when it
    has no clear peak inside SHIFTS."""
    profile = np.asarray(profile, np.float64)
    centre = SHIFTS.index(0)
    if profile[centre, 1] < MIN_BOUNDARY or (profile[:, 1] <= 0).any():
        return None
    strength = profile[:, 0] / profile[:, 1]
    top = int(np.argmax(strength))
    if top in (0, len(SHIFTS) - 1) or strength[top] < MIN_PROMINENCE * float(np.median(strength)):
        return None
    left, mid, right = strength[top - 1 : top + 2]
    curvature = left - 2 * mid + right
    step = 0.5 * (left - right) / curvature if curvature < 0 else 0.0  # the parabola's vertex
    return -(SHIFTS[top] + float(np.clip(step, -0.5, 0.5)))


def image_offsets(per_task: Iterable[EdgeSums]) -> dict[str, float]:
    """{annotator: offset px} over the project, for the annotators whose summed profile peaks clearly."""
    summed: dict[str, np.ndarray] = {}
    for sums in per_task:
        for a, profile in sums.items():
            summed[a] = summed.get(a, 0) + np.asarray(profile, np.float64)
    offsets = {a: peak_offset(p) for a, p in sorted(summed.items())}
    return {a: r for a, r in offsets.items() if r is not None}
