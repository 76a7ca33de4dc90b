"""Missed objects and boundary offsets undone before the Dawid-Skene vote (pipeline.dataset.crowd_corrections)."""

from __future__ import annotations

import json
import pickle

import cv2
import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.parallel import ordered_map
from pipeline.dataset.boundary_offsets import rarity_shift, regrow
from pipeline.dataset.cooccurrence import confusion_against, pixel_keys
from pipeline.dataset.crowd_corrections import CorrectedModels, estimate_corrected, sample_tasks
from pipeline.dataset.dawid_skene import estimate_models
from pipeline.dataset.object_misses import MissModel, drop_misses, miss_counts
from pipeline.dataset.task_consensus import merge_tuples
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
    offsets = first.corrections.offsets
    assert offsets.radius["fat"] >= 1
    assert offsets.radius["expert"] == offsets.radius["careful"] == 0
    a, b = first.vote(tasks[0])[0], second.vote(tasks[0])[0]
    assert np.array_equal(a, b)


def _squares(seed: int, size: int = 64) -> np.ndarray:
    """Class 1 squares (side 8-12) and class 2 squares (side 6) on class 0, none touching."""
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size), np.uint8)
    for row in range(3):
        for col in range(3):
            side, label = (int(rng.integers(8, 13)), 1) if (row + col) % 2 else (6, 2)
            y, x = 4 + 20 * row, 4 + 20 * col
            out[y : y + side, x : x + side] = label
    return out


def test_miss_counts_known_answer():
    b = _squares(0)
    a = b.copy()
    a[b == 2] = 0  # a misses every class-2 square of b
    c = b.copy()  # c draws them too: b's squares are confirmed objects
    counts = miss_counts({"a": a, "b": b, "c": c}, 3)
    assert counts[("a", "b", 2)] == (5, 5) and counts[("a", "b", 1)] == (0, 4)
    assert ("b", "a", 2) not in counts  # a has no class-2 object to miss
    assert counts[("b", "a", 1)] == (0, 4)
    a[:, :32] = 255  # objects in pixels a left unlabelled are not misses
    assert miss_counts({"a": a, "b": b, "c": c}, 3)[("a", "b", 2)][1] < 5


def test_objects_only_one_annotator_draws_are_no_misses_of_the_others():
    b = _squares(0)
    a, c = b.copy(), b.copy()
    b[57:63, 17:23] = 2  # a square only b draws (a neighbour painted over, an invented object)
    counts = miss_counts({"a": a, "b": b, "c": c}, 3)
    assert counts[("a", "b", 2)] == (0, 5) and counts[("c", "b", 2)] == (0, 5)
    assert ("a", "b", 2) not in miss_counts({"a": a, "b": b}, 3)  # two annotators confirm nothing
    c[57:63, 17:23] = 2  # once c draws it too, a misses it
    assert miss_counts({"a": a, "b": b, "c": c}, 3)[("a", "b", 2)] == (1, 6)


def planted_misser(images: int = 6):
    """Two careful annotators and one who misses every class-2 object (painted as background)."""
    truths = [_squares(i) for i in range(images)]
    tasks = []
    for t in truths:
        missed = t.copy()
        missed[t == 2] = 0
        tasks.append({"careful1": t, "careful2": t.copy(), "misser": missed})
    return truths, tasks


def test_a_planted_misser_has_only_their_misses_dropped():
    truths, tasks = planted_misser()
    models = estimate_corrected(tasks, 3)
    assert models.corrections.misses.drop == {("misser", "careful1", 2), ("misser", "careful2", 2)}
    prepared = models.corrections.apply(tasks[0])
    assert (prepared["misser"][truths[0] == 2] == 255).all()
    assert np.array_equal(prepared["misser"][truths[0] != 2], truths[0][truths[0] != 2])
    assert prepared["careful1"] is tasks[0]["careful1"]
    for truth, task in zip(truths, tasks):
        np.testing.assert_array_equal(models.vote(task)[0], truth)


