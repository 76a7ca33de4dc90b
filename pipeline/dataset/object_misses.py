"""Whole objects one annotator leaves out: their label there is no vote against the object.

A "misser" paints a missed object with the surrounding class, so per pixel their map says
"background" exactly where the object is; Dawid-Skene then weighs that label as evidence
against the object. At object level the error is visible: annotator a misses b's object (a
connected component of b's class-k pixels, at least ``min_size`` px, inside pixels a labelled)
when a has no k pixel inside it. Only objects a third annotator confirms (draws k inside) are
counted: an object b alone draws (a missed neighbour b painted over with k, an invented one, a
swapped one) says nothing about whether a misses objects, and counted it would make a careful a
look like a misser of b's objects. Over the project, m[a, b, k] = share of b's confirmed class-k
objects a misses. When a misses b's k objects often (m[a, b, k] >= ``rate``, at least ``min_objects``
objects seen) and b rarely misses a's (m[b, a, k] <= m[a, b, k] * ``ratio``), and b is a reliable
annotator (modelled accuracy >= ``min_accuracy``) whose k labels are mostly right (modelled
precision >= ``min_precision``: a swapper's objects are not missed ones), a's labels inside the class-k objects of b
that a misses are set to unlabelled before the vote: they neither confirm nor deny the object.

Shapes: H, W label maps; C classes; A annotators; N components of one map. Deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.dataset.dawid_skene import BandedModels

MIN_SIZE = 20
RATE, RATIO, MIN_ACCURACY, MIN_OBJECTS, MIN_PRECISION = 0.15, 0.34, 0.6, 5, 0.3

MissCounts = dict[tuple[str, str, int], tuple[int, int]]  # (a, b, k) -> (objects missed, objects seen)


def _components(label_map: np.ndarray, num_classes: int, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Objects of every class of one map at once: (H, W) int64 object id (0 = none) and (N,) class.

    One id space over all classes (8-connected per class), objects under ``min_size`` px left out,
    so one histogram per other annotator answers every object.
    """
    ids = np.zeros(label_map.shape, np.int64)
    classes = [np.array([-1])]
    for k in np.unique(label_map):
        if k >= num_classes:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats((label_map == k).view(np.uint8), connectivity=8)
        big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_size) + 1
        if not len(big):
            continue
        renumber = np.zeros(n, np.int64)
        renumber[big] = len(np.concatenate(classes)) + np.arange(len(big))
        ids += renumber[comp]  # components of one class never overlap another's
        classes.append(np.full(len(big), int(k)))
    return ids, np.concatenate(classes)


def _object_hits(ids: np.ndarray, classes: np.ndarray, other: np.ndarray, num_classes: int):
    """(N,) bool each object lies in pixels ``other`` labelled, (N,) bool ``other`` has its class in it."""
    histogram = np.bincount(
        (ids * (num_classes + 1) + np.minimum(other, num_classes)).ravel(), minlength=len(classes) * (num_classes + 1)
    ).reshape(len(classes), num_classes + 1)
    seen = histogram[:, :num_classes].sum(axis=1) > 0
    hit = histogram[np.arange(len(classes)), np.maximum(classes, 0)] > 0
    seen[0] = hit[0] = False  # id 0 is "no object"
    return seen, hit


def miss_counts(task: Mapping[str, np.ndarray], num_classes: int, min_size: int = MIN_SIZE) -> MissCounts:
    """{(a, b, k): (missed, seen)} class-k objects of b that a misses, over one image.

    Only objects inside pixels a labelled count (an unlabelled patch is not a miss), and only
    objects another annotator than a and b also draws (so two annotators alone count nothing)."""
    names = sorted(task)
    out: MissCounts = {}
    for b in names:
        ids, classes = _components(task[b], num_classes, min_size)
        if len(classes) < 2:
            continue
        hits = {a: _object_hits(ids, classes, task[a], num_classes) for a in names if a != b}
        drawn_by = sum(hit.astype(np.int64) for _, hit in hits.values())  # (N,) annotators besides b
        for a, (seen, hit) in hits.items():
            counted = seen & (drawn_by - hit > 0)  # someone besides a and b draws the object
            missed = np.bincount(classes[counted & ~hit], minlength=num_classes)
            total = np.bincount(classes[counted], minlength=num_classes)
            for k in np.flatnonzero(total):
                out[(a, b, int(k))] = (int(missed[k]), int(total[k]))
    return out


