"""The Label Studio client against the real local server: no mocks."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core.errors import LabelStudioError, UnsafeReferenceError
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.fetch import ImageFetcher

pytestmark = pytest.mark.labelstudio

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image">
    <Label value="road"/><Label value="car"/><Label value="person"/>
  </BrushLabels>
</View>"""


def _project_with_images(client: LabelStudioClient, folder: Path, count: int, title: str) -> tuple[int, list[int]]:
    project = client.create_project(title, CONFIG)
    client.add_local_storage(project.id, str(folder))
    relative = folder.relative_to(folder.parent)
    tasks = []
    for index in range(count):
        cv2.imwrite(str(folder / f"img{index}.png"), np.full((12, 16, 3), index, np.uint8))
        tasks.append({"image": f"/data/local-files/?d={relative}/img{index}.png"})
    return project.id, client.import_tasks(project.id, tasks)


def test_from_env_names_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY not set"):
        LabelStudioClient.from_env()


def test_find_project_by_id_and_title(ls_client: LabelStudioClient, project_files: Path) -> None:
    project_id, _ = _project_with_images(ls_client, project_files, 1, "find me by title")
    assert ls_client.find_project(project_id).title == "find me by title"
    assert ls_client.find_project(str(project_id)).id == project_id
    assert ls_client.find_project("find me by title").id == project_id
    with pytest.raises(LabelStudioError, match="no project titled"):
        ls_client.find_project("no such project anywhere")


def test_missing_project_is_a_clear_404(ls_client: LabelStudioClient, label_studio: server.RunningServer) -> None:
    with pytest.raises(LabelStudioError, match=f"{label_studio.url} answered HTTP 404"):
        ls_client.find_project(987654)


def test_bad_token_is_a_clear_401_without_the_token(label_studio: server.RunningServer) -> None:
    bad_token = "a" * 40
    with LabelStudioClient(label_studio.url, bad_token) as client, pytest.raises(LabelStudioError) as caught:
        client.find_project(1)
    assert "HTTP 401" in str(caught.value) and label_studio.url in str(caught.value)
    assert bad_token not in str(caught.value)


def test_refused_connection_retries_for_a_bounded_time() -> None:
    url = f"http://127.0.0.1:{server.free_port()}"
    started = time.monotonic()
    with (
        LabelStudioClient(url, "b" * 40, retry_total_s=1.5) as client,
        pytest.raises(LabelStudioError, match="cannot reach"),
    ):
        client.find_project(1)
    assert time.monotonic() - started < 30


def test_tasks_include_cancelled_annotations_over_pages(ls_client: LabelStudioClient, project_files: Path) -> None:
    project_id, task_ids = _project_with_images(ls_client, project_files, 5, "paged tasks")
    annotator = ls_client.ensure_user("pager@example.com")
    assert ls_client.ensure_user("pager@example.com") == annotator
    ls_client.create_annotation(task_ids[0], [], annotator, was_cancelled=True)
    tasks = list(ls_client.iter_tasks(project_id, page_size=2))
    assert sorted(task["id"] for task in tasks) == task_ids
    first = next(task for task in tasks if task["id"] == task_ids[0])
    assert [annotation["was_cancelled"] for annotation in first["annotations"]] == [True]


def test_export_has_expanded_annotators(ls_client: LabelStudioClient, project_files: Path) -> None:
    project_id, task_ids = _project_with_images(ls_client, project_files, 2, "export me")
    annotator = ls_client.ensure_user("exporter@example.com")
    ls_client.create_annotation(task_ids[1], [], annotator, was_cancelled=True)
    exported = json.loads(b"".join(ls_client.export_tasks(project_id)))
    assert sorted(task["id"] for task in exported) == task_ids
    annotation = next(task for task in exported if task["id"] == task_ids[1])["annotations"][0]
    assert annotation["completed_by"]["email"] == "exporter@example.com"


def test_download_through_the_server(ls_client: LabelStudioClient, project_files: Path) -> None:
    project_id, task_ids = _project_with_images(ls_client, project_files, 1, "download image")
    task = next(ls_client.iter_tasks(project_id))
    image = cv2.imdecode(np.frombuffer(ls_client.download(task["data"]["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (12, 16, 3)


@pytest.mark.parametrize(
    "reference",
    [
        "http://169.254.169.254/latest/meta-data",
        "/data/local-files/?d=../../etc/passwd",
        "/data/local-files/?d=/etc/passwd",
    ],
)
def test_unsafe_file_references_are_refused(ls_client: LabelStudioClient, reference: str) -> None:
    with pytest.raises(UnsafeReferenceError), ImageFetcher(ls_client.fetch_settings()) as fetcher:
        fetcher.fetch(reference)


def test_predictions_batch_and_delete_by_model_version(ls_client: LabelStudioClient, project_files: Path) -> None:
    project_id, task_ids = _project_with_images(ls_client, project_files, 3, "prediction batches")
    predictions = [{"task": task_id, "result": [], "score": 0.5, "model_version": "m-1"} for task_id in task_ids]
    assert ls_client.import_predictions(project_id, predictions, batch_size=2) == 3
    assert ls_client.delete_model_version(project_id, "m-1") == 3
    assert ls_client.import_predictions(project_id, predictions) == 3
    ls_client.set_model_version(project_id, "m-1")
    assert ls_client.find_project(project_id).model_version == "m-1"
    counts = [len(task["predictions"]) for task in ls_client.iter_tasks(project_id)]
    assert counts == [1, 1, 1]
