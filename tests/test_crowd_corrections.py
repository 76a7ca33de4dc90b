"""Missed objects and boundary offsets undone before the Dawid-Skene vote (pipeline.dataset.crowd_corrections)."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.dataset.boundary_offsets import correct, rarity_shift, regrow
from pipeline.dataset.crowd_corrections import estimate_corrected
from pipeline.dataset.object_misses import MissModel, drop_misses
from pipeline.demo.crowd import simulate_annotator


def scene(seed: int) -> np.ndarray:
    """Background 0, a few class-1 disks (r 12) and smaller class-2 disks (r 6)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((120, 160), np.uint8)
    for label, radius, count in ((1, 12, 4), (2, 6, 5)):
        for _ in range(count):
            x, y = int(rng.integers(15, 145)), int(rng.integers(15, 105))
            cv2.circle(out, (x, y), radius, label, -1)
    return out


def test_regrow_undoes_a_dilation_of_the_rarer_classes():
    truth = scene(0)
    dilated = simulate_annotator(truth, "dilated", 0, 3, radius=2, jitter=0.0)
    assert (dilated != truth).mean() > 0.02
    assert (regrow(dilated, -2, 3) != truth).mean() < 0.6 * (dilated != truth).mean()
    assert regrow(truth, 0, 3) is truth


def test_rarity_shift_is_positive_for_a_dilation_and_negative_for_an_erosion():
    truth = scene(1)
    for profile, sign in (("dilated", 1), ("eroded", -1)):
        m = simulate_annotator(truth, profile, 0, 3, radius=2, jitter=0.0)
        area, length = rarity_shift(m, truth, 3)
        assert sign * area / length > 1.0
    area, _ = rarity_shift(truth, truth, 3)
    assert area == 0


def test_pair_correction_moves_the_named_boundary_only():
    m = np.zeros((10, 10), np.uint8)
    m[:, 5:] = 1
    radii = np.zeros((2, 2), np.int64)
    radii[1, 0] = 2  # class 1 pixels within 2 px of class 0 become 0
    out = correct(m, radii, 2)
    assert (out[:, :7] == 0).all() and (out[:, 7:] == 1).all()


def test_drop_misses_unlabels_the_missed_object_only():
    b = np.zeros((40, 40), np.uint8)
    b[5:15, 5:15] = 2
    b[25:35, 25:35] = 2
    a = b.copy()
    a[5:15, 5:15] = 0  # a missed the first object
    model = MissModel({}, frozenset({("a", "b", 2)}), (("a", "b", 2),))
    out = drop_misses({"a": a, "b": b}, model, 3)
    assert (out["a"][5:15, 5:15] == 255).all()
    assert (out["a"][25:35, 25:35] == 2).all() and out["b"] is b
    assert (out["a"][b == 0] == 0).all()


def test_estimate_corrected_is_deterministic_and_finds_the_biased_annotator():
    tasks = []
    for i in range(4):
        truth = scene(10 + i)
        tasks.append(
            {
                "expert": simulate_annotator(truth, "good", [i, 0], 3),
                "fat": simulate_annotator(truth, "dilated", [i, 1], 3, radius=2),
                "careful": simulate_annotator(truth, "good", [i, 2], 3),
            }
        )
    first, second = estimate_corrected(tasks, 3), estimate_corrected(tasks, 3)
    assert first.offsets.radius["fat"] >= 1
    assert first.offsets.radius["expert"] == first.offsets.radius["careful"] == 0
    a, b = first.vote(tasks[0])[0], second.vote(tasks[0])[0]
    assert np.array_equal(a, b)