@dataclass(frozen=True)
class MissModel:
    """(a, b, k) in ``drop``: a's labels inside b's class-k objects that a misses are dropped.

    ``order``: the dropped triples, most accurate b first (for each (a, k) the first b is used).
    ``rates``: m[a, b, k] of every triple with enough objects seen, for the report."""

    rates: Mapping[tuple[str, str, int], float]
    drop: frozenset
    order: tuple = ()

    def to_dict(self) -> dict:
        return {
            "drop": [list(t) for t in self.order],
            "rates": [[*t, round(r, 4)] for t, r in sorted(self.rates.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> MissModel:
        order = tuple((str(a), str(b), int(k)) for a, b, k in data["drop"])
        rates = {(str(a), str(b), int(k)): float(r) for a, b, k, r in data["rates"]}
        return cls(rates, frozenset(order), order)


def miss_model(
    totals: MissCounts,
    models: BandedModels,
    *,
    rate: float = RATE,
    ratio: float = RATIO,
    min_accuracy: float = MIN_ACCURACY,
    min_objects: int = MIN_OBJECTS,
    min_precision: float = MIN_PRECISION,
) -> MissModel:
    """Which (a, b, k) to drop, from the project's summed ``miss_counts`` and Dawid-Skene models."""
    rates = {key: m / t for key, (m, t) in totals.items() if t >= min_objects}
    accuracy = models.accuracy()
    precision = {}  # P(consensus k | b labels k) under the models
    for b, cm in models.confusion.items():
        counts = np.asarray(cm, np.float64).sum(axis=0)  # (class, label)
        precision[b] = np.diag(counts) / np.maximum(counts.sum(axis=0), 1e-9)
    drop = frozenset(
        (a, b, k)
        for (a, b, k), r in rates.items()
        if r >= rate
        and rates.get((b, a, k), 0.0) <= r * ratio
        and accuracy.get(b, 0.0) >= min_accuracy
        and b in precision
        and precision[b][k] >= min_precision
    )
    order = tuple(sorted(drop, key=lambda t: (t[0], t[2], -accuracy.get(t[1], 0.0), t[1])))
    return MissModel(rates, drop, order)


def drop_misses(
    task: Mapping[str, np.ndarray], model: MissModel, num_classes: int, min_size: int = MIN_SIZE
) -> dict[str, np.ndarray]:
    """The task with a's labels inside the class-k objects of b that a misses unlabelled, (a, b, k) in ``model.drop``.

    For each (a, k) only the b listed first in ``model.order`` (the most accurate) is used."""
    out = dict(task)
    if not model.drop:
        return out
    wanted: dict[tuple[str, int], list[str]] = {}
    for a, b, k in model.order:
        if a in task and b in task and all(a not in readers for (_, kk), readers in wanted.items() if kk == k):
            wanted.setdefault((b, k), []).append(a)
    for (b, k), readers in sorted(wanted.items()):
        mask = (task[b] == k).view(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        if not w:
            continue
        box = np.s_[y : y + h, x : x + w]
        _, comp, stats, _ = cv2.connectedComponentsWithStats(mask[box], connectivity=8)
        big = stats[:, cv2.CC_STAT_AREA] >= min_size
        big[0] = False
        for a in readers:
            hits = np.bincount(comp[task[a][box] == k], minlength=len(big))
            missed = big & (hits == 0)
            if missed.any():
                if out[a] is task[a]:
                    out[a] = task[a].copy()
                out[a][box][missed[comp]] = IGNORE_INDEX
    return out


def summed_counts(per_task: Iterable[MissCounts]) -> MissCounts:
    """The project's ``miss_counts``: every image's added up."""
    totals: MissCounts = {}
    for counts in per_task:
        for key, (missed, seen) in counts.items():
            m, s = totals.get(key, (0, 0))
            totals[key] = (m + missed, s + seen)
    return totals
