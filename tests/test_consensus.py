import json
import pickle

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.dataset.consensus import (
    AnnotatorModels,
    ConsensusError,
    annotator_quality,
    estimate_annotator_models,
    majority_vote,
    quality_report,
    staple,
    weighted_vote,
)
from pipeline.dataset.cooccurrence import label_tuples
from pipeline.dataset.metrics import confusion_matrix

U = 255  # unlabeled


def m(*rows):
    return np.array(rows, dtype=np.uint8)


# columns: clear winner, 2-2 tie, 1-1-1 tie with an abstainer, nobody labelled, lone voter
A = m([0, 0, 0, U, 2])
B = m([0, 0, 1, U, U])
C = m([0, 1, 2, U, U])
D = m([1, 1, U, U, U])


@pytest.mark.parametrize(
    "maps, expected",
    [
        ([A, B, C, D], m([0, U, U, U, 2])),
        ([A, B, C], m([0, 0, U, U, 2])),
        ([A, D], m([U, U, 0, U, 2])),
        ({"x": A, "y": B}, m([0, 0, U, U, 2])),
    ],
)
def test_majority_vote_known_answers(maps, expected):
    np.testing.assert_array_equal(majority_vote(maps, num_classes=3), expected)


def test_majority_vote_infers_num_classes_and_copies_a_single_map():
    np.testing.assert_array_equal(majority_vote([A, B, C]), m([0, 0, U, U, 2]))
    out = majority_vote([A])
    np.testing.assert_array_equal(out, A)
    assert out is not A


@pytest.mark.parametrize(
    "maps, match",
    [
        ([], "no label maps"),
        ([A, m([0, 0])], "one shape"),
        ([A, A.astype(np.int32)], "uint8"),
    ],
)
def test_bad_maps_are_rejected(maps, match):
    with pytest.raises(ConsensusError, match=match):
        majority_vote(maps)
    assert issubclass(ConsensusError, PipelineError)


def symmetric_models(ids, accuracy=0.8, num_classes=3):
    total = 1000
    cm = np.full((num_classes, num_classes), total * (1 - accuracy) / (num_classes - 1))
    np.fill_diagonal(cm, total * accuracy)
    return AnnotatorModels(
        num_classes, {a: cm.round().astype(np.int64) for a in ids}, np.full(num_classes, 100), smoothing=0.0
    )


def test_weighted_vote_ties_and_unlabeled_give_255():
    models = symmetric_models(["x", "y"])
    out = weighted_vote({"x": m([0, 1, U, 2]), "y": m([0, 2, U, U])}, models)
    np.testing.assert_array_equal(out, m([0, U, U, 2]))


def test_weighted_vote_single_annotator_is_a_copy():
    out = weighted_vote({"x": A}, symmetric_models(["y"]))
    np.testing.assert_array_equal(out, A)
    assert out is not A


def test_weighted_vote_trusts_the_reliable_annotator():
    models = symmetric_models(["x", "y", "z"])
    models.confusion["x"][:] = np.diag([1000, 1000, 1000])  # x is never wrong
    out = weighted_vote({"x": m([0, 1]), "y": m([1, 0]), "z": m([1, 0])}, models)
    np.testing.assert_array_equal(out, m([0, 1]))


def test_unknown_annotator_gets_the_neutral_model():
    models = symmetric_models(["x", "y"], accuracy=0.9)
    neutral = models.neutral_log_confusion()
    np.testing.assert_allclose(np.exp(neutral).sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(np.diag(neutral)), 0.9, atol=1e-3)
    out = weighted_vote({"x": m([0, 1]), "y": m([0, 2]), "new": m([0, 2])}, models)
    np.testing.assert_array_equal(out, m([0, 2]))


