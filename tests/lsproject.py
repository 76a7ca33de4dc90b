"""Build small, fully known Label Studio projects on the test server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.results import label_map_to_brush_results

CLASSES = ["road", "car", "person"]
CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="brush" toName="image">
    <Label value="road" background="#804080"/><Label value="car" background="#0000c0"/>
    <Label value="person" background="#dc143c"/>
  </BrushLabels>
  <PolygonLabels name="polygon" toName="image">
    <Label value="road"/><Label value="car"/><Label value="person"/>
  </PolygonLabels>
</View>"""
HEIGHT, WIDTH = 48, 64


@dataclass
class BuiltProject:
    """A project on the server and what was sent to it."""

    id: int
    task_ids: list[int]
    users: dict[str, int]
    folder: Path
    sent: dict[int, dict] = field(default_factory=dict)  # annotation id -> {"task", "user", "result", "map"}


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy (H, W, 3) image and its (H, W) label map: road band, a car box, a person box."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    truth = np.full((HEIGHT, WIDTH), 255, np.uint8)
    truth[30:, :] = 0
    top, left = 8 + seed % 7, 5 + seed % 11
    truth[top : top + 12, left : left + 20] = 1
    truth[5:25, 45 + seed % 5 : 52 + seed % 5] = 2
    return image, truth


def polygon_result(region_id: str, label: str, points_px: list[tuple[float, float]]) -> dict:
    """A polygonlabels region from pixel coordinates."""
    points = [[x * 100.0 / WIDTH, y * 100.0 / HEIGHT] for x, y in points_px]
    return {
        "id": region_id,
        "type": "polygonlabels",
        "from_name": "polygon",
        "to_name": "image",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": {"points": points, "polygonlabels": [label], "closed": True},
    }


def create_project(client: LabelStudioClient, folder: Path, title: str, count: int = 2) -> BuiltProject:
    """`count` tasks with real PNG files under local storage and three annotators."""
    project = client.create_project(title, CONFIG)
    client.add_local_storage(project.id, str(folder))
    references = []
    for index in range(count):
        image, _ = scene(index)
        cv2.imwrite(str(folder / f"seq{index // 2}_{index:03d}.png"), image)
        references.append({"image": f"/data/local-files/?d={folder.name}/seq{index // 2}_{index:03d}.png"})
    task_ids = client.import_tasks(project.id, references)
    users = {name: client.ensure_user(f"{name}@example.com") for name in ("ann1", "ann2", "ann3")}
    return BuiltProject(project.id, task_ids, users, folder)


def annotate(
    client: LabelStudioClient, built: BuiltProject, task_index: int, user: str, result: list[dict], **options
) -> int:
    """Submit an annotation and remember what was sent."""
    task_id = built.task_ids[task_index]
    annotation_id = client.create_annotation(task_id, result, built.users[user], **options)
    built.sent[annotation_id] = {"task": task_id, "user": user, "result": result}
    return annotation_id


def brush_annotation(task_id: int, label_map: np.ndarray) -> list[dict]:
    return label_map_to_brush_results(label_map, CLASSES, task_id=task_id, from_name="brush", to_name="image")
