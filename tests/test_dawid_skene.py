"""Dawid-Skene by soft EM, edge bands, the undecided policy and boundary bias, on tiny arrays."""

import json

import cv2
import numpy as np
import pytest

from pipeline.core.errors import ParamsError, PipelineError
from pipeline.core.params import BaseParams, ClassInfo, MergeParams
from pipeline.dataset.boundary_bias import boundary_offsets
from pipeline.dataset.cooccurrence import pixel_keys
from pipeline.dataset.dawid_skene import BandedModelError, BandedModels, dawid_skene_vote, estimate_models
from pipeline.dataset.decision import decide
from pipeline.dataset.edge_bands import band_map, banded_tuples, check_bands, edge_mask, unbanded, zone_map
from pipeline.dataset.task_consensus import merge_tuples
from pipeline.stages import merge

U = 255


def square(size=24, lo=8, hi=16, grow=0):
    """(size, size) uint8: class 1 square [lo - grow, hi + grow) on class 0."""
    m = np.zeros((size, size), np.uint8)
    m[lo - grow : hi + grow, lo - grow : hi + grow] = 1
    return m


def test_band_map_counts_chessboard_distance_from_own_edges():
    m = square(12, 4, 8)
    bands = band_map(m, (2, 4))
    # the column through the square: edges at rows 3|4 and 7|8
    assert bands[:, 6].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    assert bands[0, 0] == 2 and bands[1, 2] == 1
    assert band_map(np.zeros((5, 5), np.uint8), (2, 4)).max() == 2  # no edge: all in the last band
    assert edge_mask(m).sum() == 12 + 16  # both sides of every edge: the inner ring and the outer one


@pytest.mark.parametrize("bands, match", [((4, 2), "increasing"), ((0,), "increasing"), ((2, 4, 8, 16), "fit")])
def test_bad_bands_are_refused(bands, match):
    with pytest.raises(PipelineError, match=match):
        check_bands(bands, 60)


def test_banded_tuples_keep_labels_and_pixels():
    maps = {"a": square(), "b": square(grow=1), "c": np.where(square(grow=-2) == 1, 1, U).astype(np.uint8)}
    banded, index = banded_tuples(maps, 2, (2, 4))
    assert banded.counts.sum() == 24 * 24 and banded.num_classes == 6
    labels = unbanded(banded, 3)
    for column, name in enumerate(banded.annotators):
        rebuilt = np.where(labels.codes[:, column] < 2, labels.codes[:, column], U)[index].reshape(24, 24)
        np.testing.assert_array_equal(rebuilt, maps[name])
    plain, _ = pixel_keys(maps, 2)
    assert len(banded.counts) >= len(plain.counts)  # bands only split combinations


def planted_crowd(images=6):
    """Squares of varied size: two careful annotators, one who paints every object 2 px too large."""
    truths = [square(32, 6 + i % 4, 20 + i % 5) for i in range(images)]
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    return truths, [{"careful1": t, "careful2": t.copy(), "dilator": cv2.dilate(t, kernel)} for t in truths]


def test_banded_estimation_finds_the_planted_boundary_bias():
    truths, tasks = planted_crowd()
    models = estimate_models(tasks, 2, (2, 4))
    rate = {a: cm[:, 0, 1] / cm[:, 0, :].sum(axis=1) for a, cm in models.confusion.items()}  # P(says 1 | 0, band)
    assert rate["dilator"][0] > 0.1 and rate["dilator"][2] < 0.01  # wrong next to its own edges only
    assert rate["careful1"].max() < 0.01
    for truth, task in zip(truths, tasks):
        labels, confidence = dawid_skene_vote(task, models)
        np.testing.assert_array_equal(labels, truth)
        assert confidence.min() > 0.5 and confidence.dtype == np.float32


def test_estimation_is_deterministic_and_round_trips():
    _, tasks = planted_crowd()
    first, second = estimate_models(tasks, 2, (2,)), estimate_models(lambda: iter(tasks), 2, (2,))
    assert first.to_dict() == second.to_dict()
    restored = BandedModels.from_dict(json.loads(json.dumps(first.to_dict())))
    np.testing.assert_allclose(restored.evidence("dilator"), first.evidence("dilator"), atol=1e-3)
    with pytest.raises(BandedModelError, match="to_dict"):
        BandedModels.from_dict({"num_classes": 2, "edge_bands": [2], "confusion": {"a": [[1]]}, "class_counts": [1, 1]})


def test_two_annotator_projects_get_a_plain_vote_ties_to_the_lowest_class():
    a, b = np.array([[0, 1, 2, U]], np.uint8), np.array([[0, 2, 1, U]], np.uint8)
    models = estimate_models([{"a": a, "b": b}] * 3, 3)
    assert models.confusion == {}
    labels, confidence = dawid_skene_vote({"a": a, "b": b}, models)
    assert labels.tolist() == [[0, 1, 1, U]] and confidence[0, 3] == 0


def test_undecided_policy():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    labelled = np.array([True, True, False])
    assert decide(scores, labelled, "ignore").tolist() == [U, 1, U]
    assert decide(scores, labelled, "resolve").tolist() == [0, 1, U]
    with pytest.raises(PipelineError, match="ignore, resolve"):
        decide(scores, labelled, "toss")


