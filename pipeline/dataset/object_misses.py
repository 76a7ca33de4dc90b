"""Whole objects one annotator leaves out: their label there is no vote against the object.

A "misser" paints a missed object with the surrounding class, so per pixel their map says
"background" exactly where the object is; Dawid-Skene then weighs that label as evidence
against the object. At object level the error is visible: annotator a misses b's object (a
connected component of b's class-k pixels, at least ``min_size`` px, inside pixels a labelled)
when a has no k pixel inside it. Over the project, m[a, b, k] = share of b's class-k objects a
misses. When a misses b's k objects often (m[a, b, k] >= ``rate``, at least ``min_objects``
objects seen) and b rarely misses a's (m[b, a, k] <= m[a, b, k] * ``ratio``), and b is a reliable
annotator (modelled accuracy >= ``min_accuracy``) whose k labels are mostly right (modelled
precision >= ``min_precision``: a swapper's objects are not missed ones), a's labels inside the class-k objects of b
that a misses are set to unlabelled before the vote: they neither confirm nor deny the object.

Shapes: H, W label maps; C classes; A annotators. Deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.dataset.dawid_skene import BandedModels, dawid_skene_vote, estimate_models

MIN_SIZE = 20
RATE, RATIO, MIN_ACCURACY, MIN_OBJECTS, MIN_PRECISION = 0.15, 0.34, 0.6, 5, 0.3


def _objects(label_map: np.ndarray, k: int, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) int32 component ids of class k (8-connected, 0 = none) and (n,) bool big enough."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats((label_map == k).view(np.uint8), connectivity=8)
    return comp, stats[:, cv2.CC_STAT_AREA] >= min_size


def _missed(comp: np.ndarray, big: np.ndarray, other: np.ndarray, k: int) -> np.ndarray:
    """(n,) bool: big components of ``comp`` where ``other`` has no k pixel."""
    hits = np.bincount(comp[other == k], minlength=len(big))
    out = big & (hits == 0)
    out[0] = False
    return out


def miss_counts(task: Mapping[str, np.ndarray], num_classes: int, min_size: int = MIN_SIZE):
    """{(a, b, k): (missed, total)} class-k objects of b that a misses, over one image.

    Only objects inside pixels a labelled count (an unlabelled patch is not a miss)."""
    names = sorted(task)
    out: dict[tuple[str, str, int], list[int]] = {}
    for b in names:
        for k in np.unique(task[b]):
            if k >= num_classes:
                continue
            comp, big = _objects(task[b], int(k), min_size)
            if not big[1:].any():
                continue
            for a in names:
                if a != b:
                    seen = big & (np.bincount(comp[task[a] < num_classes], minlength=len(big)) > 0)
                    seen[0] = False
                    missed = _missed(comp, seen, task[a], int(k))
                    acc = out.setdefault((a, b, int(k)), [0, 0])
                    acc[0] += int(missed.sum())
                    acc[1] += int(seen.sum())
    return out


@dataclass(frozen=True)
class MissModel:
    """(a, b, k): a's labels inside b's class-k objects that a misses are dropped."""

    rates: Mapping[tuple[str, str, int], float]
    drop: frozenset
    order: tuple = ()  # drop, the most accurate b first


def estimate_misses(
    tasks: Sequence[Mapping[str, np.ndarray]],
    num_classes: int,
    models: BandedModels,
    *,
    rate: float = RATE,
    ratio: float = RATIO,
    min_accuracy: float = MIN_ACCURACY,
    min_size: int = MIN_SIZE,
    min_objects: int = MIN_OBJECTS,
    min_precision: float = MIN_PRECISION,
) -> MissModel:
    totals: dict[tuple[str, str, int], list[int]] = {}
    for task in tasks:
        for key, (m, t) in miss_counts(task, num_classes, min_size).items():
            acc = totals.setdefault(key, [0, 0])
            acc[0] += m
            acc[1] += t
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


def drop_misses(task: Mapping[str, np.ndarray], model: MissModel, num_classes: int, min_size: int = MIN_SIZE):
    """The task with a's labels inside the class-k objects of b that a misses unlabelled, (a, b, k) in ``model.drop``.

    For each (a, k) only the b listed first in ``model.drop`` (the most accurate) is used."""
    if not model.drop:
        return dict(task)
    out = dict(task)
    wanted: dict[tuple[str, int], list[str]] = {}
    for a, b, k in model.order:
        if a in task and b in task and all(a not in readers for (bb, kk), readers in wanted.items() if kk == k):
            wanted.setdefault((b, k), []).append(a)
    for (b, k), readers in sorted(wanted.items()):
        mask = (task[b] == k).view(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        if not w:
            continue
        box = np.s_[y : y + h, x : x + w]
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask[box], connectivity=8)
        big = stats[:, cv2.CC_STAT_AREA] >= min_size
        for a in readers:
            missed = _missed(comp, big, task[a][box], k)
            if missed.any():
                if out[a] is task[a]:
                    out[a] = task[a].copy()
                out[a][box][missed[comp]] = IGNORE_INDEX
    return out


def estimate_with_misses(tasks, num_classes: int, *, iterations: int = 10, **options):
    models = estimate_models(tasks, num_classes, (), iterations=iterations)
    model = estimate_misses(tasks, num_classes, models, **options)
    if not model.drop:
        return models, model
    working = [drop_misses(t, model, num_classes) for t in tasks]
    return estimate_models(working, num_classes, (), iterations=iterations), model


def miss_vote(task, models: BandedModels, model: MissModel, num_classes: int):
    return dawid_skene_vote(drop_misses(task, model, num_classes), models)
