"""`dvc repro` on a real Label Studio project: outputs, a no-op second run, and a restorable version."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from tests import lsproject

pytestmark = pytest.mark.labelstudio
PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOSTILE_REFERENCES = [
    "/api/current-user/token",
    "/api/users/",
    "/api/current-user/whoami",
    "/data/upload/%2e%2e/%2e%2e/api/current-user/token",
]


def _assert_no_token(token: str, *paths: Path) -> None:
    for folder in paths:
        for path in [folder] if folder.is_file() else folder.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path


def _environment(label_studio: server.RunningServer) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LABEL_STUDIO_")}
    environment.update(
        label_studio.env(),
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@localhost",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@localhost",
    )
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
    return environment


def _run(command: list[str], cwd: Path, environment: dict) -> str:
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def _make_repository(root: Path, project_id: int, remote: Path) -> None:
    for name in ("pipeline", ".dvc", "dvc.yaml", ".dvcignore", ".gitignore"):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp"))
        else:
            shutil.copy2(source, root / name)
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    # Classes, image tag and control tags come from the project's label config: only the project is set.
    params["labelstudio"].update(project=project_id)
    params["validate"]["unpainted"] = None
    params["split"].update(group_regex="^(seq\\d+)_")
    params["train"].update(
        epochs=2,
        batch_size=2,
        base_size=None,
        crop_size=32,
        scale_range=[1.0, 1.0],
        workers=0,
        encoder="mobilenet_v2",
        encoder_weights=None,
        device="cpu",
    )
    params["evaluate"].update(workers=0, batch_size=2, overlays_worst=1, overlays_random=1, device="cpu")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    config = (root / ".dvc" / "config").read_text().replace("../../segpipe-dvc-storage", str(remote))
    (root / ".dvc" / "config").write_text(config)


@pytest.fixture(scope="module")
def repository(label_studio: server.RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = label_studio.document_root / "dvc_repro"
    folder.mkdir()
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        built = lsproject.create_project(client, folder, "dvc repro", count=8)
        for index in range(7):  # the last task stays unlabeled
            truth = lsproject.scene(index)[1]
            lsproject.annotate(client, built, index, "ann1", lsproject.brush_annotation(built.task_ids[index], truth))
            sloppy = truth.copy()
            sloppy[:, :3] = 255
            lsproject.annotate(client, built, index, "ann2", lsproject.brush_annotation(built.task_ids[index], sloppy))
            if index % 2 == 0:
                box = [(5, 30), (60, 30), (60, 47), (5, 47)]
                lsproject.annotate(client, built, index, "ann3", [lsproject.polygon_result("road", "road", box)])
        # Hostile tasks: image references that would fetch the token or every user's e-mail with it.
        hostile = client.import_tasks(built.id, [{"image": path} for path in HOSTILE_REFERENCES])
        client.create_annotation(
            hostile[0], lsproject.brush_annotation(hostile[0], lsproject.scene(0)[1]), built.users["ann1"]
        )
    root = tmp_path_factory.mktemp("repository")
    environment = _environment(label_studio)
    remote = tmp_path_factory.mktemp("remote")
    _make_repository(root, built.id, remote)
    _run(["git", "init", "-q"], root, environment)
    _run(["git", "add", "-A"], root, environment)
    _run(["git", "commit", "-qm", "pipeline"], root, environment)
    first = _run(["dvc", "repro", "split"], root, environment)
    return {
        "root": root,
        "built": built,
        "environment": environment,
        "first": first,
        "token": label_studio.credentials.token,
        "remote": remote,
        "hostile": hostile,
    }


def test_repro_writes_every_output(repository: dict) -> None:
    root, built = repository["root"], repository["built"]
    labelled = built.task_ids[:7]
    assert sorted(int(p.stem) for p in (root / "data/labels").glob("*.png")) == sorted(labelled)
    split_ids = {name: (root / f"data/splits/{name}.txt").read_text().split() for name in ("train", "val", "test")}
    assert sorted(int(i) for ids in split_ids.values() for i in ids) == sorted(labelled)
    groups = {name: {labelled.index(int(i)) // 2 for i in ids} for name, ids in split_ids.items()}
    assert (
        not (groups["train"] & groups["val"])
        and not (groups["train"] & groups["test"])
        and not (groups["val"] & groups["test"])
    )
    agreement = json.loads((root / "data/reports/agreement.json").read_text())
    assert set(agreement["annotators"]) == {f"u{uid}" for uid in built.users.values()}
    assert agreement["summary"]["tasks"] == 7
    card = (root / "data/reports/dataset.md").read_text()
    assert "| train |" in card


def test_second_repro_changes_nothing(repository: dict) -> None:
    root = repository["root"]
    lock = (root / "dvc.lock").read_text()
    output = _run(["dvc", "repro", "split"], root, repository["environment"])
    for stage in ("validate", "merge", "split"):
        assert f"Stage '{stage}' didn't change, skipping" in output
    assert (root / "dvc.lock").read_text() == lock


def test_repro_trains_both_models_and_evaluates(repository: dict) -> None:
    root = repository["root"]
    _run(["dvc", "repro", "evaluate"], root, repository["environment"])
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert 0.0 <= metrics["mIoU"] <= 1.0
    comparison = json.loads((root / "reports/comparison.json").read_text())
    assert len(comparison["models"]) == 2
    for picture in ("reports/confusion.png", "reports/comparison.png", "reports/train/unet/curves.png"):
        assert (root / picture).read_bytes()[:4] == b"\x89PNG"
    assert list((root / "reports/overlays").glob("*.png"))
    assert (root / "reports/suspect_labels.csv").read_text().startswith("rank,")
    assert "Stage 'evaluate' didn't change" in _run(["dvc", "repro", "evaluate"], root, repository["environment"])


def test_token_reaches_no_file(repository: dict) -> None:
    root, token = repository["root"], repository["token"]
    assert token not in repository["first"]  # the stages' own output (logs)
    _assert_no_token(token, root / "dvc.lock", root / "data", root / ".dvc", root / "models", root / "reports")
    _run(["dvc", "push", "-q"], root, repository["environment"])
    assert list(repository["remote"].rglob("*")), "dvc push sent nothing"
    _assert_no_token(token, repository["remote"])


def test_hostile_tasks_are_rejected_without_fetching(repository: dict) -> None:
    report = json.loads((repository["root"] / "data/reports/validation.json").read_text())
    fates = {task["task_id"]: task for task in report["tasks"]}
    for task_id in repository["hostile"]:
        assert fates[task_id]["fate"] == "rejected" and "refused" in fates[task_id]["reason"]


def test_released_version_comes_back_byte_for_byte(repository: dict, tmp_path: Path) -> None:
    root, environment = repository["root"], repository["environment"]
    _run(["dvc", "push", "-q"], root, environment)
    _run(["git", "add", "-A"], root, environment)
    _run(["git", "commit", "-qm", "dataset v1"], root, environment)
    _run(["git", "tag", "dataset-v1"], root, environment)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", "--branch", "dataset-v1", str(root), str(clone)], tmp_path, environment)
    _run(["dvc", "pull", "-q"], clone, environment)
    _assert_no_token(repository["token"], clone)  # the clone, its DVC cache and its outputs
    original = {p.name: p.read_bytes() for p in (root / "data/labels").glob("*.png")}
    restored = {p.name: p.read_bytes() for p in (clone / "data/labels").glob("*.png")}
    assert restored == original and original
    np.testing.assert_array_equal(
        np.frombuffer(restored[min(restored)], np.uint8), np.frombuffer(original[min(original)], np.uint8)
    )
