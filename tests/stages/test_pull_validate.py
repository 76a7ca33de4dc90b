"""pull + validate on a real Label Studio project holding good data and every kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, PullParams, ValidateParams
from pipeline.dataset.masks import read_label_map
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull, validate
from tests import lsproject

pytestmark = pytest.mark.labelstudio

BASE = BaseParams(seed=0, ignore_index=255, classes=tuple(ClassInfo(n, (0, 0, 0)) for n in lsproject.CLASSES))
LS_PARAMS = LabelStudioParams(project=0, image_tag="image", control_tags=("brush", "polygon"))


def _brush(task_id: int, label_map: np.ndarray, **value_changes) -> list[dict]:
    result = lsproject.brush_annotation(task_id, label_map)
    for region in result:
        region["value"].update(value_changes)
    return result


@pytest.fixture(scope="module")
def dataset(label_studio: server.RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A project with one good and one bad annotation per bad-input case, pulled and validated."""
    folder = label_studio.document_root / "bad_inputs"
    folder.mkdir()
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        built = lsproject.create_project(client, folder, "bad inputs", count=8)
        (folder / "not_an_image.png").write_text("this is text, not a PNG")
        extra = client.import_tasks(
            built.id,
            [
                {"image": f"/data/local-files/?d={folder.name}/missing.png"},
                {"image": f"/data/local-files/?d={folder.name}/not_an_image.png"},
            ],
        )
        built.task_ids.extend(extra)
        ids, truth = built.task_ids, {i: lsproject.scene(i)[1] for i in range(8)}
        good = {
            i: lsproject.annotate(client, built, i, "ann1", lsproject.brush_annotation(ids[i], truth[i]))
            for i in range(7)
        }
        corrupt = _brush(ids[0], truth[0])
        corrupt[0]["value"]["rle"] = [7, 200, 3, 1, 9, 9]
        truncated = _brush(ids[1], truth[1])
        truncated[0]["value"]["rle"] = truncated[0]["value"]["rle"][:-5]
        wrong_size = _brush(ids[3], truth[3])
        wrong_size[0]["original_width"] = 99
        bad = {
            "corrupt_rle": lsproject.annotate(client, built, 0, "ann2", corrupt),
            "truncated_rle": lsproject.annotate(client, built, 1, "ann2", truncated),
            "unknown_label": lsproject.annotate(
                client, built, 2, "ann2", _brush(ids[2], truth[2], brushlabels=["zebra"])
            ),
            "wrong_size": lsproject.annotate(client, built, 3, "ann2", wrong_size),
            "two_points": lsproject.annotate(
                client, built, 4, "ann2", [lsproject.polygon_result("p2", "car", [(1, 1), (9, 9)])]
            ),
            "outside": lsproject.annotate(
                client, built, 5, "ann2", [lsproject.polygon_result("po", "car", [(100, 100), (120, 100), (110, 130)])]
            ),
            "empty": lsproject.annotate(client, built, 6, "ann2", []),
            "cancelled": lsproject.annotate(client, built, 6, "ann3", [], was_cancelled=True),
            "older_duplicate": lsproject.annotate(
                client, built, 4, "ann3", lsproject.brush_annotation(ids[4], truth[0])
            ),
        }
        bad["newer_duplicate"] = lsproject.annotate(
            client, built, 4, "ann3", lsproject.brush_annotation(ids[4], truth[4])
        )
        bad["on_missing_image"] = lsproject.annotate(
            client, built, 8, "ann1", lsproject.brush_annotation(ids[8], truth[0])
        )
        bad["on_text_file"] = lsproject.annotate(client, built, 9, "ann1", lsproject.brush_annotation(ids[9], truth[0]))
    out = tmp_path_factory.mktemp("dataset")
    env = {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.credentials.token}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        pull.run(out / "raw", out / "images", LabelStudioParams(project=built.id), PullParams(workers=2))
    counts = validate.run(
        out / "raw",
        out / "images",
        out / "annotations",
        out / "validation.json",
        BASE,
        LS_PARAMS,
        ValidateParams(unpainted=None, workers=2),
    )
    report = json.loads((out / "validation.json").read_text())
    return {"built": built, "good": good, "bad": bad, "truth": truth, "out": out, "counts": counts, "report": report}


