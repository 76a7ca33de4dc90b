"""From per-class scores to a consensus label and its confidence, under an undecided policy.

Shapes: K rows (pixels or label combinations), C classes.

Policies (``merge.undecided``):
    ignore   a row whose best score is shared by two or more classes (within ``tie_tol``) is
             undecided and gets 255
    resolve  the best class however slim the margin; exact ties go to the lowest class id
Under both, a row nobody labelled gets 255: there is no evidence to resolve.
"""

from __future__ import annotations

import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError

POLICIES = ("ignore", "resolve")
TIE_TOL = 1e-4  # scores closer than this are tied


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise PipelineError(f"undecided policy {policy!r} is not known; use one of {', '.join(POLICIES)}")
    return policy


def decide(scores: np.ndarray, labelled: np.ndarray, policy: str = "ignore", tie_tol: float = TIE_TOL) -> np.ndarray:
    """Consensus label (K,) uint8 from scores (K, C) and labelled (K,) bool (anyone labelled the row)."""
    check_policy(policy)
    best = scores.max(axis=1, keepdims=True)
    hits = scores >= best - tie_tol
    labels = np.argmax(hits, axis=1).astype(np.uint8)  # first of the tied: the lowest class id
    undecided = ~labelled if policy == "resolve" else (hits.sum(axis=1) != 1) | ~labelled
    labels[undecided] = IGNORE_INDEX
    return labels


def posterior(log_scores: np.ndarray) -> np.ndarray:
    """(K, C) softmax of log scores (K, C), computed stably."""
    shifted = log_scores - log_scores.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def confidence_of(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K,) float32 probability of the chosen label per row of probabilities (K, C); 0 where 255."""
    chosen = np.minimum(labels, probabilities.shape[1] - 1).astype(np.int64)
    out = np.take_along_axis(probabilities, chosen[:, None], axis=1)[:, 0].astype(np.float32)
    out[labels == IGNORE_INDEX] = 0.0
    return out


def vote_shares(votes: np.ndarray) -> np.ndarray:
    """(K, C) share of each class among the votes (K, C) of a row; 0 rows stay 0."""
    total = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, total, out=np.zeros(votes.shape), where=total > 0)


def votes_of(codes: np.ndarray, counts_per_code: int, num_classes: int) -> np.ndarray:
    """(K, C) plain votes per class of label combinations codes (K, A), ``label * counts_per_code + band``.

    Codes at or above ``num_classes * counts_per_code`` are "not labelled" and vote for nothing.
    """
    labels = codes.astype(np.int64) // counts_per_code
    votes = np.zeros((len(codes), num_classes))
    for column in range(codes.shape[1]):
        given = labels[:, column]
        keep = given < num_classes
        votes[np.flatnonzero(keep), given[keep]] += 1
    return votes


def majority_of(votes: np.ndarray) -> np.ndarray:
    """(K,) uint8 plain argmax majority of votes (K, C): ties to the lowest class id, 255 without votes."""
    labels = np.argmax(votes, axis=1).astype(np.uint8)
    labels[votes.max(axis=1) <= 0] = IGNORE_INDEX
    return labels
