"""Dawid-Skene on annotator maps with two systematic errors undone first (not the default merge).

1. Missed objects (pipeline.dataset.object_misses): where annotator a often leaves out whole objects
   that a reliable annotator b draws (and not the other way round), a's labels inside those
   objects are dropped: a missed object is neither a vote for the surrounding class nor
   against the object.
2. Boundary offsets (pipeline.dataset.boundary_offsets, one signed radius per annotator): an annotator
   whose rarer classes reach consistently into the commoner ones (a fat brush) or fall short
   has their map eroded or dilated back by the rounded offset, estimated against the
   leave-one-out consensus; |offset| < 1 px is taken as 0 (offset 0 is the likeliest).

Both are estimated over the whole project, then the usual soft-EM Dawid-Skene models are
estimated on the corrected maps and each image is voted by them. Needs the annotators' label
maps (not only their label co-occurrence). Deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.dataset.boundary_offsets import RarityOffsets, estimate_with_rarity_offsets
from pipeline.dataset.dawid_skene import BandedModels, dawid_skene_vote
from pipeline.dataset.object_misses import MissModel, drop_misses, estimate_with_misses


@dataclass(frozen=True)
class CorrectedModels:
    num_classes: int
    misses: MissModel
    offsets: RarityOffsets
    models: BandedModels

    def prepare(self, task: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One image's maps with both corrections applied."""
        dropped = drop_misses(task, self.misses, self.num_classes)
        return {a: self.offsets.correct(a, m, self.num_classes) for a, m in dropped.items()}

    def vote(self, task: Mapping[str, np.ndarray], undecided: str = "resolve") -> tuple[np.ndarray, np.ndarray]:
        """Consensus (H, W) uint8 and confidence (H, W) float32 of one image."""
        return dawid_skene_vote(self.prepare(task), self.models, undecided)


def estimate_corrected(
    tasks: Sequence[Mapping[str, np.ndarray]],
    num_classes: int,
    *,
    iterations: int = 10,
    rounds: int = 2,
    dead_zone: float = 0.5,
) -> CorrectedModels:
    """Miss model, boundary offsets and Dawid-Skene models of a project of {annotator: (H, W) uint8}."""
    tasks = list(tasks)
    _, misses = estimate_with_misses(tasks, num_classes, iterations=iterations)
    dropped = [drop_misses(t, misses, num_classes) for t in tasks]
    models, offsets = estimate_with_rarity_offsets(
        dropped, num_classes, rounds=rounds, iterations=iterations, dead_zone=dead_zone
    )
    return CorrectedModels(num_classes, misses, offsets, models)
