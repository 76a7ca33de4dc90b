"""review-stats on a hand-made snapshot: what the human changed, and the time it took."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, ValidateParams
from pipeline.labelstudio.results import label_map_to_brush_results
from pipeline.stages import review_stats

CLASSES = ["background", "car"]
BASE = BaseParams(0, 255, tuple(ClassInfo(n, (0, 0, 0)) for n in CLASSES))


def _brush(task_id: int, label_map: np.ndarray) -> list[dict]:
    return label_map_to_brush_results(label_map, CLASSES, task_id=task_id, from_name="brush", to_name="image")


def test_effect_of_predictions(tmp_path: Path) -> None:
    predicted = np.zeros((10, 10), np.uint8)
    predicted[2:6, 2:6] = 1  # 16 car pixels
    corrected = predicted.copy()
    corrected[2:6, 6:8] = 1  # the human adds 8 more
    with_prediction = {
        "id": 1,
        "predictions": [
            {"id": 5, "model_version": "unet-1", "created_at": "2026-01-01T00:00:00Z", "result": _brush(1, predicted)}
        ],
        "annotations": [
            {"id": 7, "created_at": "2026-01-02T00:00:00Z", "lead_time": 20.0, "result": _brush(1, corrected)}
        ],
    }
    later_prediction = {  # predicted after the human annotated: does not count as pre-annotated
        "id": 2,
        "predictions": [
            {"id": 6, "model_version": "unet-1", "created_at": "2026-02-01T00:00:00Z", "result": _brush(2, predicted)}
        ],
        "annotations": [
            {"id": 8, "created_at": "2026-01-02T00:00:00Z", "lead_time": 80.0, "result": _brush(2, corrected)},
            {"id": 9, "was_cancelled": True, "result": []},
        ],
    }
    raw = tmp_path / "raw"
    raw.mkdir()
    config = (
        '<View><Image name="image" value="$image"/><BrushLabels name="brush" toName="image">'
        '<Label value="background"/><Label value="car"/></BrushLabels></View>'
    )
    (raw / "project.json").write_text(json.dumps({"id": 1, "title": "t", "label_config": config}))
    (raw / "tasks.jsonl").write_text(
        "".join(json.dumps({"task": t, "image": {}}) + "\n" for t in (with_prediction, later_prediction))
    )
    summary = review_stats.run(
        raw,
        tmp_path / "effect.json",
        BASE,
        LabelStudioParams(project=1, control_tags=("brush",)),
        ValidateParams(unpainted="background"),
    )
    assert summary["annotations_with_prediction"] == 1 and summary["annotations_without_prediction"] == 1
    assert summary["changed_pixel_share"]["median"] == 0.08
    car_iou, background_iou = 16 / 24, 76 / 84
    assert summary["prediction_iou"]["median"] == round((car_iou + background_iou) / 2, 4)
    assert summary["median_lead_time_saved"] == 0.75
    report = json.loads((tmp_path / "effect.json").read_text())
    assert list(report["by_model_version"]) == ["unet-1"]


def test_corrected_against_from_scratch_per_class_and_version(tmp_path: Path) -> None:
    predicted = np.zeros((10, 10), np.uint8)
    predicted[0:4, 0:5] = 1  # 20 car pixels predicted
    corrected = predicted.copy()
    corrected[0:4, 4] = 0  # started from the prediction: 4 of them taken back
    scratch = np.zeros((10, 10), np.uint8)
    scratch[5:9, 5:10] = 1  # drawn from scratch: a car elsewhere, nothing kept
    prediction = {
        "id": 5,
        "model_version": "unet-2",
        "created_at": "2026-01-01T00:00:00Z",
        "result": _brush(1, predicted),
    }
    tasks = [
        {
            "id": 1,
            "predictions": [prediction],
            "annotations": [
                {"id": 7, "created_at": "2026-01-02T00:00:00Z", "parent_prediction": 5, "result": _brush(1, corrected)}
            ],
        },
        {
            "id": 2,
            "predictions": [{**prediction, "id": 6, "result": _brush(2, predicted)}],
            "annotations": [{"id": 8, "created_at": "2026-01-02T00:00:00Z", "result": _brush(2, scratch)}],
        },
    ]
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "tasks.jsonl").write_text("".join(json.dumps({"task": t, "image": {}}) + "\n" for t in tasks))
    summary = review_stats.run(
        raw,
        tmp_path / "effect.json",
        BASE,
        LabelStudioParams(project=1, control_tags=("brush",)),
        ValidateParams(unpainted="background"),
    )
    start = summary["start"]
    assert (start["corrected"]["n"], start["from_scratch"]["n"]) == (1, 1)
    assert start["corrected"]["per_class"]["car"] == {"n": 1, "iou": 0.8, "changed": 0.2}
    assert start["from_scratch"]["per_class"]["car"] == {"n": 1, "iou": 0.0, "changed": 1.0}
    assert start["corrected"]["per_class"]["background"]["changed"] == 0.0
    report = json.loads((tmp_path / "effect.json").read_text())
    assert report["by_model_version"]["unet-2"]["start"]["corrected"]["n"] == 1
    table = (tmp_path / "effect.md").read_text()
    assert "| car | 0.800 | 0.000 | 0.200 | 1.000 |" in table and "model_version unet-2" in table
