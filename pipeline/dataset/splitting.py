"""Group-aware, class-stratified, deterministic train/val/test assignment, and near duplicates.

Shapes: T = tasks, G = groups, C = classes, S = splits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.core.errors import ParamsError


def group_of(image_name: str, data: dict, group_field: str | None, group_regex: str | None) -> str:
    """The group a task belongs to: a task-data field, else the regex's first group on the file name.

    A task that matches neither is its own group (keyed by its file name).
    """
    if group_field:
        value = data.get(group_field)
        if value is not None and value != "":
            return f"field:{value}"
    if group_regex:
        match = re.search(group_regex, image_name)
        if match:
            return f"name:{match.group(1) if match.groups() else match.group(0)}"
    return f"task:{image_name}"


def check_fractions(fractions: dict) -> tuple[list[str], np.ndarray]:
    """Split names and fractions (S,), which must be non-negative and sum to 1."""
    names = list(fractions)
    values = np.asarray([fractions[name] for name in names], dtype=float)
    if not names or (values < 0).any() or abs(values.sum() - 1.0) > 1e-6:
        raise ParamsError(f"split.fractions must be non-negative and sum to 1, got {fractions}")
    return names, values


def assign_groups(presence: np.ndarray, groups: Sequence[str], fractions: np.ndarray, seed: int) -> np.ndarray:
    """Assign every task to a split index so that no group spans two splits.

    presence: (T, C) bool, class c occurs in task t.  fractions: (S,) summing to 1.
    Returns (T,) int split indices.

    Iterative stratification over groups: groups holding the rarest classes are placed first
    (seeded shuffle breaks ties), each into the split whose per-class and task-count targets
    are relatively furthest from being met; when only as many groups remain as wanted splits
    are empty, those splits get them. Deterministic for a given seed and input order.
    """
    group_names, group_index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    num_groups, num_splits = len(group_names), len(fractions)
    group_presence = np.zeros((num_groups, presence.shape[1]), np.int64)
    np.add.at(group_presence, group_index, presence.astype(np.int64))
    group_sizes = np.bincount(group_index, minlength=num_groups)
    class_totals = group_presence.sum(0)
    wanted_classes = fractions[:, None] * class_totals[None, :]  # (S, C)
    wanted_tasks = fractions * len(group_index)  # (S,)
    have_classes = np.zeros_like(wanted_classes)
    have_tasks = np.zeros(num_splits)
    rng = np.random.default_rng(seed)
    rarity = np.where(group_presence > 0, class_totals[None, :], np.iinfo(np.int64).max).min(1)
    order = np.lexsort((rng.permutation(num_groups), rarity))
    split_of_group = np.empty(num_groups, np.int64)
    open_splits = fractions > 0
    for placed, g in enumerate(order):
        classes = group_presence[g] > 0
        # Relative deficits: a rare class reaches every split before the big split fills up on it.
        class_need = ((wanted_classes - have_classes)[:, classes] / np.maximum(wanted_classes[:, classes], 1e-9)).mean(
            1
        )
        task_need = (wanted_tasks - have_tasks) / np.maximum(wanted_tasks, 1e-9)
        empty = open_splits & (have_tasks == 0)
        # When only as many groups are left as splits still empty, fill those: no wanted split stays empty.
        allowed = empty if 0 < empty.sum() >= num_groups - placed else open_splits
        score = np.where(allowed, class_need + task_need, -np.inf)
        best = int(np.argmax(score))  # argmax takes the first split on ties: deterministic
        split_of_group[g] = best
        have_classes[best] += group_presence[g]
        have_tasks[best] += group_sizes[g]
    return split_of_group[group_index]


def perceptual_hash(image: np.ndarray) -> np.uint64:
    """64-bit DCT hash of an image (H, W[, 3]); near-identical pictures differ in few bits."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])  # the DC term would dominate the median
    return np.uint64(int("".join("1" if b else "0" for b in bits), 2))


def near_duplicates(
    hashes: np.ndarray, splits: np.ndarray, max_bits: int, block: int = 2048
) -> list[tuple[int, int, int]]:
    """Pairs (i, j, distance) of tasks in different splits whose hashes differ in <= max_bits bits.

    hashes: (T,) uint64; splits: (T,) int.
    """
    pairs = []
    for start in range(0, len(hashes), block):
        rows = hashes[start : start + block]
        distances = np.bitwise_count(rows[:, None] ^ hashes[None, :])  # (block, T)
        close = (distances <= max_bits) & (splits[start : start + block, None] != splits[None, :])
        for i, j in zip(*np.nonzero(close)):
            if start + i < j:
                pairs.append((int(start + i), int(j), int(distances[i, j])))
    return pairs
