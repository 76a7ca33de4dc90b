"""Real LS projects for each config style, annotated through the API without region ids: pull, validate, pixels.

Params hold nothing but the project id (classes, image tag and control tags from the config).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core.params import BaseParams, LabelStudioParams, MergeParams, PullParams, ValidateParams
from pipeline.dataset.masks import read_label_map
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.config import CLASSES_FILE, with_dataset_classes
from pipeline.stages import merge, pull, validate
from tests import lsproject
from tests.stages import label_configs as lc

pytestmark = pytest.mark.labelstudio
BASE = BaseParams(seed=0, ignore_index=255)  # classes: null


def make_project(
    client: LabelStudioClient, folder: Path, title: str, config: str, data: list[dict]
) -> tuple[int, list[int]]:
    """A project with `config` whose tasks have `data`; every "<name>.png" value becomes a local file."""
    project = client.create_project(title, config)
    client.add_local_storage(project.id, str(folder))

    def local(value):
        if isinstance(value, list):
            return [local(v) for v in value]
        cv2.imwrite(str(folder / value), lsproject.scene(len(value))[0])
        return f"/data/local-files/?d={folder.name}/{value}"

    return project.id, client.import_tasks(project.id, [{k: local(v) for k, v in item.items()} for item in data])


def pull_and_validate(
    label_studio: server.RunningServer,
    project_id: int,
    out: Path,
    ls: LabelStudioParams | None = None,
    unpainted: str | None = None,
) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABEL_STUDIO_URL", label_studio.url)
        patch.setenv("LABEL_STUDIO_API_KEY", label_studio.credentials.token)
        pull.run(out / "raw", out / "images", ls or LabelStudioParams(project=project_id), PullParams(workers=1))
    validate.run(
        out / "raw",
        out / "images",
        out / "annotations",
        out / "validation.json",
        BASE,
        ls or LabelStudioParams(project=project_id),
        ValidateParams(unpainted=unpainted, workers=1),
    )
    return json.loads((out / "validation.json").read_text())


def only_annotation(report: dict) -> dict:
    (task,) = report["tasks"]
    (entry,) = task["annotations"]
    return {**entry, "task_id": task["task_id"]}


def saved_map(out: Path, entry: dict) -> np.ndarray:
    return read_label_map(out / "annotations" / str(entry["task_id"]) / f"{entry['annotator']}.png")


@pytest.fixture
def client(label_studio: server.RunningServer):
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as connected:
        yield connected


def test_masks_template_runs_end_to_end_with_only_the_project(label_studio, client, project_files, tmp_path):
    project_id, (task,) = make_project(client, project_files, "masks template", lc.MASKS_TEMPLATE, [{"image": "m.png"}])
    user = client.ensure_user("painter@example.com")
    car = {**lc.brush_value(2, 2, 20, 10), "brushlabels": ["Car"]}
    airplane = {**lc.brush_value(30, 20, 40, 30), "brushlabels": ["Airplane"]}
    client.create_annotation(
        task,
        [
            lc.result("brushlabels", "tag", "image", car),
            lc.result("brushlabels", "tag", "image", airplane, sizes=False),
        ],
        user,
    )
    report = pull_and_validate(label_studio, project_id, tmp_path, unpainted="background")
    entry = only_annotation(report)
    assert entry["fate"] == "ok", entry["reason"]
    assert report["classes"] == ["background", "Airplane", "Car"] and report["control_tags"] == ["tag"]
    expected = np.zeros((lsproject.HEIGHT, lsproject.WIDTH), np.uint8)  # unpainted = background = 0
    expected[2:10, 2:20], expected[20:30, 30:40] = 2, 1
    np.testing.assert_array_equal(saved_map(tmp_path, entry), expected)
    # merge takes the classes validate wrote, with the config's colours.
    stored = json.loads((tmp_path / "annotations" / CLASSES_FILE).read_text())["classes"]
    assert stored == [
        {"name": "background", "color": [0, 0, 0]},
        {"name": "Airplane", "color": [255, 0, 0]},
        {"name": "Car", "color": [0, 0, 255]},
    ]
    base = with_dataset_classes(BASE, tmp_path / "annotations")
    merge.run(
        tmp_path / "annotations",
        tmp_path / "validation.json",
        tmp_path / "labels",
        tmp_path / "agreement.json",
        base,
        MergeParams(method="majority", workers=1),
    )
    np.testing.assert_array_equal(read_label_map(tmp_path / "labels" / f"{task}.png"), expected)


def test_polygons_template_without_ids_or_sizes(label_studio, client, project_files, tmp_path):
    project_id, (task,) = make_project(
        client, project_files, "polygons template", lc.POLYGONS_TEMPLATE, [{"image": "p.png"}]
    )
    user = client.ensure_user("clicker@example.com")
    airplane = {**lc.polygon_value(4, 4, 24, 16), "polygonlabels": ["Airplane"]}
    client.create_annotation(task, [lc.result("polygonlabels", "label", "image", airplane, sizes=False)], user)
    report = pull_and_validate(label_studio, project_id, tmp_path)
    entry = only_annotation(report)
    assert entry["fate"] == "ok", entry["reason"]
    assert report["classes"] == ["Airplane", "Car"] and report["image_tag"] == "image"
    np.testing.assert_array_equal(saved_map(tmp_path, entry), lc.box(4, 4, 24, 16, 0))


def test_labels_with_tools_are_painted_and_choices_counted(label_studio, client, project_files, tmp_path):
    project_id, (task,) = make_project(client, project_files, "labels and tools", lc.MULTI_TOOL, [{"image": "t.png"}])
    user = client.ensure_user("tools@example.com")
    results = [
        lc.result("brush", "brush", "img", {**lc.brush_value(0, 0, 10, 10), "labels": ["Planet"]}),
        lc.result("polygon", "polygon", "img", {**lc.polygon_value(12, 0, 22, 10), "labels": ["Moon"]}, sizes=False),
        lc.result("rectangle", "rect", "img", {**lc.rectangle_value(24, 0, 34, 10), "labels": ["Planet"]}),
        lc.result("magicwand", "wand", "img", {**lc.brush_value(36, 0, 46, 10), "labels": ["Moon"]}),
        # The editor's form: a labels result and the tool result share a region id.
        {
            "id": "pair1",
            **lc.result("labels", "labels", "img", {**lc.polygon_value(0, 20, 10, 30), "labels": ["Moon"]}),
        },
        {"id": "pair1", **lc.result("polygon", "polygon", "img", lc.polygon_value(0, 20, 10, 30))},
        {"type": "choices", "from_name": "weather", "to_name": "img", "value": {"choices": ["clear"]}},
    ]
    client.create_annotation(task, results, user)
    report = pull_and_validate(label_studio, project_id, tmp_path)
    entry = only_annotation(report)
    assert entry["fate"] == "ok", entry["reason"]
    assert entry["regions"] == 5 and entry["ignored"] == {"choices": 1}
    assert report["classes"] == ["Planet", "Moon"] and report["ignored_results"] == {"choices": 1}
    expected = np.full((lsproject.HEIGHT, lsproject.WIDTH), 255, np.uint8)
    expected[0:10, 0:10], expected[0:10, 12:22], expected[0:10, 24:34], expected[0:10, 36:46] = 0, 1, 0, 1
    expected[20:30, 0:10] = 1
    np.testing.assert_array_equal(saved_map(tmp_path, entry), expected)


def test_regions_of_the_second_image_are_counted_not_painted(label_studio, client, project_files, tmp_path):
    project_id, (task,) = make_project(
        client, project_files, "two images", lc.TWO_IMAGES, [{"left": "l.png", "right": "rr.png"}]
    )
    user = client.ensure_user("twice@example.com")
    left = {**lc.polygon_value(0, 0, 8, 8), "polygonlabels": ["Car"]}
    right = {**lc.polygon_value(30, 30, 50, 40), "polygonlabels": ["Car"]}
    client.create_annotation(
        task,
        [
            lc.result("polygonlabels", "left_poly", "left", left),
            lc.result("polygonlabels", "right_poly", "right", right),
        ],
        user,
    )
    with pytest.raises(Exception, match=r"several <Image> tags.*'left', 'right'.*labelstudio.image_tag"):
        pull_and_validate(label_studio, project_id, tmp_path / "no_tag")
    ls = LabelStudioParams(project=project_id, image_tag="left")
    report = pull_and_validate(label_studio, project_id, tmp_path, ls)
    entry = only_annotation(report)
    assert entry["fate"] == "ok" and entry["ignored"] == {"to_name:right": 1}
    np.testing.assert_array_equal(saved_map(tmp_path, entry), lc.box(0, 0, 8, 8, 0))
    raw = json.loads((tmp_path / "raw" / "tasks.jsonl").read_text().splitlines()[0])
    assert raw["image"]["ref"].endswith("/l.png")  # the left image's $value, not the first data key


def test_value_list_tasks_are_rejected_naming_multi_image_tasks(label_studio, client, project_files, tmp_path):
    project_id, (task,) = make_project(
        client, project_files, "value list", lc.VALUE_LIST, [{"pages": ["a.png", "bb.png"]}]
    )
    user = client.ensure_user("pager@example.com")
    page_two = {
        **lc.result("polygonlabels", "poly", "pages", {**lc.polygon_value(0, 0, 8, 8), "polygonlabels": ["Car"]}),
        "item_index": 1,
    }
    client.create_annotation(task, [page_two], user)
    report = pull_and_validate(label_studio, project_id, tmp_path)
    entry = only_annotation(report)
    assert entry["fate"] == "rejected"
    assert "multi-image" in entry["reason"] and "one image per task" in entry["reason"]
    assert f"task {task}" in entry["reason"]
    assert not (tmp_path / "annotations" / str(task)).exists()  # never two pages on one map


def test_exif_rotated_jpeg_regions_sized_as_displayed(label_studio, client, project_files, tmp_path):
    # LS shows a JPEG turned by its EXIF orientation and sizes regions in that displayed orientation.
    from PIL import Image

    stored = Image.fromarray(lsproject.scene(0)[0])  # 64 wide x 48 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: displayed turned 90 degrees clockwise, 48 wide x 64 high
    stored.save(project_files / "portrait.jpg", exif=exif)
    project_id = client.create_project("exif portrait", lc.POLYGONS_TEMPLATE).id
    client.add_local_storage(project_id, str(project_files))
    (task,) = client.import_tasks(project_id, [{"image": f"/data/local-files/?d={project_files.name}/portrait.jpg"}])
    displayed_w, displayed_h = 48, 64
    points = [[x * 100.0 / displayed_w, y * 100.0 / displayed_h] for x, y in ((4, 40), (20, 40), (20, 60), (4, 60))]
    client.create_annotation(
        task,
        [
            {
                "type": "polygonlabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": displayed_w,
                "original_height": displayed_h,
                "value": {"points": points, "closed": True, "polygonlabels": ["Car"]},
            }
        ],
        client.ensure_user("portrait@example.com"),
    )
    entry = only_annotation(pull_and_validate(label_studio, project_id, tmp_path))
    assert entry["fate"] == "ok", entry["reason"]
    expected = np.full((displayed_h, displayed_w), 255, np.uint8)
    expected[40:60, 4:20] = 1
    np.testing.assert_array_equal(saved_map(tmp_path, entry), expected)
