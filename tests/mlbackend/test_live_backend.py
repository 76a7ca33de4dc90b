"""The live path against a real Label Studio: connected, called by LS itself, and retrained from a webhook."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipeline.labelstudio import server
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.mlbackend.connect import connect
from pipeline.mlbackend.serve import follow_versions
from pipeline.model.predictor import load_predictor, predict_files
from tests import lsproject
from tests.mlbackend.helpers import PRE, live_backend, retrieve_predictions, task_predictions, write_checkpoint
from tests.training.synthetic import make_dataset

pytestmark = pytest.mark.labelstudio


def _expected(checkpoint: Path, folder: Path, task_ids: list[int]) -> tuple[str, dict[int, np.ndarray]]:
    """What the batch path's predictor makes of the project's image files: (version, label map per task)."""
    predictor = load_predictor(checkpoint, lsproject.CLASSES, None, "cpu", PRE.threads)
    files = [folder / f"seq{i // 2}_{i:03d}.png" for i in range(len(task_ids))]
    records = predict_files(predictor, files, task_ids, "brush", "image")  # the <BrushLabels> of lsproject.CONFIG
    return predictor.version, {
        r["task"]: annotation_to_label_map(r["result"], lsproject.CLASSES).label_map for r in records
    }


def test_label_studio_stores_the_models_label_maps(
    label_studio: server.RunningServer, project_files: Path, tmp_path: Path
) -> None:
    checkpoint = write_checkpoint(tmp_path / "models/best.pt")
    with live_backend(label_studio, checkpoint, tmp_path) as live:
        built = lsproject.create_project(live.client, project_files, "live predictions", count=3)
        version, expected = _expected(checkpoint, project_files, built.task_ids)
        connection = connect(live.client, built.id, live.url, live.backend.model.announce())
        assert connection.model_version == version and version.startswith("unet-")
        assert live.client.find_project(built.id).model_version == version
        status = httpx.get(f"{live.url}/status").json()
        assert status["health_requests"] >= 1 and status["setup_requests"] >= 1  # LS checked us when connecting
        retrieve_predictions(label_studio, built.id)
        status = httpx.get(f"{live.url}/status").json()
        assert (status["predict_requests"], status["predicted_tasks"]) == (1, 3)  # all tasks in one request
        stored = task_predictions(live.client, built.id)
        for task_id in built.task_ids:
            [prediction] = stored[task_id]
            assert prediction["model_version"] == version
            back = annotation_to_label_map(prediction["result"], lsproject.CLASSES).label_map
            np.testing.assert_array_equal(back, expected[task_id])
        retrieve_predictions(label_studio, built.id)  # nothing left without this version's prediction
        assert httpx.get(f"{live.url}/status").json()["predict_requests"] == 1
        assert status["model"]["loads"] == 1  # loaded once, kept across requests


def test_basic_auth_is_required_when_set(label_studio: server.RunningServer, tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    with live_backend(label_studio, checkpoint, tmp_path, basic_auth=("ls", "s3cret")) as live:
        assert httpx.get(f"{live.url}/health").status_code == 401
        assert httpx.get(f"{live.url}/health", auth=("ls", "wrong")).status_code == 401
        assert httpx.get(f"{live.url}/health", auth=("ls", "s3cret")).json()["status"] == "UP"


def test_refused_image_gets_no_prediction_and_its_reason(label_studio: server.RunningServer, tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    with live_backend(label_studio, checkpoint, tmp_path) as live:
        tasks = [
            {"id": 1, "data": {"image": "http://203.0.113.9/x.png"}},
            {"id": 2, "data": {"image": "/data/local-files/?d=../etc/passwd"}},
            {"id": 3, "data": {}},
        ]
        answer = httpx.post(f"{live.url}/predict", json={"tasks": tasks, "label_config": lsproject.CONFIG}).json()
        assert answer["results"] == [[], [], []]
        assert "pull.allowed_origins" in answer["errors"][0] and "leaves the document root" in answer["errors"][1]
        assert "task 3" in answer["errors"][2]


def test_training_from_the_webhook_changes_the_model_version(
    label_studio: server.RunningServer, project_files: Path, tmp_path: Path
) -> None:
    layout = make_dataset(tmp_path / "train", n=4, size=(32, 32))
    params = tmp_path / "params.yaml"
    classes = "".join(f"\n    - {{name: {name}, color: [9, 9, 9]}}" for name in lsproject.CLASSES)
    params.write_text(
        f"base:\n  seed: 0\n  ignore_index: 255\n  classes:{classes}\n"
        "train:\n  architecture: Unet\n  encoder: mobilenet_v2\n  encoder_weights: null\n  epochs: 1\n"
        "  batch_size: 4\n  base_size: null\n  crop_size: 32\n  workers: 0\n  device: cpu\n  threads: 1\n"
        "  channels_last: false\n  class_weights: null\n"
    )
    models = tmp_path / "models"
    checkpoint = write_checkpoint(models / "best.pt")
    command = (
        f"{sys.executable} -m pipeline train --images {layout.raw} --annotations {layout.annotations} --labels "
        f"{layout.labels} "
        f"--splits {layout.splits} --models {models} --live {tmp_path / 'live'} --params {params}"
    )
    with live_backend(label_studio, checkpoint, tmp_path, train_command=command) as live:
        built = lsproject.create_project(live.client, project_files, "live retrain", count=2)
        before = live.backend.model.announce()
        follow_versions(live.backend, live.client, connect(live.client, built.id, live.url, before))
        first = httpx.post(f"{live.url}/webhook", json={"action": "START_TRAINING", "project": {"id": built.id}})
        second = httpx.post(f"{live.url}/webhook", json={"action": "START_TRAINING", "project": {"id": built.id}})
        assert first.status_code == 201 and first.json()["status"] == "started"
        assert second.json()["status"] == "already running" and second.json()["training"]["runs"] == 1
        assert httpx.get(f"{live.url}/status").json()["training"]["state"] in ("running", "succeeded")
        finished = live.backend.training.wait(600)
        assert finished["state"] == "succeeded", (tmp_path / "train.log").read_text()[-2000:]
        assert "train:" in (tmp_path / "train.log").read_text()
        retrieve_predictions(label_studio, built.id)  # LS asks /setup first: the new best.pt is loaded
        after = httpx.get(f"{live.url}/status").json()["model"]["model_version"]
        assert after != before and after.startswith("unet-")
        assert live.client.find_project(built.id).model_version == after
        stored = task_predictions(live.client, built.id)
        assert all([p["model_version"] for p in stored[t]] == [after] for t in built.task_ids)
