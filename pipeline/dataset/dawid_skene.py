"""Dawid-Skene by soft EM, each annotator's confusion optionally per band of distance from their own edges.

The default consensus (``merge.method: dawid_skene``). For pixel x, the score of class k is

    log prior(k) + sum over annotators a who labelled x of log P_a(label | k, band)

With no bands (``merge.edge_bands: []``, the default) this is plain Dawid-Skene: one (C, C)
confusion per annotator. With bands (e.g. [2, 4]), band is the band of x's distance from a's
OWN label edges (pipeline.dataset.edge_bands): a dilating annotator's labels next to their edges can
then weigh less than their labels inside regions. The models are estimated over the whole
project by soft EM (posterior-weighted pixel counts), started from a plain majority; unlike
classification EM (``merge.method: vote``) a pixel the models are unsure of adds to both
classes' counts instead of all to one, which keeps an early wrong consensus from locking in.

Shapes: C classes, B bands, K label combinations, A annotators, P pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.dataset.cooccurrence import LabelTuples
from pipeline.dataset.decision import IGNORE_INDEX, decide, posterior
from pipeline.dataset.edge_bands import banded_tuples, check_bands

BLOCK_ROWS = 1 << 15  # combinations per step of an estimation pass: bounds its temporaries


class BandedModelError(PipelineError):
    """Banded annotator models that cannot be built or read."""


@dataclass(frozen=True)
class BandedModels:
    """Per annotator: confusion (B, C, C) expected pixel counts (band, consensus class, label given).

    Without bands B = 1. class_counts (C,): expected consensus pixels per class (the prior,
    smoothed by ``smoothing``); with ``zones`` (bands of the pixel's boundary zone, the same for
    every annotator: pipeline.dataset.edge_bands) (B, C), a prior per zone. Each (band, class)
    row gets a Dirichlet prior of total weight ``smoothing * C`` shaped like the annotator's row
    over all bands. An annotator not in ``confusion`` gets the mean counts of everyone; with
    nobody estimated, a symmetric model (every annotator alike: a plain vote).
    """

    num_classes: int
    thresholds: tuple[int, ...]
    confusion: Mapping[str, np.ndarray]
    class_counts: np.ndarray
    smoothing: float = 1.0
    passes: int = 0
    converged: bool = False
    zones: bool = False
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def bands(self) -> int:
        return len(self.thresholds) + 1

    def accuracy(self) -> dict[str, float]:
        """{annotator: expected share of their labels that match the consensus} over all bands."""
        return {a: float(np.trace(cm.sum(axis=0)) / max(cm.sum(), 1e-9)) for a, cm in self.confusion.items()}

    def counts_of(self, annotator: str) -> np.ndarray:
        """(B, C, C) counts of one annotator, or of a typical one if unknown."""
        if annotator in self.confusion:
            return np.asarray(self.confusion[annotator], np.float64)
        if not self.confusion:  # nothing estimated: a symmetric annotator, right 9 times in 10 (a plain vote)
            c = self.num_classes
            row = np.full((c, c), 0.1 / max(c - 1, 1)) + np.eye(c) * (0.9 - 0.1 / max(c - 1, 1))
            return np.repeat(100.0 * row[None], self.bands, axis=0)
        pooled = sum(np.asarray(cm, np.float64) for cm in self.confusion.values())
        return pooled / len(self.confusion)

    def evidence(self, annotator: str) -> np.ndarray:
        """(C * B + 1, C) log P(banded code | class); the last row (not labelled) is 0."""
        if annotator not in self._tables:  # cached: every image asks again
            counts = self.counts_of(annotator)  # (B, C, C) band, class, label
            pooled = counts.sum(axis=0) + 1.0
            pooled /= pooled.sum(axis=1, keepdims=True)  # P(label | class) over all bands
            # The Dirichlet prior of a (band, class) row is the annotator's pooled row: a cell with
            # no pixels (a thin class far from any edge) says what the annotator does in general.
            given = counts + self.smoothing * self.num_classes * pooled[None]
            given /= given.sum(axis=2, keepdims=True)  # P(label | class, band)
            codes = np.log(given).transpose(2, 0, 1).reshape(self.num_classes * self.bands, self.num_classes)
            self._tables[annotator] = np.vstack([codes, np.zeros((1, self.num_classes))])
        return self._tables[annotator]

    def log_prior(self) -> np.ndarray:
        """(C,) log class prior, or (B, C) one per boundary zone."""
        counts = np.asarray(self.class_counts, np.float64) + self.smoothing
        return np.log(counts / counts.sum(axis=-1, keepdims=True))

    def to_dict(self) -> dict:
        """JSON-able form (counts rounded to 0.1 px); ``from_dict`` restores it."""
        return {
            "num_classes": self.num_classes,
            "edge_bands": list(self.thresholds),
            "boundary_zones": self.zones,
            "smoothing": self.smoothing,
            "passes": self.passes,
            "converged": self.converged,
            "class_counts": np.round(np.asarray(self.class_counts, float), 1).tolist(),
            "confusion": {a: np.round(np.asarray(cm, float), 1).tolist() for a, cm in sorted(self.confusion.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> BandedModels:
        try:
            c, thresholds = int(data["num_classes"]), tuple(int(t) for t in data["edge_bands"])
            shape = (len(thresholds) + 1, c, c)
            confusion = {str(a): np.asarray(cm, np.float64) for a, cm in data["confusion"].items()}
            counts = np.asarray(data["class_counts"], np.float64)
            zones = bool(data.get("boundary_zones", False))
            prior = (len(thresholds) + 1, c) if zones else (c,)
            if any(cm.shape != shape for cm in confusion.values()) or counts.shape != prior:
                raise ValueError(f"confusion must be {shape} and class_counts {prior}")
            return cls(
                c,
                thresholds,
                confusion,
                counts,
                float(data.get("smoothing", 1.0)),
                int(data.get("passes", 0)),
                bool(data.get("converged", False)),
                zones,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BandedModelError(f"not a BandedModels dict ({exc!r}); expected the keys of to_dict()") from exc


def banded_scores(tuples: LabelTuples, models: BandedModels) -> np.ndarray:
    """(K, C) log scores of the banded combinations of one image (``edge_bands.banded_tuples``)."""
    prior = models.log_prior()
    scores = (
        prior[zones_of(tuples.codes, models.bands, tuples.num_classes)]
        if models.zones
        else np.tile(prior, (len(tuples.counts), 1))
    )
    for column, annotator in enumerate(tuples.annotators):
        scores += models.evidence(annotator)[tuples.codes[:, column]]
    return scores


def dawid_skene_vote(
    maps: Mapping[str, np.ndarray], models: BandedModels, undecided: str = "resolve"
) -> tuple[np.ndarray, np.ndarray]:
    """Consensus (H, W) uint8 and confidence (H, W) float32 (posterior of the winner) of one image.

    maps: {annotator: (H, W) uint8}. Pixels nobody labelled are 255 with confidence 0; ties
    follow ``undecided`` (pipeline.dataset.decision).
    """
    if not isinstance(maps, Mapping) or not maps:
        raise BandedModelError("banded_vote needs {annotator id: (H, W) uint8 label map}, at least one")
    shape = next(iter(maps.values())).shape
    tuples, index = banded_tuples(maps, models.num_classes, models.thresholds, zones=models.zones)
    labels, confidence = decide_tuples(tuples, models, undecided)
    return labels[index].reshape(shape), confidence[index].reshape(shape)


def decide_tuples(tuples: LabelTuples, models: BandedModels, undecided: str) -> tuple[np.ndarray, np.ndarray]:
    """Label (K,) uint8 and confidence (K,) float32 of each banded combination."""
    scores = banded_scores(tuples, models)
    labelled = (tuples.codes < tuples.num_classes).any(axis=1)
    labels = decide(scores, labelled, undecided)
    probabilities = posterior(scores)
    confidence = np.where(labels == IGNORE_INDEX, 0.0, probabilities.max(axis=1)).astype(np.float32)
    return labels, confidence


def zones_of(codes: np.ndarray, bands: int, alphabet: int) -> np.ndarray:
    """(K,) boundary zone of each combination of zone-banded codes (K, A): every labelled code
    carries it; 0 where nobody labelled."""
    labelled = codes < alphabet
    return np.where(labelled, codes % bands, 0).max(axis=1).astype(np.int64)


Tasks = Callable[[], Iterable] | Iterable


def estimate_models(
    tasks: Tasks,
    num_classes: int,
    thresholds: Sequence[int] = (),
    *,
    iterations: int = 10,
    smoothing: float = 1.0,
    min_annotators: int = 3,
    tol: float = 1e-3,
    zones: bool = False,
    start_weights: Mapping[str, float] | None = None,
) -> BandedModels:
    """Every annotator's (banded) confusion, estimated over all their tasks by soft EM.

    tasks: iterable (or zero-argument callable returning one) of {annotator: (H, W) uint8} or of
    banded LabelTuples (``banded_tuples``). Images with one annotator are skipped. Pass 0
    counts against a plain majority (a tie shares the pixel between the tied classes); each
    later pass against the posterior of the previous models. Deterministic: no random start.
    zones: the bands are boundary zones (``edge_bands.zone_map``), the class prior one per zone.
    start_weights: {annotator: weight of their vote in pass 0}, relative to the largest
    (pipeline.dataset.edge_offsets.EdgeEvidence); an annotator not in it weighs like the largest.
    None: one vote each.
    """
    thresholds = check_bands(thresholds, num_classes)
    if iterations < 0 or smoothing <= 0:
        raise BandedModelError(f"need iterations >= 0 and smoothing > 0, got {iterations}, {smoothing}")
    from pipeline.dataset.consensus import _Project  # the project-wide combination table

    bands = len(thresholds) + 1
    tables = (
        t if isinstance(t, LabelTuples) else banded_tuples(dict(t), num_classes, thresholds, zones=zones)[0]
        for t in (tasks() if callable(tasks) else tasks)
    )
    project = _Project.of([t for t in tables if len(t.annotators) >= max(2, min_annotators)], num_classes * bands)
    if not len(project.counts):
        prior = np.zeros((bands, num_classes) if zones else num_classes)
        return BandedModels(num_classes, thresholds, {}, prior, smoothing, zones=zones)
    models = None
    for done in range(iterations + 1):
        new = _pass(project, num_classes, thresholds, models, smoothing, done + 1, zones, start_weights)
        if models is not None and _max_change(models, new) <= tol:
            return replace(new, converged=True)
        models = new
    return models


def _pass(
    project,
    num_classes: int,
    thresholds: tuple[int, ...],
    models: BandedModels | None,
    smoothing: float,
    passes: int,
    zones: bool = False,
    start_weights: Mapping[str, float] | None = None,
) -> BandedModels:
    """Posterior of every combination under ``models`` (a vote weighted by ``start_weights`` if
    None), then expected counts."""
    c, bands, n = num_classes, len(thresholds) + 1, len(project.annotators)
    alphabet = c * bands
    if models is None:  # a vote per labelled code, for its class, weighing the annotator's start weight
        vote = np.vstack([np.repeat(np.eye(c), bands, axis=0), np.zeros((1, c))])
        weights = np.ones(n)
        top = max(start_weights.values(), default=0.0) if start_weights else 0.0
        if top > 0:  # the most faithful annotator's vote weighs 1
            weights = np.array([start_weights.get(a, top) / top for a in project.annotators])
        evidence = np.stack([w * vote for w in weights] + [np.zeros((alphabet + 1, c))])
    else:
        evidence = np.stack([models.evidence(a) for a in project.annotators] + [np.zeros((alphabet + 1, c))])
    class_counts, confusion = np.zeros((bands, c) if zones else c), np.zeros(n * alphabet * c)
    for start in range(0, len(project.counts), BLOCK_ROWS):
        block = slice(start, start + BLOCK_ROWS)
        codes, who, counts = project.codes[block], project.who[block].astype(np.int64), project.counts[block]
        scores = np.zeros((len(counts), c))
        for column in range(codes.shape[1]):
            scores += evidence[who[:, column], codes[:, column]]
        labelled = (codes < alphabet).any(axis=1)
        zone = zones_of(codes, bands, alphabet) if zones else None
        if models is None:
            hits = scores >= scores.max(axis=1, keepdims=True)
            post = hits / hits.sum(axis=1, keepdims=True)
        else:
            prior = models.log_prior()
            post = posterior(scores + (prior[zone] if zones else prior))
        weights = post * (counts * labelled)[:, None]  # (rows, C) expected pixels per class
        if zones:
            cells = (zone[:, None] * c + np.arange(c)).ravel()
            class_counts += np.bincount(cells, weights=weights.ravel(), minlength=bands * c).reshape(bands, c)
        else:
            class_counts += weights.sum(axis=0)
        for column in range(codes.shape[1]):
            keep = (codes[:, column] < alphabet) & (who[:, column] < n)
            cells = (who[keep, column] * alphabet + codes[keep, column].astype(np.int64)) * c
            confusion += np.bincount(
                (cells[:, None] + np.arange(c)).ravel(), weights=weights[keep].ravel(), minlength=n * alphabet * c
            )
    # (n, label, band, class) -> (n, band, class, label)
    confusion = confusion.reshape(n, c, bands, c).transpose(0, 2, 3, 1)
    return BandedModels(
        c,
        thresholds,
        {a: confusion[i] for i, a in enumerate(project.annotators)},
        class_counts,
        smoothing,
        passes,
        zones=zones,
    )


def _max_change(old: BandedModels, new: BandedModels) -> float:
    if set(old.confusion) != set(new.confusion):
        return float("inf")
    return max(
        (float(np.abs(np.exp(old.evidence(a)) - np.exp(new.evidence(a))).max()) for a in new.confusion), default=0.0
    )
