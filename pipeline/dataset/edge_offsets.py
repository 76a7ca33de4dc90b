"""Each annotator's boundary offset measured against the image's own edges.

Two annotators whose boundaries disagree by 2 px say nothing, by their labels alone, about which
of them is off: that takes a third reliable one, and the others' errors often fall on the same
pixels. The image says it: a class boundary sits where the colour changes. For shifts s of an
annotator's map (rarer classes grown, s > 0, or shrunk, s < 0, by |s| px over commoner ones:
``boundary_offsets.regrow``, the operation that undoes an offset), the mean image-gradient
strength along the shifted map's class boundaries peaks where they sit on the image's edges.
Summed over the project, the peak's sub-pixel position is minus the annotator's offset: a brush
1 px too fat peaks at s = -1. Random boundary noise flattens the profile but does not move it.

How sharp the peak stands over the image's mean gradient (under the pixels the annotator
labelled) says how closely their boundaries follow the edges at all: ``edge_fidelity``. A careful
annotator's stands high, a wobbly one's lower, a spammer's not at all; the final Dawid-Skene fit
starts from a vote weighted by it, so where two annotators' boundaries disagree and nobody else
is reliable, the one who follows the image is believed first.

An annotator whose profile has no clear peak inside the shifts (spammers, labels that follow no
edges, images without contrast) gets no image-based offset; the consensus-based estimate
(``boundary_offsets``) is used for them instead.

Shapes: H, W image and label map; C classes; S shifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.dataset.boundary_offsets import regrow

SHIFTS = tuple(range(-4, 5))  # px; a peak at either end is not located
MIN_PROMINENCE = 1.15  # peak strength over the profile's median: below, the edges do not say
MIN_BOUNDARY = 2000  # boundary pixel pairs at shift 0 over the project, below: too little to measure

# annotator -> (S + 1, 2): summed edge strength and boundary pairs per shift; last row, summed
# edge strength and count of the pixels they labelled
EdgeSums = dict[str, np.ndarray]


def image_edges(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 gradient magnitude of an (H, W, 3) uint8 RGB image, in 8-bit CIELAB (Sobel
    3x3): colour edges of equal brightness count too. Only ratios of it are used, so its scale
    does not matter."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"image_edges needs (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)  # uint8: three times faster than float, same edges
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
    """{annotator: (S + 1, 2) profile and baseline} of one image's maps ({annotator: (H, W) uint8})."""
    out = {}
    for a, m in task.items():
        labelled = m < num_classes
        baseline = (float(edges[labelled].sum()), float(np.count_nonzero(labelled)))
        out[a] = np.vstack([edge_profile(m, edges, num_classes), baseline])
    return out


def _strength(sums: np.ndarray) -> np.ndarray | None:
    """(S,) mean edge strength per shift of a summed (S + 1, 2) profile; None if too little boundary."""
    profile = np.asarray(sums, np.float64)[: len(SHIFTS)]
    if profile[SHIFTS.index(0), 1] < MIN_BOUNDARY or (profile[:, 1] <= 0).any():
        return None
    return profile[:, 0] / profile[:, 1]


def edge_fidelity(sums: np.ndarray) -> float | None:
    """Peak boundary edge strength over the mean strength under the labelled pixels, of a summed
    (S + 1, 2) profile: about 1 for boundaries that follow no edge; None if too little boundary."""
    strength = _strength(sums)
    total, count = np.asarray(sums, np.float64)[len(SHIFTS)]
    if strength is None or total <= 0:
        return None
    return float(strength.max() / (total / count))


def peak_offset(sums: np.ndarray) -> float | None:
    """The offset (px, rarer over commoner positive) a summed (S + 1, 2) profile says, or None when
    it has no clear peak inside SHIFTS."""
    strength = _strength(sums)
    if strength is None:
        return None
    top = int(np.argmax(strength))
    if top in (0, len(SHIFTS) - 1) or strength[top] < MIN_PROMINENCE * float(np.median(strength)):
        return None
    left, mid, right = strength[top - 1 : top + 2]
    curvature = left - 2 * mid + right
    step = 0.5 * (left - right) / curvature if curvature < 0 else 0.0  # the parabola's vertex
    return -(SHIFTS[top] + float(np.clip(step, -0.5, 0.5)))


@dataclass(frozen=True)
class EdgeEvidence:
    """What the images say of each annotator: offset (px) where their profile peaks clearly, and
    edge fidelity where they drew enough boundary."""

    offsets: Mapping[str, float]
    fidelity: Mapping[str, float]
    tasks: int = 0  # tasks whose image was measured

    def start_weights(self) -> dict[str, float]:
        """{annotator: weight of their vote in the first Dawid-Skene pass}: log fidelity, at least 0."""
        return {a: max(float(np.log(f)), 0.0) for a, f in self.fidelity.items()}


def edge_evidence(per_task: Iterable[EdgeSums]) -> EdgeEvidence:
    """Each annotator's offset and fidelity over the project, from every task's ``edge_sums``
    (empty for a task without a usable image)."""
    summed: dict[str, np.ndarray] = {}
    tasks = 0
    for sums in per_task:
        tasks += bool(sums)
        for a, profile in sums.items():
            summed[a] = summed.get(a, 0) + np.asarray(profile, np.float64)
    offsets = {a: peak_offset(p) for a, p in sorted(summed.items())}
    fidelity = {a: edge_fidelity(p) for a, p in sorted(summed.items())}
    return EdgeEvidence(
        {a: r for a, r in offsets.items() if r is not None},
        {a: f for a, f in fidelity.items() if f is not None},
        tasks,
    )
