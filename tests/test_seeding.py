"""Seeding a real Label Studio project from images, masks and a simulated crowd."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.demo import seeding
from pipeline.demo.synthetic import CLASSES
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.reading import annotation_to_label_map


@pytest.fixture
def scenes(tmp_path: Path) -> tuple[Path, Path, Path]:
    images, masks = seeding.write_synthetic_images(tmp_path / "scenes", 5, seed=3, size=(48, 64))
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps(list(CLASSES)))
    return images, masks, classes


def test_read_classes_drops_the_void_id(tmp_path: Path) -> None:
    path = tmp_path / "classes.json"
    path.write_text(
        json.dumps(
            {
                "ignore_index": 2,
                "classes": [{"id": 0, "name": "Sky"}, {"id": 1, "name": "Road"}, {"id": 2, "name": "Void"}],
            }
        )
    )
    classes = seeding.read_classes(path)
    assert classes.names == ("Sky", "Road") and classes.void_id == 2


def test_unknown_crowd_profile_lists_valid_ones(scenes, tmp_path: Path) -> None:
    images, masks, _ = scenes
    with pytest.raises(PipelineError, match="valid: good"):
        seeding.plan_seed("x", images, masks, tmp_path, crowd=["genius"])


@pytest.mark.labelstudio
def test_crowd_seeding_creates_annotators_and_leaves_gaps(scenes, label_studio: server.RunningServer) -> None:
    images, masks, classes_file = scenes
    classes = seeding.read_classes(classes_file)
    plan = seeding.plan_seed(
        "seeded crowd",
        images,
        masks,
        label_studio.document_root,
        crowd=["good", "sloppy"],
        unlabeled_every=5,
        unpainted=0,
    )
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        project_id = seeding.seed(client, plan, classes)
        tasks = list(client.iter_tasks(project_id))
        assert len(tasks) == 5
        counts = sorted(len(t["annotations"]) for t in tasks)
        assert counts == [0, 2, 2, 2, 2]
        image = client.download(tasks[0]["data"]["image"])
        assert image[:4] == b"\x89PNG"


@pytest.mark.labelstudio
def test_masks_as_predictions_come_back_exactly(scenes, label_studio: server.RunningServer) -> None:
    images, masks, classes_file = scenes
    classes = seeding.read_classes(classes_file)
    plan = seeding.plan_seed("seeded predictions", images, masks, label_studio.document_root, masks_as="predictions")
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        project_id = seeding.seed(client, plan, classes)
        assert client.find_project(project_id).model_version == "legacy-masks"
        for task, image in zip(sorted(client.iter_tasks(project_id), key=lambda t: t["id"]), plan.images):
            back = annotation_to_label_map(task["predictions"][0]["result"], classes.names).label_map
            np.testing.assert_array_equal(back, seeding.load_mask(plan.masks[image.stem], classes))
