"""preannotate against a real Label Studio: visible, exact, replaced not duplicated, robust to deletes and outages."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core.errors import LabelStudioError
from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, PreannotateParams, PullParams, TrainParams
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.config import brush_target
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.model.checkpoint import save_checkpoint
from pipeline.model.models import build_model
from pipeline.review import publish
from pipeline.stages import preannotate, promote, pull
from tests import lsproject

pytestmark = pytest.mark.labelstudio

BASE = BaseParams(seed=0, ignore_index=255, classes=tuple(ClassInfo(n, (9, 9, 9)) for n in lsproject.CLASSES))
PARAMS = PreannotateParams(batch_size=2, push_batch=100, device="cpu")


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    params = TrainParams(architecture="Unet", encoder="mobilenet_v2", encoder_weights=None, base_size=None)
    model = build_model(params.architecture, params.encoder, None, len(lsproject.CLASSES))
    save_checkpoint(path, model, params, list(lsproject.CLASSES), [c.color for c in BASE.classes], 1, 0.0, {})
    return path


def _project(running: server.RunningServer, folder_name: str, count: int, labelled: int, tmp: Path) -> dict:
    folder = running.document_root / folder_name
    folder.mkdir()
    with LabelStudioClient(running.url, running.credentials.token) as client:
        built = lsproject.create_project(client, folder, folder_name.replace("_", " "), count=count)
        for index in range(labelled):
            lsproject.annotate(
                client,
                built,
                index,
                "ann1",
                lsproject.brush_annotation(built.task_ids[index], lsproject.scene(index)[1]),
            )
    with pytest.MonkeyPatch.context() as patch:
        for key, value in running.env().items():
            patch.setenv(key, value)
        pull.run(tmp / "raw", tmp / "images", LabelStudioParams(project=built.id), PullParams(workers=2))
    return {
        "built": built,
        "raw": tmp / "raw",
        "images": tmp / "images",
        "checkpoint": _checkpoint(tmp / "best.pt"),
        "tmp": tmp,
    }


def _run(case: dict, running: server.RunningServer, monkeypatch: pytest.MonkeyPatch) -> dict:
    for key, value in running.env().items():
        monkeypatch.setenv(key, value)
    tmp = case["tmp"]
    return preannotate.run(
        case["raw"],
        case["images"],
        case["checkpoint"],
        None,
        tmp / "preannotate.json",
        tmp / "uncertainty.csv",
        BASE,
        LabelStudioParams(project=case["built"].id),
        PARAMS,
    )


def _predictions(running: server.RunningServer, project_id: int) -> dict[int, list[dict]]:
    with LabelStudioClient(running.url, running.credentials.token) as client:
        return {task["id"]: task["predictions"] for task in client.iter_tasks(project_id)}


@pytest.fixture(scope="module")
def case(label_studio: server.RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _project(label_studio, "preannotate_main", count=5, labelled=2, tmp=tmp_path_factory.mktemp("preannotate"))


def test_unlabeled_tasks_get_one_exact_prediction(case, label_studio, monkeypatch) -> None:
    summary = _run(case, label_studio, monkeypatch)
    ids = case["built"].task_ids
    pairs = [(task, image) for task, image in pull.snapshot_records(case["raw"]) if task["id"] in ids[2:]]
    # The brush tag and image come from the pulled label config (preannotate.brush_tag is null).
    target = brush_target(json.loads((case["raw"] / "project.json").read_text())["label_config"], None, None)
    assert (target.from_name, target.to_name) == ("brush", "image")
    version, records = publish.predict_records(
        [task for task, _ in pairs],
        [case["images"] / image["file"] for _, image in pairs],
        case["checkpoint"],
        BASE,
        PARAMS,
        target,
    )
    assert summary["model_version"] == version and version.startswith("unet-")
    assert summary["predictions_pushed"] == 3
    found = _predictions(label_studio, case["built"].id)
    assert [len(found[i]) for i in ids] == [0, 0, 1, 1, 1]
    for record in records:
        prediction = found[record["task"]][0]
        assert prediction["model_version"] == version
        assert prediction["score"] == pytest.approx(record["score"])
        expected = annotation_to_label_map(record["result"], lsproject.CLASSES).label_map
        back = annotation_to_label_map(prediction["result"], lsproject.CLASSES).label_map
        np.testing.assert_array_equal(back, expected)
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        assert client.find_project(case["built"].id).model_version == version
    rows = (case["tmp"] / "uncertainty.csv").read_text().splitlines()
    assert rows[0] == "task_id,score,regions,link" and len(rows) == 4


def test_rerun_leaves_one_set_and_sends_nothing_unchanged(case, label_studio, monkeypatch) -> None:
    _run(case, label_studio, monkeypatch)
    first = _predictions(label_studio, case["built"].id)
    _run(case, label_studio, monkeypatch)
    again = _predictions(label_studio, case["built"].id)
    assert [len(again[i]) for i in case["built"].task_ids] == [0, 0, 1, 1, 1]
    assert {i: [p["id"] for p in v] for i, v in again.items()} == {i: [p["id"] for p in v] for i, v in first.items()}


def test_prediction_of_a_task_annotated_since_is_kept(case, label_studio, monkeypatch, tmp_path) -> None:
    ids = case["built"].task_ids
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        lsproject.annotate(client, case["built"], 2, "ann2", lsproject.brush_annotation(ids[2], lsproject.scene(2)[1]))
    for key, value in label_studio.env().items():
        monkeypatch.setenv(key, value)
    pull.run(case["raw"], case["images"], LabelStudioParams(project=case["built"].id), PullParams(workers=2))
    summary = _run(case, label_studio, monkeypatch)
    assert summary["predictions_pushed"] == 2
    found = _predictions(label_studio, case["built"].id)
    assert [len(found[i]) for i in ids] == [0, 0, 1, 1, 1]  # task 2 keeps the prediction its annotator saw


def test_task_deleted_since_the_pull_is_skipped(case, label_studio, monkeypatch) -> None:
    gone = case["built"].task_ids[-1]
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        client.sdk.tasks.delete(gone)
    summary = _run(case, label_studio, monkeypatch)
    assert summary["tasks_skipped_deleted"] == [gone] and summary["predictions_pushed"] == 1
    found = _predictions(label_studio, case["built"].id)
    assert [len(found[i]) for i in case["built"].task_ids[:-1]] == [0, 0, 1, 1]


def test_server_lost_mid_push_then_rerun_converges(tmp_path_factory, monkeypatch) -> None:
    data_dir, port = tmp_path_factory.mktemp("outage"), server.free_port()
    running = server.start(data_dir=data_dir, port=port, document_root=data_dir / "files")
    try:
        case = _project(running, "outage", count=103, labelled=0, tmp=tmp_path_factory.mktemp("outage_run"))
        original = LabelStudioClient._import_batch

        def stop_after_first_batch(self, project_id, batch):
            sent = original(self, project_id, batch)
            server.stop(data_dir)  # the server goes away with one batch of two in
            return sent

        monkeypatch.setattr(LabelStudioClient, "_import_batch", stop_after_first_batch)
        monkeypatch.setattr(
            LabelStudioClient,
            "from_env",
            classmethod(lambda cls, **kw: cls(running.url, running.credentials.token, retry_total_s=2)),
        )
        with pytest.raises(LabelStudioError, match=f"cannot reach Label Studio at {running.url}"):
            _run(case, running, monkeypatch)
        monkeypatch.setattr(LabelStudioClient, "_import_batch", original)
        running = server.start(data_dir=data_dir, port=port, document_root=data_dir / "files")
        _run(case, running, monkeypatch)
        found = _predictions(running, case["built"].id)
        assert sorted(len(v) for v in found.values()) == [1] * 103
    finally:
        server.stop(data_dir)


def test_experiment_run_pushes_nothing_and_promote_does(label_studio, tmp_path_factory, monkeypatch) -> None:
    case = _project(label_studio, "experiment_run", count=3, labelled=0, tmp=tmp_path_factory.mktemp("experiment"))
    project_id = case["built"].id
    monkeypatch.setenv("DVC_EXP_NAME", "throwaway-exp")  # what `dvc exp run` sets in a stage's environment
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    summary = _run(case, label_studio, monkeypatch)
    assert summary["pushed"] is False and summary["predictions_pushed"] == 0
    assert "dvc exp run (throwaway-exp)" in summary["not_pushed_because"] and summary["model_version"].startswith(
        "unet-"
    )
    assert len((case["tmp"] / "uncertainty.csv").read_text().splitlines()) == 4  # the reports are still written
    monkeypatch.delenv("DVC_EXP_NAME")
    monkeypatch.delenv("DVC_EXP_BASELINE_REV")
    tmp = case["tmp"]
    no_push = preannotate.run(
        case["raw"],
        case["images"],
        case["checkpoint"],
        None,
        tmp / "p.json",
        tmp / "u.csv",
        BASE,
        LabelStudioParams(project=project_id),
        dataclasses.replace(PARAMS, push=False),
    )
    assert no_push["pushed"] is False and "preannotate.push is false" in no_push["not_pushed_because"]
    assert all(v == [] for v in _predictions(label_studio, project_id).values())
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        assert client.find_project(project_id).model_version is None
    monkeypatch.setenv("DVC_EXP_NAME", "still-an-experiment")  # promote is a person's choice: it pushes regardless
    promoted = promote.run(
        case["checkpoint"],
        tmp / "live.pt",
        case["raw"],
        case["images"],
        None,
        tmp / "promote.json",
        tmp / "promote.csv",
        BASE,
        LabelStudioParams(project=project_id),
        PARAMS,
    )
    assert promoted["pushed"] is True and promoted["predictions_pushed"] == 3
    assert sorted(len(v) for v in _predictions(label_studio, project_id).values()) == [1, 1, 1]
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        assert client.find_project(project_id).model_version == promoted["model_version"] == summary["model_version"]
    assert (tmp / "live.pt").read_bytes() == case["checkpoint"].read_bytes()
