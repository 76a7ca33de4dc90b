"""Per-annotator systematic boundary offsets, estimated over a project and undone before the vote.

An annotator who paints every region r px too large (or too small) shifts each boundary they
draw between two classes j and k by the same amount. For an ordered class pair (j, k) the
annotator's offset o[j, k] (px) is how far their j regions reach into what a reference (the
consensus of the others) calls k along the j|k boundaries they drew:

    o[j, k] = (A[j over k] - A[k over j]) / L[j, k]

A[j over k]: pixels they label j where the reference says k, within ``reach`` px of one of their
own k pixels (a boundary moved, not an object missed or invented); L[j, k]: pixels of their own
j|k boundary. Random boundary noise adds to both
A terms and cancels; o is antisymmetric. Boundary length is the count of differing 4-neighbour
pairs times pi / 4 (the mean over boundary directions). Summed over every image of the project.

Correction: for each pair with a rounded offset r = o[j, k] >= 1 (after shrinking towards 0 by
``prior`` boundary pixels of zero offset), the annotator's j pixels within r px of their own k
region become k. The corrected maps then go to the usual Dawid-Skene estimation and vote.

Shapes: H, W label maps; C classes. Deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.dataset.dawid_skene import BandedModels, dawid_skene_vote, estimate_models

REACH = 4  # px: disagreement farther than this from an own boundary is not a shift
MAX_RADIUS = 5
# Boundary length per 4-neighbour pair of differing pixels, averaged over boundary directions:
# a straight axis-aligned boundary has one pair per px, a diagonal one sqrt(2); pi / 4 on average.
LENGTH_PER_PAIR = np.pi / 4
MIN_ACCURACY = 0.6
CONFIDENCE = 0.8  # reference pixels less sure than this are not counted


def _confident(vote: tuple[np.ndarray, np.ndarray], confidence: float) -> np.ndarray:
    labels, sure = vote
    return np.where(sure >= confidence, labels, IGNORE_INDEX).astype(np.uint8)


def _references(task: Mapping[str, np.ndarray], models: BandedModels, leave_one_out: bool, confidence: float):
    """(annotator, their map, the confident consensus to measure it against) for one image.

    leave_one_out: the consensus of the others; else the consensus of all. Images with one map yield nothing.
    """
    if len(task) < 2:
        return
    full = None if leave_one_out else _confident(dawid_skene_vote(task, models), confidence)
    for a, m in task.items():
        others = {b: x for b, x in task.items() if b != a}
        yield a, m, _confident(dawid_skene_vote(others, models), confidence) if leave_one_out else full


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
    """(C, C) A[j over k] and (C, C) L[j, k] of one map against a reference map (see module doc)."""
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


@dataclass(frozen=True)
class Offsets:
    """Per annotator (C, C) rounded px: j pixels within r[j, k] px of their k region become k."""

    radii: Mapping[str, np.ndarray]
    raw: Mapping[str, np.ndarray]

    def of(self, annotator: str) -> np.ndarray | None:
        return self.radii.get(annotator)


def offsets_from_counts(over: np.ndarray, edges: np.ndarray, prior: float, max_radius: int = MAX_RADIUS):
    """(C, C) float offsets and (C, C) int radii from summed A (C, C) and L (C, C)."""
    length = LENGTH_PER_PAIR * (edges + edges.T) / 2.0
    raw = (over - over.T) / np.maximum(length + prior, 1.0)
    radii = np.clip(np.floor(raw + 0.5), 0, max_radius).astype(np.int64)
    np.fill_diagonal(radii, 0)
    return raw, radii


def _neighbourhood(radius: int) -> list[tuple[int, int, int]]:
    """(dy, dx, px) of a disk of ``radius`` (cv2's elliptic kernel: d^2 <= r^2 + r), nearest first."""
    out = []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            d2 = dy * dy + dx * dx
            if 0 < d2 <= radius * radius + radius:
                out.append((d2, dy, dx))
    return [(dy, dx, next(r for r in range(1, radius + 1) if d2 <= r * r + r)) for d2, dy, dx in sorted(out)]


def correct(label_map: np.ndarray, radii: np.ndarray | None, num_classes: int) -> np.ndarray:
    """The map with each j pixel within radii[j, k] px of the map's own k region relabelled k.

    Where several regions are in reach the nearest wins. Only pixels within the largest radius
    of an edge are looked at.
    """
    if radii is None or not radii.any():
        return label_map
    c, reach = num_classes, int(radii.max())
    table = np.zeros((256, 256), np.int64)  # radius of the flip (label, neighbour's label); 0 = none
    table[:c, :c] = radii
    h, w = label_map.shape
    padded = np.pad(label_map, reach, mode="edge")
    edge = np.zeros((h + 2 * reach, w + 2 * reach), np.uint8)
    edge[:, 1:] |= padded[:, 1:] != padded[:, :-1]
    edge[:, :-1] |= padded[:, 1:] != padded[:, :-1]
    edge[1:, :] |= padded[1:, :] != padded[:-1, :]
    edge[:-1, :] |= padded[1:, :] != padded[:-1, :]
    band = cv2.dilate(edge, _disk(reach))[reach : reach + h, reach : reach + w]
    rows, cols = np.nonzero(band)
    if not len(rows):
        return label_map
    flat = padded.ravel()
    stride = w + 2 * reach
    at = (rows + reach) * stride + cols + reach
    own = flat[at]
    result = own.copy()
    done = np.zeros(len(at), bool)
    for dy, dx, px in _neighbourhood(reach):
        other = flat[at + dy * stride + dx]
        hit = ~done & (table[own, other] >= px)
        result[hit] = other[hit]
        done |= hit
    out = label_map.copy()
    out[rows, cols] = result
    return out


def estimate_offsets(
    tasks: Sequence[Mapping[str, np.ndarray]],
    num_classes: int,
    models: BandedModels,
    *,
    prior: float = 0.0,
    leave_one_out: bool = True,
    current: Offsets | None = None,
    reach: int = REACH,
    min_accuracy: float = MIN_ACCURACY,
    confidence: float = CONFIDENCE,
) -> Offsets:
    """Every annotator's offsets over the project against the (leave-one-out) Dawid-Skene consensus.

    ``current``: offsets already applied to ``tasks`` (the maps given are corrected): the
    residual measured here adds to them. Annotators whose modelled accuracy (expected share of
    their labels that match the consensus) is under ``min_accuracy`` get no offsets: their
    boundaries are not a shifted version of anyone's.
    """
    c = num_classes
    accuracy = models.accuracy()
    over: dict[str, np.ndarray] = {}
    edges: dict[str, np.ndarray] = {}
    for task in tasks:
        for a, m, reference in _references(task, models, leave_one_out, confidence):
            o, e = shift_counts(m, reference, c, reach)
            over[a] = over.get(a, 0) + o
            edges[a] = edges.get(a, 0) + e
    raws, radii = {}, {}
    for a in sorted(over):
        if accuracy.get(a, 1.0) < min_accuracy:
            continue
        raw, _ = offsets_from_counts(over[a], edges[a], prior)
        if current is not None and a in current.radii:
            raw = raw + (current.radii[a] - current.radii[a].T)  # the applied correction plus the residual
        raws[a] = raw
        r = np.clip(np.floor(raw + 0.5), 0, MAX_RADIUS).astype(np.int64)
        np.fill_diagonal(r, 0)
        radii[a] = r
    return Offsets(radii, raws)


def corrected_tasks(tasks, offsets: Offsets, num_classes: int) -> list[dict[str, np.ndarray]]:
    return [{a: correct(m, offsets.of(a), num_classes) for a, m in t.items()} for t in tasks]


def estimate_with_offsets(
    tasks: Sequence[Mapping[str, np.ndarray]],
    num_classes: int,
    *,
    rounds: int = 2,
    prior: float = 0.0,
    leave_one_out: bool = True,
    iterations: int = 10,
) -> tuple[BandedModels, Offsets]:
    """Dawid-Skene models of the offset-corrected maps, and the offsets; ``rounds`` re-estimations."""
    models = estimate_models(tasks, num_classes, (), iterations=iterations)
    offsets = Offsets({}, {})
    working = list(tasks)
    for _ in range(rounds):
        offsets = estimate_offsets(
            working, num_classes, models, prior=prior, leave_one_out=leave_one_out, current=offsets
        )
        working = corrected_tasks(tasks, offsets, num_classes)
        models = estimate_models(working, num_classes, (), iterations=iterations)
    return models, offsets


def offset_vote(task: Mapping[str, np.ndarray], models: BandedModels, offsets: Offsets, num_classes: int):
    """Consensus (H, W) uint8 and confidence of one image: correct each map, then the Dawid-Skene vote."""
    return dawid_skene_vote({a: correct(m, offsets.of(a), num_classes) for a, m in task.items()}, models)


# --- One offset per annotator: rarer classes grown (r > 0) or shrunk (r < 0) over commoner ones.
#
# The pair offsets above need many boundary pixels per pair and read swapped or missed objects
# next to a boundary as shifts. A brush that is too fat (or too thin) grows (shrinks) the
# objects it paints over the surrounding stuff: along a j|k boundary, with j the rarer class of
# the image, the shift is +r. So a single signed r per annotator: summed over images and pairs,
#
#     r = sum (A[rarer over commoner] - A[commoner over rarer]) / (sum L + prior)
#
# and it is undone per image by a grey erosion (r > 0) or dilation (r < 0) of the map's rarity
# rank (the map's own class pixel counts) by a disk of radius |round(r)|.


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


@dataclass(frozen=True)
class RarityOffsets:
    """Per annotator: raw signed offset (px, rarer over commoner) and the applied correction radius."""

    raw: Mapping[str, float]
    radius: Mapping[str, int]

    def correct(self, annotator: str, label_map: np.ndarray, num_classes: int) -> np.ndarray:
        return regrow(label_map, -self.radius.get(annotator, 0), num_classes)


def estimate_rarity_offsets(
    tasks,
    num_classes: int,
    models: BandedModels,
    *,
    prior: float = 0.0,
    leave_one_out: bool = True,
    current: RarityOffsets | None = None,
    min_accuracy: float = MIN_ACCURACY,
    confidence: float = CONFIDENCE,
    max_radius: int = MAX_RADIUS,
    dead_zone: float = 0.5,
) -> RarityOffsets:
    """Each annotator's r over the project: the residual measured on the maps given (corrected by
    ``current``) plus the radius ``current`` applied.

    |r| < ``dead_zone`` + 0.5 rounds to no correction (the prior that offset 0 is likeliest)."""
    accuracy = models.accuracy()
    area: dict[str, float] = {}
    length: dict[str, float] = {}
    for task in tasks:
        for a, m, reference in _references(task, models, leave_one_out, confidence):
            # a reference pixel stands on at least one reliable other annotator's label
            seen = np.zeros(m.shape, bool)
            for b, x in task.items():
                if b != a and accuracy.get(b, 1.0) >= min_accuracy:
                    seen |= x < num_classes
            reference = np.where(seen, reference, IGNORE_INDEX).astype(np.uint8)
            s, n = rarity_shift(m, reference, num_classes)
            area[a] = area.get(a, 0.0) + s
            length[a] = length.get(a, 0.0) + n
    raw, radius = {}, {}
    for a in sorted(area):
        if accuracy.get(a, 1.0) < min_accuracy:
            continue
        r = area[a] / max(length[a] + prior, 1.0) + (current.radius.get(a, 0) if current else 0)
        raw[a] = r
        magnitude = max(abs(r) - dead_zone, 0.0)
        radius[a] = int(np.sign(r) * min(np.floor(magnitude + 0.5), max_radius))
    return RarityOffsets(raw, radius)


def estimate_with_rarity_offsets(tasks, num_classes: int, *, rounds: int = 2, iterations: int = 10, **options):
    """Dawid-Skene models of the maps with every annotator's rarity offset undone, and the offsets."""
    models = estimate_models(tasks, num_classes, (), iterations=iterations)
    offsets = RarityOffsets({}, {})
    working = list(tasks)
    for _ in range(rounds):
        offsets = estimate_rarity_offsets(working, num_classes, models, current=offsets, **options)
        working = [{a: offsets.correct(a, m, num_classes) for a, m in t.items()} for t in tasks]
        models = estimate_models(working, num_classes, (), iterations=iterations)
    return models, offsets


def rarity_vote(task, models: BandedModels, offsets: RarityOffsets, num_classes: int):
    return dawid_skene_vote({a: offsets.correct(a, m, num_classes) for a, m in task.items()}, models)
