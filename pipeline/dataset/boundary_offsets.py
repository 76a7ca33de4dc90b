"""One systematic boundary offset per annotator, estimated over a project and undone before the vote.

A brush that is too fat (or too thin) grows (shrinks) the objects an annotator paints over the
surrounding stuff: along a j|k boundary they drew, with j the rarer class of the image, their j
region reaches r px into what a reference (the confident consensus of the others) calls k.
Summed over the images and class pairs of the project,

    r = sum (A[rarer over commoner] - A[commoner over rarer]) / sum L

A[j over k]: pixels they label j where the reference says k, within ``REACH`` px of one of their
own k pixels (a boundary moved, not an object missed or invented); L: their own j|k boundary
length. Random boundary noise adds to both A terms and cancels. The offset is undone per image
by a grey erosion (r > 0) or dilation (r < 0) of the map's rarity rank (the map's own class pixel
counts) by a disk of radius |round(r)|; |r| within a dead zone is taken as 0 (the likeliest offset).

Shapes: H, W label maps; C classes. Deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.dataset.dawid_skene import BandedModels, dawid_skene_vote

REACH = 4  # px: disagreement farther than this from an own boundary is not a shift
MAX_RADIUS = 5
# Boundary length per 4-neighbour pair of differing pixels, averaged over boundary directions:
# a straight axis-aligned boundary has one pair per px, a diagonal one sqrt(2); pi / 4 on average.
LENGTH_PER_PAIR = np.pi / 4
MIN_ACCURACY = 0.6  # annotators modelled less accurate get no offset: their boundaries shift nobody's
CONFIDENCE = 0.8  # reference pixels less sure than this are not counted
DEAD_ZONE = 0.5

ShiftSums = dict[str, tuple[float, float]]  # annotator -> (signed area, boundary length)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _edge_pairs(m: np.ndarray, c: int) -> np.ndarray:
    """(C, C) counts: pixels labelled j with a 4-neighbour labelled k (j != k, both labelled)."""
    out = np.zeros(c * c, np.int64)
    for a, b in ((m[:, 1:], m[:, :-1]), (m[1:, :], m[:-1, :])):
        keep = (a != b) & (a < c) & (b < c)
        x, y = a[keep].astype(np.int64), b[keep].astype(np.int64)
        out += np.bincount(x * c + y, minlength=c * c) + np.bincount(y * c + x, minlength=c * c)
    return out.reshape(c, c)


def shift_counts(label_map: np.ndarray, reference: np.ndarray, num_classes: int, reach: int = REACH):
    """(C, C) A[j over k] and (C, C) boundary pairs L[j, k] of one map against a reference map."""
    c = num_classes
    over = np.zeros((c, c), np.int64)
    wrong = (label_map != reference) & (label_map < c) & (reference < c)
    if wrong.any():
        kernel = _disk(reach)
        for k in np.unique(reference[wrong]):
            near = cv2.dilate((label_map == k).view(np.uint8), kernel) > 0
            at = wrong & (reference == k) & near
            over[:, k] += np.bincount(label_map[at], minlength=c)[:c]
    return over, _edge_pairs(label_map, c)


def rarity_shift(label_map: np.ndarray, reference: np.ndarray, num_classes: int, reach: int = REACH):
    """(signed area, boundary px) of one map against a reference, rarer-over-commoner positive."""
    over, edges = shift_counts(label_map, reference, num_classes, reach)
    counts = np.bincount(label_map[label_map < num_classes], minlength=num_classes)[:num_classes]
    rarer = counts[:, None] < counts[None, :]  # [j, k]: j rarer than k in this map
    both = (counts[:, None] > 0) & (counts[None, :] > 0) & rarer
    length = LENGTH_PER_PAIR * (edges + edges.T) / 2.0
    return float(((over - over.T) * both).sum()), float((length * both).sum())


def regrow(label_map: np.ndarray, radius: int, num_classes: int) -> np.ndarray:
    """Rarer classes grown (radius > 0) or shrunk (radius < 0) by |radius| px over commoner ones."""
    if radius == 0:
        return label_map
    labelled = label_map < num_classes
    counts = np.bincount(label_map[labelled], minlength=num_classes)[:num_classes]
    present = np.flatnonzero(counts)
    if present.size < 2:
        return label_map
    order = present[np.argsort(-counts[present], kind="stable")]  # most common first
    shrink = radius < 0
    rank_of = np.full(256, 255 if shrink else 0, np.uint8)  # unlabelled: the last rank, never wins
    rank_of[order] = np.arange(1, order.size + 1, dtype=np.uint8)
    class_of = np.full(256, IGNORE_INDEX, np.uint8)
    class_of[rank_of[order]] = order
    op = cv2.erode if shrink else cv2.dilate
    out = class_of[op(rank_of[label_map], _disk(abs(int(radius))), borderType=cv2.BORDER_REPLICATE)]
    out[~labelled] = label_map[~labelled]
    return out


REFERENCES = ("image_edges", "consensus")


@dataclass(frozen=True)
class RarityOffsets:
    """Per annotator: raw signed offset (px, rarer over commoner), the applied correction radius
    and what the offset was measured against (one of REFERENCES; consensus when not given)."""

    raw: Mapping[str, float]
    radius: Mapping[str, int]
    reference: Mapping[str, str] = field(default_factory=dict)

    def correct(self, annotator: str, label_map: np.ndarray, num_classes: int) -> np.ndarray:
        return regrow(label_map, -self.radius.get(annotator, 0), num_classes)

    def to_dict(self) -> dict:
        return {
            a: {
                "offset_px": round(self.raw[a], 3),
                "correction_px": -self.radius.get(a, 0),
                "reference": self.reference.get(a, "consensus"),
            }
            for a in sorted(self.raw)
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> RarityOffsets:
        raw = {str(a): float(v["offset_px"]) for a, v in data.items()}
        reference = {str(a): str(v.get("reference", "consensus")) for a, v in data.items()}
        if not set(reference.values()) <= set(REFERENCES):
            raise ValueError(f"boundary offset reference must be one of {REFERENCES}, got {sorted(reference.values())}")
        return cls(raw, {str(a): -int(v["correction_px"]) for a, v in data.items()}, reference)


def shift_sums(
    task: Mapping[str, np.ndarray],
    num_classes: int,
    models: BandedModels,
    *,
    confidence: float = CONFIDENCE,
    min_accuracy: float = MIN_ACCURACY,
) -> ShiftSums:
    """{annotator: (signed area, boundary length)} of one image, each against the others' consensus.

    The reference is the leave-one-out Dawid-Skene consensus where it is at least ``confidence``
    sure and at least one other annotator modelled reliable labelled the pixel."""
    out: ShiftSums = {}
    if len(task) < 2:
        return out
    accuracy = models.accuracy()
    for a, m in task.items():
        others = {b: x for b, x in task.items() if b != a}
        labels, sure = dawid_skene_vote(others, models)
        seen = np.zeros(m.shape, bool)
        for b, x in others.items():
            if accuracy.get(b, 1.0) >= min_accuracy:
                seen |= x < num_classes
        reference = np.where(seen & (sure >= confidence), labels, IGNORE_INDEX).astype(np.uint8)
        out[a] = rarity_shift(m, reference, num_classes)
    return out


def rarity_offsets(
    per_task: Iterable[ShiftSums],
    models: BandedModels,
    current: RarityOffsets | None = None,
    *,
    min_accuracy: float = MIN_ACCURACY,
    max_radius: int = MAX_RADIUS,
    dead_zone: float = DEAD_ZONE,
    measured: Mapping[str, float] | None = None,
) -> RarityOffsets:
    """Each annotator's r over the project: the residual summed from ``per_task`` (measured on maps
    corrected by ``current``) plus the radius ``current`` applied.

    |r| < ``dead_zone`` + 0.5 rounds to no correction (the prior that offset 0 is likeliest).
    ``measured``: {annotator: r} measured against the image's edges (pipeline.dataset.edge_offsets);
    these are kept as they are and rounded to the nearest px, whatever their modelled accuracy."""
    area: dict[str, float] = {}
    length: dict[str, float] = {}
    for sums in per_task:
        for a, (s, n) in sums.items():
            area[a] = area.get(a, 0.0) + s
            length[a] = length.get(a, 0.0) + n
    accuracy = models.accuracy()
    raw, radius = {}, {}
    for a in sorted(area):
        if accuracy.get(a, 1.0) < min_accuracy:
            continue
        r = area[a] / max(length[a], 1.0) + (current.radius.get(a, 0) if current else 0)
        raw[a] = r
        radius[a] = _rounded(r, dead_zone, max_radius)
    measured = dict(measured or {})
    for a, r in measured.items():
        raw[a], radius[a] = r, _rounded(r, 0.0, max_radius)
    return RarityOffsets(raw, radius, {a: "image_edges" if a in measured else "consensus" for a in raw})


def _rounded(offset: float, dead_zone: float, max_radius: int) -> int:
    magnitude = max(abs(offset) - dead_zone, 0.0)
    return int(np.sign(offset) * min(np.floor(magnitude + 0.5), max_radius))
