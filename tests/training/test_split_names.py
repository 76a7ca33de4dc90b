"""Split names are the free keys of split.fractions: train and evaluate read the ones their params name."""

from __future__ import annotations

import csv

import pytest

from pipeline.core.errors import ArtifactError
from pipeline.core.params import EvaluateParams
from pipeline.model.checkpoint import load_checkpoint
from pipeline.stages import evaluate, train
from tests.training.synthetic import base_params, make_dataset, tiny_params

RENAMED = {"fit": slice(0, 6), "holdout": slice(6, 8), "exam": slice(0, 8)}


@pytest.fixture(scope="module")
def renamed(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("renamed"), splits=RENAMED)


def test_train_and_evaluate_use_the_split_names_of_their_params(renamed, tmp_path):
    params = tiny_params(epochs=1, train_split="fit", val_split="holdout")
    summary = train.run(
        renamed.raw,
        renamed.annotations,
        renamed.labels,
        renamed.splits,
        tmp_path / "models",
        tmp_path / "live",
        base_params(),
        params,
    )
    assert summary["best_miou"] is not None  # validated on `holdout`
    assert load_checkpoint(tmp_path / "models/best.pt")["params"]["train_split"] == "fit"
    evaluate.run(
        renamed.raw,
        renamed.annotations,
        renamed.labels,
        renamed.splits,
        [tmp_path / "models/best.pt"],
        tmp_path / "reports",
        base_params(),
        EvaluateParams(split="exam", workers=0, device="cpu", overlays_worst=1, overlays_random=0),
    )
    with open(tmp_path / "reports/suspect_labels.csv") as handle:
        suspects = {int(row["task_id"]) for row in csv.DictReader(handle)}
    assert suspects == {100 + i for i in range(6)}  # every task of the split the model was trained on, no other


def test_a_split_that_is_not_there_names_the_splits_and_the_param(renamed, tmp_path):
    with pytest.raises(ArtifactError, match=r"'val' is not in .* \(it holds exam, fit, holdout\); set train.val_split"):
        train.run(
            renamed.raw,
            renamed.annotations,
            renamed.labels,
            renamed.splits,
            tmp_path / "models",
            tmp_path / "live",
            base_params(),
            tiny_params(epochs=1, train_split="fit"),
        )
