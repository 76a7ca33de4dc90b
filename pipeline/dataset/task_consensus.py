"""One task's consensus by any merge method: label map, confidence map and what the report needs.

Pure: label combinations in, arrays and numbers out; the merge stage does the reading and
writing. Confidence per pixel (``TaskConsensus.confidence``, float32 in [0, 1]):

    dawid_skene, vote   the posterior probability of the chosen class under the annotator models
    majority, staple    the share of the annotators who labelled the pixel that gave its label
    undecided (255)     0

Shapes: H, W map; K label combinations; A annotators; C classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dataset.boundary_bias import boundary_offsets
from pipeline.dataset.consensus import AnnotatorModels, staple, vote_scores, vote_tuples
from pipeline.dataset.cooccurrence import LabelTuples, joint_rows, paint, pixel_keys
from pipeline.dataset.crowd_corrections import CorrectedModels
from pipeline.dataset.dawid_skene import BandedModels, decide_tuples
from pipeline.dataset.decision import IGNORE_INDEX, confidence_of, majority_of, posterior, vote_shares, votes_of
from pipeline.dataset.edge_bands import banded_tuples, unbanded

METHODS = ("dawid_skene", "vote", "staple", "majority")


@dataclass(frozen=True)
class TaskConsensus:
    """tuples: label-level combinations (codes <= C; rows may repeat); per_tuple (K,) uint8 label
    and tuple_confidence (K,) float32 of each; index (P,) each pixel's row; shape (H, W)."""

    tuples: LabelTuples
    per_tuple: np.ndarray
    tuple_confidence: np.ndarray
    index: np.ndarray
    shape: tuple[int, int]

    @property
    def labels(self) -> np.ndarray:
        """(H, W) uint8 consensus map."""
        return paint(self.per_tuple, self.index, self.shape)

    def confidence_png(self) -> np.ndarray:
        """(H, W) uint8 confidence scaled to 0..255 (round(255 p)): the file written beside the map."""
        return paint(np.round(255 * self.tuple_confidence).astype(np.uint8), self.index, self.shape)

    def against_majority(self) -> float:
        """Share of decided pixels whose label differs from the plain argmax majority (ties to lowest id)."""
        majority = majority_of(votes_of(self.tuples.codes, 1, self.tuples.num_classes))
        decided = self.per_tuple != IGNORE_INDEX
        total = self.tuples.counts[decided].sum()
        differ = self.tuples.counts[decided & (self.per_tuple != majority)].sum()
        return float(differ / total) if total else 0.0

    def mean_confidence(self) -> float | None:
        """Mean confidence over the pixels someone labelled (undecided count as 0)."""
        labelled = (self.tuples.codes < self.tuples.num_classes).any(axis=1)
        total = self.tuples.counts[labelled].sum()
        if not total:
            return None
        return float((self.tuple_confidence * self.tuples.counts)[labelled].sum() / total)

    def annotator_map(self, column: int) -> np.ndarray:
        """(H, W) uint8 label map of one annotator, rebuilt from the combinations (255 = unlabelled)."""
        codes = self.tuples.codes[:, column]
        labels = np.where(codes < self.tuples.num_classes, codes, IGNORE_INDEX).astype(np.uint8)
        return paint(labels, self.index, self.shape)

    def boundary_offsets(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{annotator: (signed sums, absolute sums, counts), each (C,)}; pipeline.dataset.boundary_bias."""
        maps = [self.annotator_map(i) for i in range(len(self.tuples.annotators))]
        return dict(zip(self.tuples.annotators, boundary_offsets(maps, self.labels, self.tuples.num_classes)))


def merge_tuples(
    tuples: LabelTuples,
    index: np.ndarray,
    shape: tuple[int, int],
    method: str,
    models: AnnotatorModels | BandedModels | CorrectedModels | None,
    undecided: str = "resolve",
) -> TaskConsensus:
    """Consensus of one task from its label combinations (K, A) and each pixel's combination (P,)."""
    c = tuples.num_classes
    if method == "dawid_skene" and isinstance(models, CorrectedModels):
        return _corrected(tuples, index, shape, models, undecided)
    if method == "dawid_skene":
        return _dawid_skene(tuples, index, shape, models, undecided)
    if method == "staple":
        maps = {a: _labels(tuples.codes[:, i], c)[index].reshape(shape) for i, a in enumerate(tuples.annotators)}
        labels = staple(maps, c) if len(maps) > 1 else next(iter(maps.values())).copy()
        per_tuple = np.full(len(tuples.counts), IGNORE_INDEX, np.uint8)
        per_tuple[index] = labels.ravel()  # all pixels of one combination get one label
        probabilities = vote_shares(votes_of(tuples.codes, 1, c))
    else:
        models = models if method == "vote" else None
        per_tuple = vote_tuples(tuples, models, undecided=undecided)
        scores = vote_scores(tuples, models)
        probabilities = posterior(scores) if models is not None else vote_shares(scores)
    return TaskConsensus(tuples, per_tuple, confidence_of(probabilities, per_tuple), index.ravel(), shape)


def banded_of(
    tuples: LabelTuples, index: np.ndarray, shape: tuple[int, int], thresholds: tuple[int, ...], zones: bool = False
) -> tuple[LabelTuples, np.ndarray]:
    """Banded combinations (pipeline.dataset.edge_bands) and pixel rows of a task given by its label combinations."""
    if not thresholds:
        return tuples, index.ravel()
    # the bands come from each annotator's own map, rebuilt from the combinations
    maps = {
        a: _labels(tuples.codes[:, i], tuples.num_classes)[index].reshape(shape)
        for i, a in enumerate(tuples.annotators)
    }
    return banded_tuples(maps, tuples.num_classes, thresholds, plain=(tuples, index.ravel()), zones=zones)


def _dawid_skene(tuples, index, shape, models: BandedModels, undecided: str) -> TaskConsensus:
    banded, index = banded_of(tuples, index, shape, models.thresholds, models.zones)
    tuples = unbanded(banded, models.bands)
    per_tuple, confidence = decide_tuples(banded, models, undecided)
    return TaskConsensus(tuples, per_tuple, confidence, index.ravel(), shape)


def _corrected(tuples, index, shape, models: CorrectedModels, undecided: str) -> TaskConsensus:
    """Vote on the corrected maps; the result keeps the annotators' own labels for the report.

    Pixels of one original combination can get different labels once maps are corrected, so the
    rows are the distinct (original, corrected) pairs."""
    c, index = tuples.num_classes, index.ravel()
    maps = {a: _labels(tuples.codes[:, i], c)[index].reshape(shape) for i, a in enumerate(tuples.annotators)}
    fixed_maps = models.corrections.apply(maps)
    banded, banded_index = banded_tuples(
        fixed_maps, c, models.models.thresholds, plain=pixel_keys(fixed_maps, c), zones=models.models.zones
    )
    per_fixed, fixed_confidence = decide_tuples(banded, models.models, undecided)
    present, counts, rows = joint_rows(index, banded_index, len(banded.counts))
    original, voted = present // len(banded.counts), present % len(banded.counts)
    joint = LabelTuples(tuples.annotators, tuples.codes[original], counts.astype(np.int64), c)
    return TaskConsensus(joint, per_fixed[voted], fixed_confidence[voted], rows.ravel(), shape)


def _labels(codes: np.ndarray, num_classes: int) -> np.ndarray:
    return np.where(codes < num_classes, codes, IGNORE_INDEX).astype(np.uint8)
