"""Label Studio JSON export records built from label maps (for seeding, demos and benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.labelstudio.results import label_map_to_brush_results, label_map_to_polygon_results

TOOLS = ("brush", "polygon")


@dataclass(frozen=True)
class Drawing:
    """One annotator's label map (H, W) uint8 and the tool they drew it with."""

    user_id: int
    email: str
    label_map: np.ndarray
    tool: str


def drawing_results(
    label_map: np.ndarray,
    classes: Sequence[str],
    tool: str,
    task_id: int,
    to_name: str = "image",
    unpainted: int | None = 0,
) -> list[dict]:
    """Result list for one drawing; pixels of class `unpainted` are left unpainted, as people do."""
    if tool not in TOOLS:
        raise PipelineError(f"unknown drawing tool {tool!r}; use one of {', '.join(TOOLS)}")
    painted = label_map if unpainted is None else np.where(label_map == unpainted, np.uint8(IGNORE_INDEX), label_map)
    if tool == "brush":
        return label_map_to_brush_results(painted, classes, task_id=task_id, from_name="brush", to_name=to_name)
    return label_map_to_polygon_results(painted, classes, task_id=task_id, from_name="polygon", to_name=to_name)


def export_task(
    task_id: int,
    image_ref: str,
    drawings: Sequence[Drawing],
    classes: Sequence[str],
    first_annotation_id: int,
    unpainted: int | None = 0,
) -> dict:
    """A task as Label Studio exports it, with expanded annotators and one annotation per drawing."""
    annotations = []
    for offset, drawing in enumerate(drawings):
        annotations.append(
            {
                "id": first_annotation_id + offset,
                "completed_by": {"id": drawing.user_id, "email": drawing.email, "first_name": "", "last_name": ""},
                "result": drawing_results(drawing.label_map, classes, drawing.tool, task_id, unpainted=unpainted),
                "was_cancelled": False,
                "ground_truth": False,
                "created_at": f"2026-01-01T00:00:{offset:02d}.000000Z",
                "lead_time": 30.0 + offset,
                "task": task_id,
                "parent_prediction": None,
            }
        )
    return {"id": task_id, "data": {"image": image_ref}, "annotations": annotations, "predictions": [], "meta": {}}


LABEL_CONFIG_TEMPLATE = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="brush" toName="image">
{labels}
  </BrushLabels>
  <PolygonLabels name="polygon" toName="image" strokeWidth="2" pointSize="small">
{labels}
  </PolygonLabels>
</View>"""


def label_config(classes: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> str:
    """An Image + BrushLabels + PolygonLabels config with the given classes and RGB colours."""
    labels = "\n".join(
        f'    <Label value="{name}" background="#{r:02x}{g:02x}{b:02x}"/>' for name, (r, g, b) in zip(classes, colours)
    )
    return LABEL_CONFIG_TEMPLATE.format(labels=labels)
