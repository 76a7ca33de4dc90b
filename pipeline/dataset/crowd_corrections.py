"""Dawid-Skene on annotator maps with two systematic errors undone first: the default consensus.

Per-pixel Dawid-Skene treats an annotator's errors as independent from pixel to pixel. Two of
the commonest crowd errors are not: whole objects left out, and every boundary drawn a few
pixels out. Both are undone on each annotator's map before the vote:

1. Missed objects (pipeline.dataset.object_misses): where annotator a often leaves out whole
   objects that a reliable annotator b draws (and not the other way round), a's labels inside
   those objects are dropped: a missed object is neither a vote for the surrounding class nor
   against the object.
2. Boundary offsets (pipeline.dataset.boundary_offsets, one signed radius per annotator): an
   annotator whose rarer classes reach consistently into the commoner ones (a fat brush) or fall
   short has their map eroded or dilated back by the rounded offset. Where the images are at
   hand (``edges``), the offset is measured against the images' own edges
   (pipeline.dataset.edge_offsets): that needs no other annotator to be right. Otherwise, and
   for annotators whose boundaries follow no edges, against the leave-one-out consensus, where
   |offset| < 1 px is taken as 0.

Both are estimated over the project (images with at least three annotators: two alone do not
say which one is right), then the soft-EM Dawid-Skene models are estimated on the corrected maps
and each image is voted by them. Estimation makes several passes over the project's maps; each
pass is a ``mapper`` over ``items`` (a process pool in the merge stage), and ``load`` turns an
item into {annotator: (H, W) uint8}, so no pass holds more than one image's maps. Deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.dataset.boundary_offsets import DEAD_ZONE, RarityOffsets, rarity_offsets, shift_sums
from pipeline.dataset.dawid_skene import BandedModels, dawid_skene_vote, estimate_models
from pipeline.dataset.edge_bands import banded_tuples, check_bands
from pipeline.dataset.edge_offsets import EdgeEvidence, edge_evidence, edge_sums
from pipeline.dataset.object_misses import MissModel, drop_misses, miss_counts, miss_model, summed_counts

CORRECTIONS = ("missed_objects", "boundary_offsets")
MIN_ANNOTATORS = 3

Maps = Mapping[str, np.ndarray]
Mapper = Callable[[Callable, Iterable], Iterable]


@dataclass(frozen=True)
class Corrections:
    """What is undone on each annotator's map before the vote (nothing, by default)."""

    num_classes: int
    misses: MissModel = field(default_factory=lambda: MissModel({}, frozenset()))
    offsets: RarityOffsets = field(default_factory=lambda: RarityOffsets({}, {}))

    def apply(self, task: Maps) -> dict[str, np.ndarray]:
        """One image's maps, missed objects unlabelled and boundary offsets undone."""
        dropped = drop_misses(task, self.misses, self.num_classes)
        return {a: self.offsets.correct(a, m, self.num_classes) for a, m in dropped.items()}

    @property
    def empty(self) -> bool:
        return not self.misses.drop and not any(self.offsets.radius.values())


