"""The consensus benchmark's mirrored worlds (bench/crowd_matrix.py): same maps, other truth."""

import numpy as np
import pytest

from bench.crowd_matrix import Annotator, identity_tie, mirrorable, mirrored_truths, simulate_cell, thin

EXPERT = Annotator("a0-expert", "expert", {"profile": "good"})
SWAPPER = Annotator("a1-swapper", "swapper", {"profile": "confuser", "swap_prob": 0.5})
SPAMMER = Annotator("a2-spammer", "spammer", {"profile": "spammer"})
DILATOR = Annotator("a2-bias", "bias", {"profile": "dilated", "radius": 2})


@pytest.fixture(scope="module")
def vessels():
    return thin(2, seed=5)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def profiles(*crowd: Annotator) -> list[str]:
    return [p.profile for p in crowd]


def test_only_expert_swapper_and_spammers_mirror(vessels):
    assert mirrorable(profiles(EXPERT, SWAPPER, SPAMMER)) and mirrorable(profiles(SPAMMER, SWAPPER, EXPERT))
    assert not mirrorable(profiles(EXPERT, SWAPPER, DILATOR))  # the dilator's classes side with one truth
    assert not mirrorable(profiles(EXPERT, SPAMMER))
    assert mirrored_truths(vessels, [EXPERT, SWAPPER, DILATOR], 5, 3004) is None


def test_mirrored_truth_is_the_swappers_reading(vessels):
    crowd = [EXPERT, SWAPPER, SPAMMER]
    tasks = simulate_cell(vessels, crowd, 5, 3004)
    mirror = mirrored_truths(vessels, crowd, 5, 3004)
    for truth, other, task in zip(vessels.truths, mirror, tasks):
        changed = truth != other
        assert changed.any()  # whole vessels swapped, each to its related class
        np.testing.assert_array_equal(other[changed], [vessels.pairs[int(k)] for k in truth[changed]])
        # the same maps read both ways: the swapper is to the mirrored truth what the expert is to the truth
        assert agreement(task[SWAPPER.name], other) > agreement(task[SWAPPER.name], truth)
        assert agreement(task[EXPERT.name], truth) > agreement(task[EXPERT.name], other)
        assert abs(agreement(task[SWAPPER.name], other) - agreement(task[EXPERT.name], truth)) < 0.005


def test_identity_ties_are_one_swapper_and_one_other_informative_annotator():
    assert identity_tie(profiles(DILATOR, SPAMMER, SWAPPER))  # the dilator alone says which class is right
    assert identity_tie(profiles(EXPERT, SWAPPER, SPAMMER, SPAMMER))
    assert not identity_tie(profiles(EXPERT, SWAPPER, DILATOR))  # two against the swapper
    assert not identity_tie(profiles(EXPERT, DILATOR, SPAMMER))  # nobody swaps
    assert not identity_tie(profiles(SWAPPER, SPAMMER, SPAMMER))  # nobody else
    assert not mirrorable(profiles(DILATOR, SPAMMER, SWAPPER))  # a tie, but the dilator errs otherwise too
