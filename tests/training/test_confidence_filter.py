"""train.min_label_confidence: training pixels below the consensus confidence are ignored."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.dataset.masks import write_label_map
from pipeline.model.data import Sample, TrainingError, confidence_path, drop_unconfident


def sample(tmp_path: Path, confidence: np.ndarray | None) -> Sample:
    label = tmp_path / "labels" / "7.png"
    label.parent.mkdir(parents=True)
    write_label_map(label, np.array([[0, 1, 2, 255]], np.uint8))
    if confidence is not None:
        confidence_path(label).parent.mkdir()
        write_label_map(confidence_path(label), confidence)
    return Sample(7, tmp_path / "image.png", label, "image.png")


def test_pixels_below_the_threshold_become_ignore(tmp_path):
    s = sample(tmp_path, np.array([[255, 229, 230, 0]], np.uint8))
    label = np.array([[0, 1, 2, 255]], np.uint8)
    assert drop_unconfident(label, s, 0.9).tolist() == [[0, 255, 2, 255]]  # 229 < 229.5 <= 230
    assert drop_unconfident(label, s, 0.0) is label


def test_missing_or_mis_sized_confidence_maps_are_explained(tmp_path):
    label = np.array([[0, 1, 2, 255]], np.uint8)
    with pytest.raises(TrainingError, match="run merge again"):
        drop_unconfident(label, sample(tmp_path / "a", None), 0.5)
    with pytest.raises(TrainingError, match="run merge again"):
        drop_unconfident(label, sample(tmp_path / "b", np.zeros((2, 4), np.uint8)), 0.5)