def planted_project(seed=0, images=12, size=24, num_classes=4):
    """Three noisy-but-honest annotators and two spammers per image; returns truths and tasks."""
    rng = np.random.default_rng(seed)
    truths, tasks = [], []
    for _ in range(images):
        truth = np.repeat(np.repeat(rng.integers(0, num_classes, (4, 4)), size // 4, 0), size // 4, 1)
        truth = truth.astype(np.uint8)
        task = {}
        for a in ("g1", "g2", "g3"):
            noisy = truth.copy()
            flip = rng.random(truth.shape) < 0.3
            noisy[flip] = rng.integers(0, num_classes, flip.sum())
            task[a] = noisy
        for a in ("s1", "s2"):
            task[a] = rng.integers(0, num_classes, truth.shape).astype(np.uint8)
        truths.append(truth)
        tasks.append(task)
    return truths, tasks


def _miou_abstain(truths, merged, num_classes):
    """mIoU where an undecided pixel counts as a miss of its true class."""
    cm = sum(confusion_matrix(t, np.where(p == U, num_classes, p), num_classes + 1) for t, p in zip(truths, merged))
    tp = np.diag(cm)[:num_classes]
    union = cm[:num_classes].sum(1) + cm[:, :num_classes].sum(0) - tp
    return float(np.mean(tp / union))


def test_planted_spammers_weighted_beats_majority_and_spammers_rank_lowest():
    truths, tasks = planted_project()
    models = estimate_annotator_models(tasks, 4, iterations=5)
    weighted = [weighted_vote(t, models) for t in tasks]
    majority = [majority_vote(t, 4) for t in tasks]
    assert _miou_abstain(truths, weighted, 4) > _miou_abstain(truths, majority, 4) + 0.1
    sensitivity = {a: np.exp(np.diag(models.log_confusion(a))).mean() for a in models.confusion}
    assert max(sensitivity["s1"], sensitivity["s2"]) < min(sensitivity[g] for g in ("g1", "g2", "g3"))
    report = quality_report(models)
    assert report["s1"]["mean_iou"] < report["g1"]["mean_iou"]


def test_estimation_reads_each_image_once_and_is_deterministic():
    _, tasks = planted_project(seed=1, images=4)
    calls = []

    def read_tasks():
        calls.append(1)
        return iter(tasks)

    first = estimate_annotator_models(read_tasks, 4, iterations=3)
    second = estimate_annotator_models(tasks, 4, iterations=3)
    third = estimate_annotator_models(iter([label_tuples(t, 4) for t in tasks]), 4, iterations=3)
    assert first.to_dict() == second.to_dict() == third.to_dict()
    assert len(calls) == 1 and first.passes > 1
    shuffled = {a: tasks[0][a] for a in reversed(list(tasks[0]))}
    np.testing.assert_array_equal(weighted_vote(shuffled, first), weighted_vote(tasks[0], first))


def test_estimation_skips_single_annotator_images():
    _, tasks = planted_project(seed=2, images=2)
    models = estimate_annotator_models(tasks + [{"lonely": tasks[0]["g1"]}], 4, iterations=1)
    assert "lonely" not in models.confusion


def test_models_round_trip_through_json():
    _, tasks = planted_project(seed=3, images=2)
    models = estimate_annotator_models(tasks, 4, iterations=2)
    restored = AnnotatorModels.from_dict(json.loads(json.dumps(models.to_dict())))
    assert restored.to_dict() == models.to_dict()
    np.testing.assert_array_equal(weighted_vote(tasks[1], restored), weighted_vote(tasks[1], models))
    with pytest.raises(ConsensusError, match="to_dict"):
        AnnotatorModels.from_dict({"confusion": {}})
    broken = models.to_dict()
    broken["num_classes"] = 5
    with pytest.raises(ConsensusError, match="shapes"):
        AnnotatorModels.from_dict(broken)


def test_models_survive_pickling_for_worker_processes():
    _, tasks = planted_project(seed=4, images=2)
    models = estimate_annotator_models(tasks, 4, iterations=1)
    weighted_vote(tasks[0], models)  # fills the lookup-table cache
    clone = pickle.loads(pickle.dumps(models))
    np.testing.assert_array_equal(weighted_vote(tasks[1], clone), weighted_vote(tasks[1], models))


def test_staple_tiny_case():
    maps = [m([0, 0, 1, U, 2, 0]), m([0, 1, 1, U, 2, 1]), m([0, 0, 1, U, U, U])]
    out = staple(maps, num_classes=3)
    assert out.dtype == np.uint8 and out.shape == (1, 6)
    np.testing.assert_array_equal(out[0, :4], [0, 0, 1, U])  # nobody labelled -> 255
    np.testing.assert_array_equal(staple([A], 3), A)
    np.testing.assert_array_equal(staple([m([0, 1]), m([1, 0])], 2), m([U, U]))


def test_annotator_quality_known_answer():
    cm = np.array([[8, 2, 0], [0, 5, 5], [0, 0, 0]])  # rows consensus, columns annotator
    q = annotator_quality(cm, ["sky", "road", "car"], top_k=2)
    assert q["pixels"] == 20 and q["pixel_accuracy"] == pytest.approx(13 / 20)
    assert q["iou"] == {"sky": pytest.approx(0.8), "road": pytest.approx(5 / 12), "car": 0.0}
    assert q["sensitivity"] == {"sky": pytest.approx(0.8), "road": pytest.approx(0.5), "car": None}
    assert q["top_confusions"][0] == {"consensus": "road", "labelled": "car", "pixels": 5, "share": 0.5}
    assert len(q["top_confusions"]) == 2
    json.dumps(q)
    with pytest.raises(ConsensusError, match="confusion matrix"):
        annotator_quality(cm, ["a", "b"])
