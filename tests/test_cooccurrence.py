"""Label co-occurrence tables: exact pixel bookkeeping, both counting paths, derived confusions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.dataset import cooccurrence
from pipeline.dataset.cooccurrence import LabelTuples, confusion_against, paint, pair_confusion, pixel_keys
from pipeline.dataset.metrics import confusion_matrix


def random_maps(seed: int, annotators: int, num_classes: int, shape=(9, 13)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = np.array([*range(num_classes), 255], np.uint8)
    return {f"a{i}": rng.choice(values, size=shape) for i in range(annotators)}


@pytest.mark.parametrize("annotators", [1, 2, 3, 5])
def test_tuples_paint_back_every_annotator(annotators: int) -> None:
    maps = random_maps(annotators, annotators, 4)
    tuples, pixels = pixel_keys(maps, 4)
    assert tuples.counts.sum() == 9 * 13 and len(np.unique(tuples.codes, axis=0)) == len(tuples.counts)
    for column, name in enumerate(tuples.annotators):
        expected = np.where(maps[name] == 255, 4, maps[name])
        np.testing.assert_array_equal(paint(tuples.codes[:, column], pixels, (9, 13)), expected)


def test_sparse_path_matches_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    maps = random_maps(7, 3, 5)
    dense, dense_pixels = pixel_keys(maps, 5)
    monkeypatch.setattr(cooccurrence, "MAX_DENSE_KEYS", 1)
    sparse, sparse_pixels = pixel_keys(maps, 5)
    as_dict = lambda t: {tuple(row): int(n) for row, n in zip(t.codes.tolist(), t.counts)}  # noqa: E731
    assert as_dict(dense) == as_dict(sparse)
    np.testing.assert_array_equal(dense.codes[dense_pixels], sparse.codes[sparse_pixels])


def test_pair_and_consensus_confusions_match_pixel_counts() -> None:
    maps = random_maps(3, 3, 4)
    tuples, pixels = pixel_keys(maps, 4)
    np.testing.assert_array_equal(pair_confusion(tuples, 0, 2), confusion_matrix(maps["a0"], maps["a2"], 4))
    consensus = tuples.codes[:, 1].copy()
    consensus[consensus == 4] = 255
    np.testing.assert_array_equal(
        confusion_against(tuples, consensus, 0), confusion_matrix(paint(consensus, pixels, (9, 13)), maps["a0"], 4)
    )


def test_round_trips_through_json() -> None:
    tuples = cooccurrence.label_tuples(random_maps(1, 3, 3), 3)
    back = LabelTuples.from_dict(tuples.to_dict(), 3)
    assert back.annotators == tuples.annotators
    np.testing.assert_array_equal(back.codes, tuples.codes)
    np.testing.assert_array_equal(back.counts, tuples.counts)


def test_mismatched_maps_are_refused() -> None:
    with pytest.raises(Exception, match="one shape"):
        pixel_keys({"a": np.zeros((2, 2), np.uint8), "b": np.zeros((3, 2), np.uint8)}, 2)


@pytest.mark.parametrize("annotators, num_classes", [(3, 4), (5, 9)])  # few tuples (uint8 rows) and many (uint16)
def test_index_map_round_trips_and_paints_like_the_pixels(tmp_path, annotators: int, num_classes: int) -> None:
    maps = random_maps(11, annotators, num_classes, shape=(40, 60))
    tuples, pixels = pixel_keys(maps, num_classes)
    assert pixels.dtype == (np.uint8 if len(tuples.counts) <= 256 else np.uint16)
    cooccurrence.write_index_map(tmp_path / "rows.zst", pixels.reshape(40, 60))
    back = cooccurrence.read_index_map(tmp_path / "rows.zst", (40, 60), len(tuples.counts))
    np.testing.assert_array_equal(back.ravel(), pixels)
    labels = np.arange(len(tuples.counts)) % num_classes
    np.testing.assert_array_equal(paint(labels, back, (40, 60)), paint(labels, pixels.astype(np.int64), (40, 60)))


def test_a_damaged_index_map_is_refused(tmp_path) -> None:
    path = tmp_path / "rows.zst"
    path.write_bytes(b"not zstd")
    with pytest.raises(PipelineError, match="run validate again"):
        cooccurrence.read_index_map(path, (4, 4), 3)
    cooccurrence.write_index_map(path, np.zeros((4, 4), np.uint8))
    with pytest.raises(PipelineError, match="not a"):
        cooccurrence.read_index_map(path, (5, 4), 3)