def test_majority_confidence_and_against_majority():
    a = np.array([[0, 0, 1, 1]], np.uint8)
    b = np.array([[0, 1, 1, 0]], np.uint8)
    c = np.array([[0, 1, U, 2]], np.uint8)
    tuples, index = pixel_keys({"a": a, "b": b, "c": c}, 3)
    result = merge_tuples(tuples, index, (1, 4), "majority", None, "ignore")
    assert result.labels.tolist() == [[0, 1, 1, U]]
    assert result.confidence_png().tolist() == [[255, 170, 255, 0]]  # 3/3, 2/3, 2/2, undecided
    assert result.against_majority() == 0.0
    resolved = merge_tuples(tuples, index, (1, 4), "majority", None, "resolve")
    assert resolved.labels.tolist() == [[0, 1, 1, 0]]


@pytest.mark.parametrize("grow, expected", [(0, 0.0), (2, 2.0), (-2, -2.0)])
def test_boundary_offsets_measure_a_planted_shift(grow, expected):
    consensus = square(32, 10, 22)
    [(signed, unsigned, counts)] = boundary_offsets([square(32, 10, 22, grow)], consensus, 2)
    assert counts[1] > 0
    assert signed[1] / counts[1] == pytest.approx(expected, abs=0.35)  # corners sit a little further out
    assert unsigned[1] / counts[1] == pytest.approx(abs(expected), abs=0.35)


def test_merge_tuples_with_bands_matches_the_direct_vote():
    _, tasks = planted_crowd()
    models = estimate_models(tasks, 2, (2, 4))
    for task in tasks:
        result = merge_tuples(*pixel_keys(task, 2), (32, 32), "dawid_skene", models)
        labels, confidence = dawid_skene_vote(task, models)
        np.testing.assert_array_equal(result.labels, labels)
        np.testing.assert_array_equal(result.confidence_png(), np.round(255 * confidence).astype(np.uint8))
        offsets = result.boundary_offsets()
        signed, _, counts = offsets["dilator"]
        assert signed[1] / counts[1] == pytest.approx(2.0, abs=0.35)  # the planted 2 px, seen from the consensus
        assert abs(offsets["careful1"][0][1]) < 1e-9


@pytest.mark.parametrize(
    "change, match",
    [
        ({"undecided": "toss"}, "merge.undecided"),
        ({"edge_bands": (4, 2)}, "merge.edge_bands"),
        ({"method": "median"}, "merge.method"),
    ],
)
def test_merge_stage_refuses_bad_params_before_reading(tmp_path, change, match):
    base = BaseParams(0, 255, (ClassInfo("a", (0, 0, 0)), ClassInfo("b", (1, 1, 1))))
    with pytest.raises(ParamsError, match=match):
        merge.run(tmp_path, tmp_path / "v.json", tmp_path / "out", tmp_path / "r.json", base, MergeParams(**change))


def test_zone_map_is_the_band_of_the_nearest_edge_anyone_drew():
    left, right = square(12, 2, 4), square(12, 8, 10)
    zones = zone_map({"a": left, "b": right}, (2,))
    np.testing.assert_array_equal(zones, np.minimum(band_map(left, (2,)), band_map(right, (2,))))
    tuples, rows = banded_tuples({"a": left, "b": right}, 2, (2,), zones=True)
    labelled = tuples.codes < 4
    assert (tuples.codes[labelled] // 2 <= 1).all()
    digits = np.where(labelled, tuples.codes % 2, -1)
    assert all(len(set(row[row >= 0])) == 1 for row in digits)  # one zone per pixel, whoever labelled it
    assert tuples.counts.sum() == 144 and rows.shape == (144,)


def test_zone_models_put_the_dilators_errors_next_to_the_boundary_and_keep_a_prior_per_zone():
    truths, tasks = planted_crowd()
    models = estimate_models(tasks, 2, (2, 4), zones=True)
    assert models.zones and np.asarray(models.class_counts).shape == (3, 2)
    prior = np.exp(models.log_prior())
    assert prior[0, 1] > 1.5 * prior[2, 1]  # object pixels are commoner next to a boundary than inside regions
    rate = {a: cm[:, 0, 1] / cm[:, 0, :].sum(axis=1) for a, cm in models.confusion.items()}  # P(says 1 | 0, zone)
    assert rate["dilator"][:2].max() > 0.1 and rate["dilator"][2] < 0.01
    restored = BandedModels.from_dict(json.loads(json.dumps(models.to_dict())))
    assert restored.zones
    for truth, task in zip(truths, tasks):
        labels, _ = dawid_skene_vote(task, models)
        np.testing.assert_array_equal(labels, truth)
        np.testing.assert_array_equal(dawid_skene_vote(task, restored)[0], labels)
        result = merge_tuples(*pixel_keys(task, 2), truth.shape, "dawid_skene", models)
        np.testing.assert_array_equal(result.labels, labels)


def test_edge_bands_and_boundary_zones_are_exclusive(tmp_path):
    base = BaseParams(0, 255, (ClassInfo("a", (0, 0, 0)), ClassInfo("b", (1, 1, 1))))
    with pytest.raises(ParamsError, match="choose one"):
        merge.run(
            tmp_path, tmp_path / "v.json", tmp_path / "out", tmp_path / "r.json", base, MergeParams(edge_bands=(2,))
        )


def test_too_many_classes_for_zones_fall_back_to_one_zone():
    assert merge.zones_that_fit(MergeParams(), 84).boundary_zones == (2, 4)
    assert merge.zones_that_fit(MergeParams(), 85).boundary_zones == ()
