"""Incremental pull on a real Label Studio: only changed, new and deleted tasks move.

The snapshot equals a full pull.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.params import LabelStudioParams, PullParams
from pipeline.labelstudio import incremental, server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull
from tests import lsproject

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def connected(label_studio: server.RunningServer, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The stages' environment for the session server; returns the task ids each selective export asked for."""
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.credentials.token)
    asked: list[list[int]] = []
    real = incremental.export_selected

    def observed(client, project_id, task_ids):
        asked.append(list(task_ids))
        return real(client, project_id, task_ids)

    monkeypatch.setattr(incremental, "export_selected", observed)
    return asked


def _pull(out: Path, project_id: int, incremental_pull: bool = True) -> int:
    return pull.run(
        out / "raw",
        out / "images",
        LabelStudioParams(project=project_id),
        PullParams(workers=2, incremental=incremental_pull),
    )


def test_repull_fetches_only_changes_and_equals_a_full_pull(
    ls_client: LabelStudioClient, project_files: Path, tmp_path: Path, connected
):
    built = lsproject.create_project(ls_client, project_files, "incremental pull", count=6)
    ids = built.task_ids
    for index in range(4):
        lsproject.annotate(
            ls_client, built, index, "ann1", lsproject.brush_annotation(ids[index], lsproject.scene(index)[1])
        )
    assert _pull(tmp_path / "inc", built.id) == 6
    assert connected == []  # no state yet: the first pull is a full export
    assert (tmp_path / "inc" / "raw.pull-state.json").exists()

    before = (tmp_path / "inc" / "raw" / "tasks.jsonl").read_bytes()
    assert _pull(tmp_path / "inc", built.id) == 6
    assert connected == []  # nothing changed: nothing exported
    assert (tmp_path / "inc" / "raw" / "tasks.jsonl").read_bytes() == before

    lsproject.annotate(ls_client, built, 3, "ann2", lsproject.brush_annotation(ids[3], lsproject.scene(3)[1]))
    assert _pull(tmp_path / "inc", built.id) == 6
    assert connected == [[ids[3]]]  # found by the updated_at filter alone (no deletion, no bulk prediction)
    connected.clear()

    lsproject.annotate(ls_client, built, 4, "ann2", lsproject.brush_annotation(ids[4], lsproject.scene(4)[1]))
    ls_client.call("delete a task", ls_client.sdk.tasks.delete, id=ids[1])
    ls_client.import_predictions(built.id, [{"task": ids[2], "result": [], "score": 0.5, "model_version": "m1"}])
    (new_id,) = ls_client.import_tasks(built.id, [{"image": f"/data/local-files/?d={project_files.name}/seq0_000.png"}])
    assert _pull(tmp_path / "inc", built.id) == 6
    assert connected == [sorted([ids[4], ids[2], new_id])]  # counts changed: every fingerprint compared

    assert _pull(tmp_path / "full", built.id, incremental_pull=False) == 6
    for name in ("tasks.jsonl", "project.json"):
        assert (tmp_path / "inc" / "raw" / name).read_bytes() == (tmp_path / "full" / "raw" / name).read_bytes()
    lines = [json.loads(line)["task"] for line in (tmp_path / "inc" / "raw" / "tasks.jsonl").read_text().splitlines()]
    assert ids[1] not in [task["id"] for task in lines] and new_id in [task["id"] for task in lines]
    assert sorted(p.name for p in (tmp_path / "inc" / "images").rglob("*.png")) == sorted(
        p.name for p in (tmp_path / "full" / "images").rglob("*.png")
    )


def test_a_snapshot_the_state_does_not_describe_gets_a_full_pull(
    ls_client: LabelStudioClient, project_files: Path, tmp_path: Path, connected
):
    built = lsproject.create_project(ls_client, project_files, "incremental pull state", count=3)
    _pull(tmp_path, built.id)
    tasks = tmp_path / "raw" / "tasks.jsonl"
    tasks.write_text(
        tasks.read_text().splitlines(keepends=True)[0]
    )  # a different snapshot (e.g. an older version restored)
    assert _pull(tmp_path, built.id) == 3
    assert connected == []  # the state did not match the snapshot: full export
    assert len(tasks.read_text().splitlines()) == 3
