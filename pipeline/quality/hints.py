"""Label-error hints: training tasks whose consensus labels the trained model confidently contradicts.

Shapes legend: H, W label size; C classes.

For one task: `labelled` = pixels whose label is a class (not 255); `disagree` = labelled pixels
where the model's max softmax exceeds the threshold and its class differs from the label. The
task's score is disagree / labelled (0 when nothing is labelled). Tasks are ranked by score,
highest first; ties go to the smaller task id.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.labelstudio import tasks


@dataclasses.dataclass(frozen=True)
class Disagreement:
    task_id: int
    score: float  # disagree / labelled
    disagree: int  # confident, contradicting pixels
    labelled: int  # pixels with a class label
    label_class: int | None  # the most frequent (label, prediction) pair among the disagreeing pixels
    predicted_class: int | None


def disagreement(
    task_id: int, label: np.ndarray, pred: np.ndarray, confidence: np.ndarray, threshold: float, num_classes: int
) -> Disagreement:
    """label, pred: (H, W) uint8; confidence: (H, W) float max softmax."""
    labelled = (label != IGNORE_INDEX) & (label < num_classes)
    wrong = labelled & (confidence > threshold) & (pred != label)
    count, total = int(wrong.sum()), int(labelled.sum())
    pair = (None, None)
    if count:
        codes = label[wrong].astype(np.int64) * num_classes + pred[wrong].astype(np.int64)
        top = int(np.argmax(np.bincount(codes, minlength=num_classes * num_classes)))  # ties: smallest code
        pair = divmod(top, num_classes)
    return Disagreement(task_id, count / total if total else 0.0, count, total, *pair)


def rank(items: list[Disagreement], top: int = 0) -> list[Disagreement]:
    """Highest score first, ties by task id; the first `top` (all when 0)."""
    ordered = sorted(items, key=lambda d: (-d.score, d.task_id))
    return ordered[:top] if top > 0 else ordered


task_link = tasks.task_link  # evaluate's rows link to the task like every other report
