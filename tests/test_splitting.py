"""Group-aware stratified splitting and near-duplicate detection."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core.errors import ParamsError
from pipeline.dataset.splitting import assign_groups, check_fractions, group_of, near_duplicates, perceptual_hash


def test_group_from_field_then_regex_then_own_name() -> None:
    assert group_of("0001TP_006690.png", {}, None, r"^([0-9A-Z]+)_") == "name:0001TP"
    assert group_of("x.png", {"patient": "p7"}, "patient", r"^(\w+)_") == "field:p7"
    assert group_of("lonely.png", {}, None, r"^(\d+)_") == "task:lonely.png"


def test_no_group_spans_two_splits_and_fractions_are_followed() -> None:
    rng = np.random.default_rng(0)
    groups = [f"g{i // 5}" for i in range(200)]
    presence = rng.random((200, 4)) < [0.9, 0.5, 0.2, 0.05]
    splits = assign_groups(presence, groups, np.array([0.7, 0.15, 0.15]), seed=1)
    for group in set(groups):
        assert len({splits[i] for i, g in enumerate(groups) if g == group}) == 1
    shares = np.bincount(splits, minlength=3) / 200
    np.testing.assert_allclose(shares, [0.7, 0.15, 0.15], atol=0.05)
    for split in range(3):  # the rare class reaches every split
        assert presence[splits == split, 3].any()


def test_deterministic_for_a_seed_and_no_wanted_split_left_empty() -> None:
    presence = np.ones((7, 2), bool)
    groups = ["a", "a", "b", "b", "c", "c", "d"]
    first = assign_groups(presence, groups, np.array([0.7, 0.15, 0.15]), seed=3)
    assert (first == assign_groups(presence, groups, np.array([0.7, 0.15, 0.15]), seed=3)).all()
    assert set(first) == {0, 1, 2}


def test_fractions_must_sum_to_one() -> None:
    with pytest.raises(ParamsError, match="sum to 1"):
        check_fractions({"train": 0.8, "val": 0.3})


def test_near_duplicates_across_splits_only() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    other = rng.integers(0, 255, (64, 64), dtype=np.uint8)
    hashes = np.array(
        [
            perceptual_hash(image),
            perceptual_hash(np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8)),
            perceptual_hash(other),
            perceptual_hash(image),
        ],
        dtype=np.uint64,
    )
    pairs = near_duplicates(hashes, np.array([0, 1, 1, 0]), max_bits=6)
    assert {(i, j) for i, j, _ in pairs} == {(0, 1), (1, 3)}
