"""Masks sent to a real Label Studio come back exactly; predictions replace, never duplicate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.results import label_map_to_brush_results
from tests import lsproject

pytestmark = pytest.mark.labelstudio


def test_brush_and_polygon_annotations_round_trip(ls_client: LabelStudioClient, project_files: Path) -> None:
    built = lsproject.create_project(ls_client, project_files, "round trip")
    _, truth = lsproject.scene(0)
    brush_id = lsproject.annotate(ls_client, built, 0, "ann1", lsproject.brush_annotation(built.task_ids[0], truth))
    polygons = [
        lsproject.polygon_result("p-car", "car", [(5.2, 8.1), (25.7, 8.1), (25.7, 20.4), (5.2, 20.4)]),
        lsproject.polygon_result("p-person", "person", [(45.5, 5.5), (52.0, 24.9), (40.3, 24.0)]),
    ]
    polygon_id = lsproject.annotate(ls_client, built, 0, "ann2", polygons, lead_time=12.5)
    cancelled_id = lsproject.annotate(ls_client, built, 0, "ann3", [], was_cancelled=True)

    exported = {task["id"]: task for task in json.loads(b"".join(ls_client.export_tasks(built.id)))}
    annotations = {a["id"]: a for a in exported[built.task_ids[0]]["annotations"]}
    assert set(annotations) == {brush_id, polygon_id, cancelled_id}
    assert annotations[cancelled_id]["was_cancelled"] is True
    assert annotations[polygon_id]["completed_by"]["email"] == "ann2@example.com"

    brush_back = annotation_to_label_map(annotations[brush_id]["result"], lsproject.CLASSES, height=48, width=64)
    np.testing.assert_array_equal(brush_back.label_map, truth)
    sent_polygons = annotation_to_label_map(polygons, lsproject.CLASSES, height=48, width=64).label_map
    polygon_back = annotation_to_label_map(annotations[polygon_id]["result"], lsproject.CLASSES, height=48, width=64)
    np.testing.assert_array_equal(polygon_back.label_map, sent_polygons)
    # pixel centres (c + 0.5) inside x 5.2..25.7 and y 8.1..20.4: columns 5..25, rows 8..19
    assert (sent_polygons == 1).sum() == 21 * 12
    assert exported[built.task_ids[1]]["annotations"] == []


def test_predictions_pushed_twice_leave_one_set(ls_client: LabelStudioClient, project_files: Path) -> None:
    built = lsproject.create_project(ls_client, project_files, "prediction twice")
    maps = {task_id: lsproject.scene(i)[1] for i, task_id in enumerate(built.task_ids)}
    predictions = [
        {
            "task": task_id,
            "model_version": "unet-abc123",
            "score": 0.25 + i / 10,
            "result": label_map_to_brush_results(
                label_map, lsproject.CLASSES, task_id=task_id, from_name="brush", to_name="image"
            ),
        }
        for i, (task_id, label_map) in enumerate(maps.items())
    ]
    for _ in range(2):
        ls_client.delete_model_version(built.id, "unet-abc123")
        ls_client.import_predictions(built.id, predictions)
    ls_client.set_model_version(built.id, "unet-abc123")
    for task in ls_client.iter_tasks(built.id):
        assert len(task["predictions"]) == 1
        prediction = task["predictions"][0]
        assert prediction["model_version"] == "unet-abc123"
        back = annotation_to_label_map(prediction["result"], lsproject.CLASSES, height=48, width=64)
        np.testing.assert_array_equal(back.label_map, maps[task["id"]])
    assert ls_client.find_project(built.id).model_version == "unet-abc123"