def _entry(dataset: dict, annotation_id: int) -> tuple[dict, dict]:
    for task in dataset["report"]["tasks"]:
        for annotation in task["annotations"]:
            if annotation["annotation_id"] == annotation_id:
                return task, annotation
    raise KeyError(annotation_id)


@pytest.mark.parametrize(
    ("case", "fate", "words"),
    [
        ("corrupt_rle", "rejected", "rle"),
        ("truncated_rle", "rejected", "rle"),
        ("unknown_label", "rejected", "zebra"),
        ("wrong_size", "rejected", "99"),
        ("two_points", "rejected", "at least 3"),
        ("outside", "rejected", "outside"),
        ("empty", "rejected", "empty"),
        ("cancelled", "skipped", "cancelled"),
        ("older_duplicate", "skipped", "superseded"),
        ("on_missing_image", "rejected", "404"),
        ("on_text_file", "rejected", "not a PNG, JPEG"),
    ],
)
def test_bad_input_is_reported_and_good_data_kept(dataset: dict, case: str, fate: str, words: str) -> None:
    task, entry = _entry(dataset, dataset["bad"][case])
    assert entry["fate"] == fate
    assert words.lower() in entry["reason"].lower()
    assert f"task {task['task_id']}" in entry["reason"] and str(entry["annotation_id"]) in entry["reason"]
    for other in task["annotations"]:
        if other["annotation_id"] in dataset["good"].values():
            assert other["fate"] == "ok"
            saved = read_label_map(dataset["out"] / "annotations" / str(task["task_id"]) / f"{other['annotator']}.png")
            index = dataset["built"].task_ids.index(task["task_id"])
            np.testing.assert_array_equal(saved, dataset["truth"][index])


def test_newest_duplicate_counts(dataset: dict) -> None:
    task, entry = _entry(dataset, dataset["bad"]["newer_duplicate"])
    assert entry["fate"] == "ok"
    saved = read_label_map(dataset["out"] / "annotations" / str(task["task_id"]) / f"{entry['annotator']}.png")
    np.testing.assert_array_equal(saved, dataset["truth"][4])


def test_task_without_annotations_is_a_preannotation_candidate(dataset: dict) -> None:
    unlabeled = next(t for t in dataset["report"]["tasks"] if t["task_id"] == dataset["built"].task_ids[7])
    assert unlabeled["fate"] == "skipped" and "pre-annotation" in unlabeled["reason"]


def test_counts_add_up_to_the_export(dataset: dict) -> None:
    counts = dataset["counts"]
    submitted = len(dataset["good"]) + len(dataset["bad"])
    assert counts["annotations"] == submitted
    assert (
        counts.get("annotations_ok", 0) + counts.get("annotations_rejected", 0) + counts.get("annotations_skipped", 0)
        == submitted
    )
    assert counts["tasks"] == len(dataset["built"].task_ids)
    assert counts["annotations_ok"] == len(dataset["good"]) + 1  # the newer duplicate is good too


def test_pull_is_deterministic_and_refetches_nothing(
    dataset: dict, label_studio: server.RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, images = dataset["out"] / "raw", dataset["out"] / "images"
    before = {p.relative_to(raw.parent): p.read_bytes() for p in [*raw.rglob("*"), *images.rglob("*")] if p.is_file()}
    written = {p: p.stat().st_mtime_ns for p in images.rglob("*") if p.is_file()}
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.credentials.token)
    pull.run(raw, images, LabelStudioParams(project=dataset["built"].id), PullParams(workers=2))
    after = {p.relative_to(raw.parent): p.read_bytes() for p in [*raw.rglob("*"), *images.rglob("*")] if p.is_file()}
    assert after == before
    assert {p: p.stat().st_mtime_ns for p in images.rglob("*") if p.is_file()} == written  # nothing fetched again


def test_failed_pull_leaves_the_snapshot_intact(dataset: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = dataset["out"] / "raw"
    before = (raw / "tasks.jsonl").read_bytes()
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{server.free_port()}")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0" * 40)
    with pytest.raises(Exception, match="cannot reach"):
        pull.run(raw, dataset["out"] / "images", LabelStudioParams(project=dataset["built"].id), PullParams(workers=2))
    assert (raw / "tasks.jsonl").read_bytes() == before
    assert not list(raw.parent.glob(".raw.*"))
