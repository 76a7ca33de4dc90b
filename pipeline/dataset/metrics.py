"""Segmentation metrics from one confusion matrix, and agreement between annotators.

Shapes legend:
    H, W   label map height and width
    C      number of classes; valid labels are 0..C-1
    N      number of label maps (annotators) of one image

Every metric here starts from a confusion matrix ``cm`` of shape (C, C):
rows are the reference (truth, consensus), columns the prediction (model,
annotator). A pixel counts only when both of its labels lie in [0, C); any
other value (255 = ignore / unlabeled, void, out-of-range ids) is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError


class MetricsError(PipelineError):
    """Label maps or confusion matrices that a metric cannot be computed from."""


def confusion_matrix(
    truth: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Count (truth, prediction) label pairs with one ``np.bincount``.

    truth, pred: integer arrays of the same shape (e.g. (H, W)).
    Returns (C, C) int64, ``cm[t, p]`` = pixels with truth t predicted p.
    Pixels whose truth or prediction lies outside [0, C) are dropped, which is
    how ``ignore_index`` (255) is ignored; ``ignore_index`` must lie outside
    [0, C) so that it cannot be mistaken for a class.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise MetricsError(f"truth and prediction must have the same shape, got {truth.shape} and {pred.shape}")
    if num_classes < 1:
        raise MetricsError(f"num_classes must be >= 1, got {num_classes}")
    if 0 <= ignore_index < num_classes:
        raise MetricsError(
            f"ignore_index {ignore_index} is a valid class id for num_classes={num_classes}; "
            "use a value outside [0, num_classes), e.g. 255"
        )
    for name, arr in (("truth", truth), ("prediction", pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise MetricsError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    keep = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes)
    flat = np.bincount(t[keep] * num_classes + p[keep], minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _check_cm(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim < 2 or cm.shape[-1] != cm.shape[-2]:
        raise MetricsError(f"expected square (C, C) confusion matrices, got shape {cm.shape}")
    return cm.astype(np.float64)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """Intersection over union per class: TP / (TP + FP + FN).

    cm: (C, C), or (..., C, C) for several at once. Returns (C,) (or (..., C)) float64;
    NaN for a class absent from both the truth and the prediction (0 / 0), 0.0 for a class
    present in only one.
    """
    cm = _check_cm(cm)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(axis=-2) + cm.sum(axis=-1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction (NaN-mean); NaN if none."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def dice_per_class(cm: np.ndarray) -> np.ndarray:
    """Dice (F1) per class: 2 TP / (2 TP + FP + FN). cm: (C, C) -> (C,), NaN when absent from both."""
    cm = _check_cm(cm)
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)


def pixel_accuracy(cm: np.ndarray) -> float:
    """Share of counted pixels whose prediction equals the truth; NaN when nothing was counted."""
    cm = _check_cm(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def pairwise_iou(maps: Sequence[np.ndarray], num_classes: int) -> tuple[np.ndarray, float]:
    """Agreement between annotators of one image as mean pairwise IoU.

    maps: N label maps (H, W) of the same image, 255 = unlabeled.
    Returns (per_class (C,) float64, overall float).

    Definition (the one used in every agreement report): for each unordered
    pair of annotators (i, j), take only the pixels that both labelled (value
    in [0, C) in both maps) and compute the per-class IoU of map i against
    map j from their confusion matrix (IoU is symmetric, so the order does not
    matter). A class absent from both maps of a pair is NaN for that pair.
    ``per_class[k]`` is the mean over pairs of the pair IoUs of class k,
    skipping NaN (NaN when no pair saw class k); ``overall`` is the NaN-mean
    of ``per_class``. With fewer than two maps there is no pair and both are
    NaN.
    """
    if len(maps) < 2:
        return np.full(num_classes, np.nan), float("nan")
    shape = np.shape(maps[0])
    if any(np.shape(m) != shape for m in maps):
        raise MetricsError(f"all label maps must have the same shape, got {[np.shape(m) for m in maps]}")
    return mean_pair_iou([confusion_matrix(a, b, num_classes) for a, b in combinations(maps, 2)])


def mean_pair_iou(pair_confusions: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """`pairwise_iou` from the (C, C) confusion matrix of each annotator pair (both-labelled pixels)."""
    pair_ious = iou_per_class(np.stack(pair_confusions))  # (pairs, C)
    seen = np.isfinite(pair_ious)
    pairs_seen = seen.sum(axis=0)
    # NaN-means written out: numpy's nanmean warns on, and spends most of its time checking for, all-NaN columns.
    per_class = np.where(seen, pair_ious, 0.0).sum(axis=0) / np.where(pairs_seen > 0, pairs_seen, np.nan)
    classes_seen = np.isfinite(per_class)
    overall = float(per_class[classes_seen].sum() / classes_seen.sum()) if classes_seen.any() else float("nan")
    return per_class, overall
