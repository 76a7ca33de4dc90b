import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.core.errors import PipelineError
from pipeline.dataset.metrics import (
    MetricsError,
    confusion_matrix,
    dice_per_class,
    iou_per_class,
    mean_iou,
    pairwise_iou,
    pixel_accuracy,
)

# Pairs counted: (0,0) (0,1) (1,1) (2,2) (2,2) (2,0); dropped: truth 255, pred 255, pred 7.
TRUTH = np.array([[0, 0, 1, 255], [1, 2, 2, 2], [0, 1, 2, 2]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 0], [255, 2, 2, 0], [7, 7, 7, 7]], dtype=np.uint8)
CM = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])


def test_confusion_matrix_known_answer_drops_ignore_and_out_of_range():
    cm = confusion_matrix(TRUTH, PRED, num_classes=4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)


def test_confusion_matrix_rows_are_truth():
    cm = confusion_matrix(np.array([0, 0, 0]), np.array([1, 1, 0]), 2)
    np.testing.assert_array_equal(cm, [[1, 2], [0, 0]])


@pytest.mark.parametrize(
    "truth, pred, kwargs, match",
    [
        (np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), {}, "same shape"),
        (np.zeros(3, np.uint8), np.zeros(3, np.uint8), {"ignore_index": 1}, "ignore_index"),
        (np.zeros(3, np.float32), np.zeros(3, np.uint8), {}, "integer"),
        (np.zeros(3, np.uint8), np.zeros(3, np.uint8), {"num_classes": 0}, "num_classes"),
    ],
)
def test_confusion_matrix_rejects_bad_input(truth, pred, kwargs, match):
    kwargs = {"num_classes": 3, **kwargs}
    with pytest.raises(MetricsError, match=match):
        confusion_matrix(truth, pred, **kwargs)
    assert issubclass(MetricsError, PipelineError)


def test_iou_known_answer_with_absent_class():
    np.testing.assert_allclose(iou_per_class(CM), [1 / 3, 1 / 2, 2 / 3, np.nan])
    assert mean_iou(CM) == pytest.approx(0.5)


def test_iou_zero_for_class_in_only_one_side():
    cm = np.array([[2, 1], [0, 0]])  # class 1 predicted once, never true
    np.testing.assert_allclose(iou_per_class(cm), [2 / 3, 0.0])


def test_dice_and_accuracy_known_answer():
    np.testing.assert_allclose(dice_per_class(CM), [0.5, 2 / 3, 0.8, np.nan])
    assert pixel_accuracy(CM) == pytest.approx(4 / 6)


def test_empty_matrix_gives_nan_not_error():
    cm = np.zeros((3, 3), dtype=np.int64)
    assert np.isnan(iou_per_class(cm)).all()
    assert np.isnan(mean_iou(cm))
    assert np.isnan(pixel_accuracy(cm))


def test_non_square_matrix_is_rejected():
    with pytest.raises(MetricsError, match="square"):
        iou_per_class(np.zeros((2, 3)))


def test_pairwise_iou_known_answer_counts_only_pixels_both_labelled():
    a = np.array([[0, 0, 1, 255]], np.uint8)
    b = np.array([[0, 1, 1, 1]], np.uint8)
    c = np.array([[255, 0, 1, 1]], np.uint8)
    # pairs: (a,b) IoU0 1/2, IoU1 1/2; (a,c) 1, 1; (b,c) 0, 2/3; class 2 never seen.
    per_class, overall = pairwise_iou([a, b, c], num_classes=3)
    np.testing.assert_allclose(per_class, [0.5, 13 / 18, np.nan])
    assert overall == pytest.approx(11 / 18)


def test_pairwise_iou_needs_two_maps_and_one_shape():
    per_class, overall = pairwise_iou([np.zeros((2, 2), np.uint8)], 2)
    assert np.isnan(per_class).all() and np.isnan(overall)
    with pytest.raises(MetricsError, match="same shape"):
        pairwise_iou([np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8)], 2)


labels = arrays(np.uint8, 24, elements=st.sampled_from([0, 1, 2, 255]))


@settings(max_examples=50, deadline=None)
@given(labels, labels)
def test_confusion_matrix_properties(t, p):
    cm = confusion_matrix(t, p, 3)
    assert cm.sum() == np.count_nonzero((t < 3) & (p < 3))
    np.testing.assert_array_equal(confusion_matrix(p, t, 3), cm.T)
    np.testing.assert_allclose(iou_per_class(cm), iou_per_class(cm.T))
