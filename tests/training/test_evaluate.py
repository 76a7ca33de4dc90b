"""The evaluate stage's outputs, and the label-error hints and overlay choice behind them."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from pipeline.core.errors import TrainingError
from pipeline.core.params import EvaluateParams
from pipeline.dataset.masks import read_label_map
from pipeline.model.checkpoint import save_checkpoint
from pipeline.model.models import build_model
from pipeline.quality import hints
from pipeline.stages import evaluate
from tests.training.synthetic import CLASSES, base_params, make_dataset, tiny_params


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained Unet and FCN8s checkpoints: evaluate's bookkeeping does not depend on training."""
    folder = tmp_path_factory.mktemp("models")
    base, paths = base_params(), []
    for name, architecture in (("unet", "Unet"), ("fcn8s", "FCN8s")):
        params = tiny_params(architecture=architecture, base_size=48)  # evaluated at 48 px, scored at 64
        model = build_model(architecture, params.encoder, None, len(CLASSES))
        paths.append(folder / name / "best.pt")
        paths[-1].parent.mkdir()
        save_checkpoint(paths[-1], model, params, base.names, base.palette, 1, float("nan"), {})
    return paths


def _evaluate(dataset, checkpoints, reports, **changes):
    params = EvaluateParams(**{"overlays_worst": 2, "overlays_random": 3, "workers": 0, "device": "cpu", **changes})
    return evaluate.run(
        dataset.raw,
        dataset.annotations,
        dataset.labels,
        dataset.splits,
        checkpoints,
        reports,
        base_params(),
        params,
        dataset.validation,
    )


def test_evaluate_writes_consistent_reports(dataset, checkpoints, tmp_path):
    metrics = _evaluate(dataset, checkpoints, tmp_path)
    labelled = sum(int((read_label_map(p) != 255).sum()) for p in dataset.labels.glob("*.png"))
    confusion = json.loads((tmp_path / "confusion.json").read_text())
    cm = np.array(confusion["matrix"])
    assert confusion["classes"] == list(CLASSES) and (confusion["rows"], confusion["columns"]) == (
        "actual",
        "predicted",
    )
    assert cm.sum() == labelled  # every labelled test pixel once, at full resolution; 255 never counted
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics == {
        "model": str(checkpoints[0]),
        "split": "test",
        "images": 8,
        **evaluate.summarize(cm, list(CLASSES)),
    }
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    assert [m["architecture"] for m in comparison["models"]] == ["Unet", "FCN8s"]
    assert comparison["models"][0]["mIoU"] == metrics["mIoU"]
    table = (tmp_path / "comparison.md").read_text()
    assert "| Unet | resnet18 |" in table and "| FCN8s | resnet18 |" in table
    for picture in ("confusion.png", "comparison.png"):
        assert cv2.imread(str(tmp_path / picture)) is not None


def test_overlays_show_worst_and_random_images(dataset, checkpoints, tmp_path):
    _evaluate(dataset, checkpoints[:1], tmp_path)
    names = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert [n.split("_task")[0] for n in names] == ["random_01", "random_02", "random_03", "worst_01", "worst_02"]
    assert len({n.split("_task")[1] for n in names}) == 5  # five different images
    picture = cv2.imread(str(tmp_path / "overlays" / names[0]))
    scale = 3  # 64 px panels are enlarged to at least 160 px
    assert picture.shape == (64 * scale + 32, 4 * 64 * scale + 12, 3)


def test_suspect_labels_rank_training_tasks_with_links(dataset, checkpoints, tmp_path):
    _evaluate(dataset, checkpoints[:1], tmp_path, suspect_threshold=0.0, suspect_top=5)
    with open(tmp_path / "suspect_labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        label = read_label_map(dataset.labels / f"{row['task_id']}.png")
        assert int(row["labelled_pixels"]) == int((label != 255).sum())
        assert float(row["score"]) == pytest.approx(int(row["disagree_pixels"]) / int(row["labelled_pixels"]), abs=1e-6)
        assert row["link"] == f"/projects/7/data?task={row['task_id']}"
        assert row["image_name"] == f"scene_{row['task_id']}.png"


def test_evaluate_refuses_checkpoints_of_other_classes(tmp_path, checkpoints):
    other = make_dataset(tmp_path / "data", n=2)
    base = base_params()
    model = build_model("Unet", "resnet18", None, 2)
    save_checkpoint(tmp_path / "two.pt", model, tiny_params(), ["a", "b"], base.palette[:2], 1, 0.0, {})
    with pytest.raises(TrainingError, match="train it again"):
        _evaluate(other, [tmp_path / "two.pt"], tmp_path / "reports")
    with pytest.raises(TrainingError, match="no checkpoint"):
        _evaluate(other, [], tmp_path / "reports")


def test_disagreement_counts_confident_contradictions_only():
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 255], [2, 2, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 0], [0, 1, 2, 0], [2, 1, 1, 0]], np.uint8)
    confidence = np.array([[0.99, 0.95, 0.9, 0.5], [0.99, 0.97, 0.99, 0.99], [0.9, 0.99, 0.9, 0.99]], np.float32)
    found = hints.disagreement(7, label, pred, confidence, threshold=0.9, num_classes=3)
    # labelled: 10 pixels; wrong and confident (> 0.9): (0,1) 0->1, (1,1) 0->1, (1,2) 1->2, (2,1) 2->1
    assert (found.disagree, found.labelled, found.score) == (4, 10, 0.4)
    assert (found.label_class, found.predicted_class) == (0, 1)
    empty = hints.disagreement(8, np.full((2, 2), 255, np.uint8), pred[:2, :2], confidence[:2, :2], 0.9, 3)
    assert (empty.score, empty.label_class) == (0.0, None)


def test_rank_orders_by_score_then_task_id():
    items = [hints.Disagreement(t, s, 0, 1, None, None) for t, s in ((5, 0.1), (3, 0.5), (4, 0.5), (1, 0.0))]
    assert [d.task_id for d in hints.rank(items)] == [3, 4, 5, 1]
    assert [d.task_id for d in hints.rank(items, top=2)] == [3, 4]
    assert hints.task_link(12, 34) == "/projects/12/data?task=34" and hints.task_link(None, 34) == ""


def test_pick_overlays_takes_the_worst_then_seeded_others():
    scores = [0.9, 0.1, float("nan"), 0.5, 0.1]
    picks = evaluate.pick_overlays(scores, worst=2, random=2, seed=0)
    assert picks[:2] == [("worst", 1), ("worst", 4)]
    assert {i for _, i in picks[2:]} <= {0, 2, 3} and len(picks) == 4
    assert picks == evaluate.pick_overlays(scores, worst=2, random=2, seed=0)
