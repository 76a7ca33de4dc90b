import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.demo.crowd import PROFILES, CrowdError, class_pairs, simulate_annotator

U = 255
C = 4


@pytest.fixture(scope="module")
def truth():
    """96x128 scene: background 0, two boxes of class 1, one of 2, a disc of 3, a void band."""
    t = np.zeros((96, 128), dtype=np.uint8)
    t[10:30, 10:40] = 1
    t[50:80, 70:100] = 1
    t[20:60, 60:64] = 2
    yy, xx = np.mgrid[:96, :128]
    t[(yy - 70) ** 2 + (xx - 30) ** 2 < 12**2] = 3
    t[90:, :] = U
    return t


def agreement(a, b):
    both = (a != U) & (b != U)
    return float(np.mean(a[both] == b[both]))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_keeps_void_and_valid_labels(truth, profile):
    out = simulate_annotator(truth, profile, 0, C)
    assert out.dtype == np.uint8 and out.shape == truth.shape
    np.testing.assert_array_equal(out[truth == U], U)
    assert set(np.unique(out)) <= set(range(C)) | {U}


@pytest.mark.parametrize("profile", PROFILES)
def test_same_seed_same_map(truth, profile):
    a = simulate_annotator(truth, profile, np.random.default_rng(7), C)
    b = simulate_annotator(truth, profile, 7, C)
    np.testing.assert_array_equal(a, b)


def test_good_is_close_and_spammer_is_not(truth):
    assert agreement(simulate_annotator(truth, "good", 1, C), truth) > 0.97
    assert agreement(simulate_annotator(truth, "spammer", 1, C), truth) < 0.5
    assert not np.array_equal(simulate_annotator(truth, "spammer", 1, C), simulate_annotator(truth, "spammer", 2, C))


def test_dilated_grows_and_eroded_shrinks_rare_classes(truth):
    rare = truth == 2
    grown = simulate_annotator(truth, "dilated", 0, C, jitter=0) == 2
    shrunk = simulate_annotator(truth, "eroded", 0, C, jitter=0) == 2
    assert grown.sum() > rare.sum() > shrunk.sum()
    assert grown[rare].all() and not shrunk[~rare].any()


@pytest.mark.parametrize("fill, expected", [("unlabeled", U), ("surround", 0)])
def test_misser_with_certain_miss_drops_every_object(truth, fill, expected):
    out = simulate_annotator(truth, "misser", 0, C, background=[0], miss_prob=1.0, miss_fill=fill, jitter=0)
    objects = (truth != 0) & (truth != U)
    assert (out[objects] == expected).all()
    np.testing.assert_array_equal(out[truth == 0], 0)


def test_misser_misses_about_half_the_components():
    t = np.zeros((64, 256), dtype=np.uint8)
    for i in range(40):
        t[4 + (i % 4) * 15 : 12 + (i % 4) * 15, (i // 4) * 25 : (i // 4) * 25 + 8] = 1
    out = simulate_annotator(t, "misser", 3, 2, background=[0], jitter=0)
    kept = np.count_nonzero(out == 1) / np.count_nonzero(t == 1)
    assert 0.25 < kept < 0.75


def test_confuser_swaps_the_given_pairs(truth):
    out = simulate_annotator(truth, "confuser", 0, C, pairs={1: 3, 3: 1}, swap_prob=1.0, jitter=0)
    np.testing.assert_array_equal(out[truth == 1], 3)
    np.testing.assert_array_equal(out[truth == 3], 1)
    np.testing.assert_array_equal(out[truth == 2], 2)


def test_class_pairs_by_name():
    names = ["Sky", "Road", "Pavement"]
    assert class_pairs([("Road", "Pavement")], names) == {1: 2, 2: 1}
    with pytest.raises(CrowdError, match="Sky, Road, Pavement"):
        class_pairs([("Road", "Sidewalk")], names)


def test_unknown_profile_lists_the_valid_ones(truth):
    with pytest.raises(CrowdError, match="good, dilated") as info:
        simulate_annotator(truth, "lazy", 0, C)
    assert isinstance(info.value, PipelineError)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"truth": np.zeros((4, 4), np.int32)}, "uint8"),
        ({"truth": np.full((4, 4), 9, np.uint8)}, "outside"),
        ({"miss_fill": "blur"}, "surround, unlabeled"),
    ],
)
def test_bad_arguments_are_rejected(truth, kwargs, match):
    kwargs = {"truth": truth, "profile": "misser", "rng": 0, "num_classes": C, **kwargs}
    with pytest.raises(CrowdError, match=match):
        simulate_annotator(**kwargs)


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_partial_leaves_about_the_share_unlabelled_and_the_rest_careful(truth, share):
    out = simulate_annotator(truth, "partial", 3, C, unlabeled_share=share)
    labelled_truth = truth != U
    left = np.mean(out[labelled_truth] == U)
    assert abs(left - share) < 0.1
    assert agreement(out, truth) > 0.95
    with pytest.raises(CrowdError, match="unlabeled_share"):
        simulate_annotator(truth, "partial", 3, C, unlabeled_share=1.5)