def test_only_corrections_asked_for_are_estimated():
    _, tasks = planted_misser()
    plain = estimate_corrected(tasks, 3, corrections=())
    assert plain.corrections.empty and plain.models.to_dict() == estimate_models(tasks, 3).to_dict()
    with pytest.raises(PipelineError, match="valid: missed_objects, boundary_offsets"):
        estimate_corrected(tasks, 3, corrections=("misses",))


def test_two_annotators_teach_no_correction():
    truth = scene(3)
    tasks = [{"a": truth, "b": simulate_annotator(truth, "dilated", 0, 3, radius=3, jitter=0.0)}] * 3
    models = estimate_corrected(tasks, 3)
    assert models.corrections.empty  # which of two is right is not in the labels


def test_merge_tuples_votes_the_corrected_maps_and_reports_the_annotators_own_labels():
    truths, tasks = planted_misser()
    models = estimate_corrected(tasks, 3)
    for truth, task in zip(truths, tasks):
        result = merge_tuples(*pixel_keys(task, 3), truth.shape, "dawid_skene", models)
        labels, confidence = models.vote(task)
        np.testing.assert_array_equal(result.labels, labels)
        np.testing.assert_array_equal(result.confidence_png(), np.round(255 * confidence).astype(np.uint8))
        # the misser's own map, not the corrected one: their background over the class-2 squares
        np.testing.assert_array_equal(result.annotator_map(result.tuples.annotators.index("misser")), task["misser"])
        column = result.tuples.annotators.index("misser")
        confusion = confusion_against(result.tuples, result.per_tuple, column)
        assert confusion[2, 0] == (truth == 2).sum() and confusion[2, 2] == 0
        assert result.against_majority() == 0.0  # two careful annotators are the majority here


def test_corrected_models_round_trip_through_json_and_pickle():
    _, tasks = planted_misser()
    models = estimate_corrected(tasks, 3)
    restored = CorrectedModels.from_dict(json.loads(json.dumps(models.to_dict())))
    assert restored.corrections.misses.order == models.corrections.misses.order
    np.testing.assert_array_equal(restored.vote(tasks[1])[0], models.vote(tasks[1])[0])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(models)).vote(tasks[1])[0], models.vote(tasks[1])[0])
    with pytest.raises(PipelineError, match="to_dict"):
        CorrectedModels.from_dict({"num_classes": 3})


def _load(key: int) -> dict:
    return planted_misser()[1][key]


def test_estimation_in_worker_processes_equals_the_plain_map():
    def pooled(work, items):
        return (result for _, result in ordered_map(work, items, 2, batch=2))

    here = estimate_corrected(range(6), 3, load=_load)
    there = estimate_corrected(range(6), 3, load=_load, mapper=pooled)
    assert json.dumps(here.to_dict()) == json.dumps(there.to_dict())


def test_sample_tasks_keeps_the_limit_and_tops_up_rare_annotators():
    items = [("a", "b", "c")] * 10 + [("a", "b")] + [("a", "b", "d")] * 3
    chosen = sample_tasks(items, lambda t: t, limit=4, min_per_annotator=2)
    assert chosen == [("a", "b", "c")] * 4 + [("a", "b", "d")] * 2  # two-annotator tasks never
    assert len(sample_tasks(items, lambda t: t, limit=0)) == 13


def test_corrections_from_a_sample_and_the_models_from_every_task():
    _, tasks = planted_misser()
    models = estimate_corrected(tasks[:3], 3, every_task=lambda: iter(tasks))
    assert models.corrections.misses.drop == estimate_corrected(tasks[:3], 3).corrections.misses.drop
    assert np.sum(models.models.class_counts) == pytest.approx(6 * 64 * 64)  # all six tasks' pixels
    assert np.sum(estimate_corrected(tasks[:3], 3).models.class_counts) == pytest.approx(3 * 64 * 64)
