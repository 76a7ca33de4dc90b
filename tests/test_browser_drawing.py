"""Drawn in the real editor: Debian's Chromium, driven by Playwright, draws on each config style.

Then pull and validate.

For every style (LS's two segmentation templates, <Labels> + every tool, two <Image> tags,
valueList) a person's strokes are replayed with the mouse on a 160 x 120 image shown about 5x enlarged.
Polygons and rectangles are clicked on pixel corners, so the pixels they cover are known
without any rasteriser; a brush stroke's pixels are whatever the editor stored, decoded by the
SDK's own decoder, and must lie along the stroked path.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from pipeline.core.params import BaseParams, LabelStudioParams, PullParams, ValidateParams
from pipeline.dataset.masks import read_label_map
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.regions import fill_ellipse
from pipeline.stages import pull, validate
from tests import lsproject
from tests.stages import label_configs as lc
from tests.test_browser import browser  # noqa: F401  (the fixture that launches Debian's Chromium)

pytestmark = pytest.mark.labelstudio
W, H = 160, 120


class Editor:
    """The labelling page of one task, with image-pixel coordinates for the mouse."""

    def __init__(self, page, url: str):
        self.page, self.url = page, url

    def open(self, project_id: int, task_id: int) -> None:
        self.page.goto(f"{self.url}/projects/{project_id}/data?task={task_id}")
        self.page.locator("img[src^='blob:']").first.wait_for(timeout=60_000)
        self.page.get_by_role("button", name="Submit").wait_for(timeout=30_000)

    def at(self, x: float, y: float, image: int = 0) -> tuple[float, float]:
        box = self.page.locator("img[src^='blob:']").nth(image).bounding_box()
        scale = box["width"] / W
        return box["x"] + x * scale, box["y"] + y * scale

    def choose(self, label: str, tool: str | None = None, nth: int = 0) -> None:
        self.page.keyboard.press("Escape")  # nothing selected: the next label goes to a new region
        self.page.get_by_text(label, exact=True).nth(nth).click()
        if tool is not None:
            self.page.get_by_label(tool, exact=True).click()

    def polygon(self, x0: int, y0: int, x1: int, y1: int, image: int = 0) -> None:
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):  # the last click closes it
            self.page.mouse.click(*self.at(x, y, image))
        self.page.keyboard.press("Escape")

    def drag(self, start: tuple[int, int], end: tuple[int, int], steps: int = 20) -> None:
        self.page.mouse.move(*self.at(*start))
        self.page.mouse.down()
        for k in range(1, steps + 1):
            t = k / steps
            self.page.mouse.move(*self.at(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])))
        self.page.mouse.up()

    def regions(self, count: int) -> None:
        """Wait until the outliner lists `count` regions."""
        self.page.locator(".lsf-outliner-item").nth(count - 1).wait_for(timeout=20_000)

    def submit(self) -> None:
        with self.page.expect_response(
            lambda r: "/annotations" in r.url and r.request.method == "POST", timeout=30_000
        ):
            self.page.get_by_role("button", name="Submit").click()


@pytest.fixture
def editor(label_studio: server.RunningServer, browser) -> Editor:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(label_studio.url) else route.abort()
    )
    page.goto(f"{label_studio.url}/user/login/")
    page.fill("input[name=email]", label_studio.credentials.email)
    page.fill("input[name=password]", label_studio.credentials.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)
    yield Editor(page, label_studio.url)
    page.close()


def project(
    label_studio, folder: Path, title: str, config: str, data: dict, pictures: dict[str, np.ndarray] | None = None
) -> tuple[int, int]:
    with LabelStudioClient(label_studio.url, label_studio.credentials.token) as client:
        created = client.create_project(title, config)
        client.add_local_storage(created.id, str(folder))
        refs = {}
        for key, names in data.items():
            for name in names if isinstance(names, list) else [names]:
                image = (pictures or {}).get(name)
                if image is None:
                    image = cv2.resize(lsproject.scene(len(name))[0], (W, H), interpolation=cv2.INTER_NEAREST)
                cv2.imwrite(str(folder / name), image)
            refs[key] = (
                [f"/data/local-files/?d={folder.name}/{n}" for n in names]
                if isinstance(names, list)
                else f"/data/local-files/?d={folder.name}/{names}"
            )
        (task_id,) = client.import_tasks(created.id, [refs])
    return created.id, task_id


def pulled(
    label_studio, project_id: int, out: Path, image_tag: str | None = None
) -> tuple[dict, np.ndarray | None, dict]:
    """(report entry of the one annotation, its label map or None, the raw annotation as LS exported it)."""
    ls = LabelStudioParams(project=project_id, image_tag=image_tag)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABEL_STUDIO_URL", label_studio.url)
        patch.setenv("LABEL_STUDIO_API_KEY", label_studio.credentials.token)
        pull.run(out / "raw", out / "images", ls, PullParams(workers=1))
    validate.run(
        out / "raw",
        out / "images",
        out / "annotations",
        out / "validation.json",
        BaseParams(0, 255),
        ls,
        ValidateParams(unpainted=None, workers=1),
    )
    (task,) = json.loads((out / "validation.json").read_text())["tasks"]
    (entry,) = task["annotations"]
    path = out / "annotations" / str(task["task_id"]) / f"{entry['annotator']}.png"
    raw = json.loads((out / "raw" / "tasks.jsonl").read_text().splitlines()[0])["task"]["annotations"][0]
    return entry, (read_label_map(path) if path.exists() else None), raw


def box_map(x0: int, y0: int, x1: int, y1: int, value: int, out: np.ndarray | None = None) -> np.ndarray:
    out = np.full((H, W), 255, np.uint8) if out is None else out
    out[y0:y1, x0:x1] = value
    return out


def stroke_pixels(raw: dict, rtype: str) -> np.ndarray:
    """(H, W) bool: the brush pixels the editor stored (SDK decoder, alpha >= 128)."""
    (stored,) = [r for r in raw["result"] if r["type"] == rtype]
    return decode_rle(stored["value"]["rle"]).reshape(H, W, 4)[:, :, 3] >= 128


def check_stroke(pixels: np.ndarray, row: int, first: int, last: int) -> None:
    """A horizontal stroke along `row` from column `first` to `last`: covers the path and stays near it."""
    assert pixels[row, first : last + 1].all()
    rows = np.flatnonzero(pixels.any(axis=1))
    assert rows.min() >= row - 15 and rows.max() <= row + 15 and rows.min() < row < rows.max()


def test_masks_template_brush_stroke(label_studio, editor, project_files, tmp_path):
    project_id, task_id = project(label_studio, project_files, "drawn masks", lc.MASKS_TEMPLATE, {"image": "m.png"})
    editor.open(project_id, task_id)
    editor.choose("Car")
    editor.drag((20, 80), (120, 80))
    editor.regions(1)
    editor.submit()
    entry, label_map, raw = pulled(label_studio, project_id, tmp_path)
    assert entry["fate"] == "ok", entry["reason"]
    pixels = stroke_pixels(raw, "brushlabels")
    check_stroke(pixels, 80, 25, 115)
    np.testing.assert_array_equal(label_map, np.where(pixels, 1, 255))  # Car is class 1 (config order)


def test_polygons_template_polygon(label_studio, editor, project_files, tmp_path):
    project_id, task_id = project(
        label_studio, project_files, "drawn polygons", lc.POLYGONS_TEMPLATE, {"image": "p.png"}
    )
    editor.open(project_id, task_id)
    editor.choose("Airplane")
    editor.polygon(10, 10, 60, 50)
    editor.regions(1)
    editor.submit()
    entry, label_map, _ = pulled(label_studio, project_id, tmp_path)
    assert entry["fate"] == "ok", entry["reason"]
    np.testing.assert_array_equal(label_map, box_map(10, 10, 60, 50, 0))


def test_labels_with_every_tool(label_studio, editor, project_files, tmp_path):
    project_id, task_id = project(label_studio, project_files, "drawn tools", lc.MULTI_TOOL, {"image": "t.png"})
    editor.open(project_id, task_id)
    editor.choose("Planet", "polygon-tool")
    editor.polygon(4, 4, 40, 30)
    editor.choose("Moon", "rectangle-tool")
    editor.drag((50, 4), (90, 30))
    editor.choose("Planet", "ellipse-tool")
    editor.drag((125, 60), (150, 75))  # the editor's ellipse: centre where the drag starts, radii to where it ends
    editor.choose("Moon", "brush-tool")
    editor.drag((10, 80), (100, 80))
    editor.regions(4)
    editor.submit()
    entry, label_map, raw = pulled(label_studio, project_id, tmp_path)
    assert entry["fate"] == "ok", entry["reason"]
    assert entry["regions"] == 4  # each tool result and its labels partner: one region
    expected = box_map(50, 4, 90, 30, 1, box_map(4, 4, 40, 30, 0))
    (ellipse,) = [r["value"] for r in raw["result"] if r["type"] == "ellipse"]
    centre, radii = (
        (ellipse["x"] * W / 100, ellipse["y"] * H / 100),
        (ellipse["radiusX"] * W / 100, ellipse["radiusY"] * H / 100),
    )
    assert np.allclose(centre, (125, 60), atol=0.5) and np.allclose(radii, (25, 15), atol=0.5), ellipse
    expected[fill_ellipse(*centre, *radii, 0.0, H, W)] = 0
    brush = stroke_pixels(raw, "brush")
    check_stroke(brush, 80, 15, 95)
    expected[brush] = 1  # drawn last: on top
    np.testing.assert_array_equal(label_map, expected)


def test_magic_wand_selects_a_flat_region(label_studio, editor, project_files, tmp_path):
    flat = np.full((H, W, 3), 128, np.uint8)
    flat[40:80, 100:140] = (0, 0, 255)  # one red square on grey: what the wand should select
    project_id, task_id = project(
        label_studio, project_files, "drawn wand", lc.MULTI_TOOL, {"image": "w.png"}, {"w.png": flat}
    )
    editor.open(project_id, task_id)
    editor.choose("Moon", "magicwand")
    editor.page.mouse.click(*editor.at(120, 60))
    editor.regions(1)
    editor.submit()
    entry, label_map, raw = pulled(label_studio, project_id, tmp_path)
    assert entry["fate"] == "ok", entry["reason"]
    wand = stroke_pixels(raw, "magicwand")
    square = box_map(100, 40, 140, 80, 1) == 1
    assert (
        not (wand & ~square).any() and wand.sum() >= 0.95 * square.sum()
    )  # the square, edges as the editor found them
    np.testing.assert_array_equal(label_map, np.where(wand, 1, 255))  # Moon is class 1


def test_two_images_paint_only_the_configured_one(label_studio, editor, project_files, tmp_path):
    project_id, task_id = project(
        label_studio, project_files, "drawn two images", lc.TWO_IMAGES, {"left": "l.png", "right": "rr.png"}
    )
    editor.open(project_id, task_id)
    editor.choose("Car", nth=0)
    editor.polygon(10, 10, 50, 40, image=0)
    editor.choose("Car", nth=1)
    editor.polygon(60, 60, 100, 100, image=1)
    editor.regions(2)
    editor.submit()
    entry, label_map, _ = pulled(label_studio, project_id, tmp_path, image_tag="left")
    assert entry["fate"] == "ok" and entry["ignored"] == {"to_name:right": 1}, entry
    np.testing.assert_array_equal(label_map, box_map(10, 10, 50, 40, 0))


def test_value_list_task_is_rejected_not_merged(label_studio, editor, project_files, tmp_path):
    project_id, task_id = project(
        label_studio, project_files, "drawn pages", lc.VALUE_LIST, {"pages": ["a.png", "bb.png"]}
    )
    editor.open(project_id, task_id)
    editor.choose("Car")
    editor.polygon(10, 10, 50, 40)
    editor.regions(1)
    editor.submit()
    entry, label_map, raw = pulled(label_studio, project_id, tmp_path)
    assert raw["result"][0]["to_name"] == "pages"
    assert entry["fate"] == "rejected" and "multi-image" in entry["reason"] and label_map is None