@dataclass(frozen=True)
class CorrectedModels:
    """Corrections and the Dawid-Skene models of the corrected maps; edge_fidelity {annotator:
    fidelity} where the images were measured (pipeline.dataset.edge_offsets); image_tasks
    (tasks whose image was measured, tasks the corrections were estimated on), or None when
    no images were given."""

    corrections: Corrections
    models: BandedModels
    edge_fidelity: Mapping[str, float] = field(default_factory=dict)
    image_tasks: tuple[int, int] | None = None

    def vote(self, task: Maps, undecided: str = "resolve") -> tuple[np.ndarray, np.ndarray]:
        """Consensus (H, W) uint8 and confidence (H, W) float32 of one image."""
        return dawid_skene_vote(self.corrections.apply(task), self.models, undecided)

    def to_dict(self) -> dict:
        return {
            **self.models.to_dict(),
            "missed_objects": self.corrections.misses.to_dict(),
            "boundary_offsets": self.corrections.offsets.to_dict(),
            "edge_fidelity": {a: round(f, 4) for a, f in sorted(self.edge_fidelity.items())},
            "image_tasks": None if self.image_tasks is None else list(self.image_tasks),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> CorrectedModels:
        try:
            misses = MissModel.from_dict(data["missed_objects"])
            offsets = RarityOffsets.from_dict(data["boundary_offsets"])
            fidelity = {str(a): float(f) for a, f in data.get("edge_fidelity", {}).items()}
            image_tasks = data.get("image_tasks")
            image_tasks = None if image_tasks is None else (int(image_tasks[0]), int(image_tasks[1]))
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise PipelineError(f"not a CorrectedModels dict ({exc!r}); expected the keys of to_dict()") from exc
        models = BandedModels.from_dict(data)
        return cls(Corrections(models.num_classes, misses, offsets), models, fidelity, image_tasks)


def _loaded(item, load: Callable | None, corrections: Corrections | None) -> dict[str, np.ndarray]:
    task = dict(load(item) if load is not None else item)
    return corrections.apply(task) if corrections is not None and not corrections.empty else task


def _tuples_of(item, load, corrections, num_classes: int, thresholds: tuple[int, ...], zones: bool):
    task = _loaded(item, load, corrections)
    return banded_tuples(task, num_classes, thresholds, zones=zones)[0] if len(task) >= MIN_ANNOTATORS else None


def _misses_of(item, load, num_classes: int):
    task = _loaded(item, load, None)
    return miss_counts(task, num_classes) if len(task) >= MIN_ANNOTATORS else {}


def _shifts_of(item, load, corrections, num_classes: int, models: BandedModels):
    task = _loaded(item, load, corrections)
    return shift_sums(task, num_classes, models) if len(task) >= MIN_ANNOTATORS else {}


def _edge_sums_of(item, load, edges, corrections, num_classes: int):
    task = _loaded(item, load, corrections)
    image = edges(item) if len(task) >= MIN_ANNOTATORS else None
    return edge_sums(task, image, num_classes) if image is not None else {}


def estimate_corrected(
    items: Sequence,
    num_classes: int,
    *,
    load: Callable[[object], Maps] | None = None,
    mapper: Mapper = map,
    corrections: Sequence[str] = CORRECTIONS,
    thresholds: Sequence[int] = (),
    zones: bool = False,
    iterations: int = 10,
    rounds: int = 2,
    dead_zone: float = DEAD_ZONE,
    every_task: Callable[[], Iterable] | None = None,
    edges: Callable[[object], np.ndarray | None] | None = None,
) -> CorrectedModels:
    """Corrections and Dawid-Skene models of a project.

    items: the project's images, each {annotator: (H, W) uint8} or whatever ``load`` reads one
    from. mapper(function, items) -> results in order (``map``, or a process pool's). corrections:
    which of CORRECTIONS to estimate (none: plain Dawid-Skene on the maps); thresholds, zones:
    the bands of the models (pipeline.dataset.edge_bands). every_task: when the corrections are
    estimated on a sample (``items``), a callable giving all the project's items (same kind), on
    which the final models are estimated in one more pass: each annotator's models come from all
    their tasks. edges(item) -> the (H, W) float32 edge map of the item's image
    (``edge_offsets.image_edges``), or None where there is none: boundary offsets are then measured
    against the images' edges (pipeline.dataset.edge_offsets)."""
    unknown = sorted(set(corrections) - set(CORRECTIONS))
    if unknown:
        raise PipelineError(f"unknown corrections {unknown}; valid: {', '.join(CORRECTIONS)}")
    items, thresholds = list(items), check_bands(thresholds, num_classes)

    evidence = EdgeEvidence({}, {})

    def fit(
        current: Corrections, bands: tuple[int, ...] = (), source: Iterable | None = None, weighted: bool = False
    ) -> BandedModels:
        work = partial(
            _tuples_of, load=load, corrections=current, num_classes=num_classes, thresholds=bands, zones=zones
        )
        tables = [t for t in mapper(work, items if source is None else source) if t is not None]
        return estimate_models(
            tables,
            num_classes,
            bands,
            iterations=iterations,
            zones=zones and bool(bands),
            start_weights=evidence.start_weights() if weighted else None,
        )

    # The corrections are estimated against plain one-confusion models (fewer parameters to
    # lock in an early wrong consensus); the bands enter the final models only.
    current = Corrections(num_classes)
    if edges is not None:
        work = partial(_edge_sums_of, load=load, edges=edges, corrections=current, num_classes=num_classes)
        evidence = edge_evidence(mapper(work, items))
    models = fit(current)
    if "missed_objects" in corrections:
        counts = mapper(partial(_misses_of, load=load, num_classes=num_classes), items)
        current = Corrections(num_classes, miss_model(summed_counts(counts), models))
        if current.misses.drop:
            models = fit(current)
    # one more fit follows the corrections (with the bands, on every task, from the weighted
    # start); with image offsets it always does, so the rounds below may skip their last fit
    final = bool(thresholds) or every_task is not None or bool(evidence.fidelity)
    if "boundary_offsets" in corrections:
        measured = dict(evidence.offsets)
        offsets = rarity_offsets((), models, measured=measured)
        current = Corrections(num_classes, current.misses, offsets)
        # the consensus measures the rest, on maps whose image-measured offsets are undone
        rest = set(models.confusion) - set(measured)
        for round_ in range(rounds if rest else 0):
            if round_ == 0 and measured:
                models = fit(current)
            work = partial(_shifts_of, load=load, corrections=current, num_classes=num_classes, models=models)
            offsets = rarity_offsets(
                mapper(work, items), models, current.offsets, dead_zone=dead_zone, measured=measured
            )
            current = Corrections(num_classes, current.misses, offsets)
            if round_ < rounds - 1 or not final:
                models = fit(current)
    if final:
        # Only this fit starts from the edge-fidelity-weighted vote: the corrections are
        # estimated against models started from a plain majority, since fidelity says where an
        # annotator draws boundaries, not whether they miss or swap objects.
        models = fit(current, thresholds, every_task() if every_task is not None else None, weighted=True)
    image_tasks = (evidence.tasks, len(items)) if edges is not None else None
    return CorrectedModels(current, models, dict(evidence.fidelity), image_tasks)


def sample_tasks(
    items: Iterable, annotators_of: Callable[[object], Sequence[str]], limit: int, min_per_annotator: int = 30
) -> list:
    """The items corrections are estimated on: the first ``limit`` with at least three annotators
    (0: all of them), then any later one that brings an annotator seen in fewer than
    ``min_per_annotator`` of the chosen. Deterministic: input order."""
    chosen, seen = [], {}
    for item in items:
        names = annotators_of(item)
        if len(names) < MIN_ANNOTATORS:
            continue
        if limit <= 0 or len(chosen) < limit or any(seen.get(a, 0) < min_per_annotator for a in names):
            chosen.append(item)
            for a in names:
                seen[a] = seen.get(a, 0) + 1
    return chosen
