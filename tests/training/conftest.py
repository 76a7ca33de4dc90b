"""Fixtures for the training tests: one tiny on-disk dataset per test session, small CPU thread counts."""

from __future__ import annotations

import pytest
import torch

from tests.training.synthetic import Layout, make_dataset


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # Two cores, often shared: a second intra-op thread that has to wait for a core turns a 0.1 s step
    # into seconds of spinning. One thread is steady.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    """8 scenes of 64x64 with 3 classes; every split holds all 8 (the tests check mechanics, not generalisation)."""
    return make_dataset(tmp_path_factory.mktemp("synthetic"))
