"""Label maps -> Label Studio result JSON (predictions and seeded annotations).

Shapes: H, W = image height and width in pixels; a label map is (H, W) uint8 class ids in the
order of the given class names, 255 = ignore. Reading results back is `reading.annotation_to_label_map`.

`label_map_to_brush_results`: one brushlabels region per class present, ordered by class id,
with a region id derived from task, tag and class, so re-running gives the same JSON; reading
that list gives the label map back exactly. `label_map_to_polygon_results` traces outlines the
way a person clicking vertices would (lossy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import cv2
import numpy as np

from pipeline.core.errors import ResultError
from pipeline.labelstudio.reading import IGNORE, check_size, class_ids
from pipeline.labelstudio.rle import encode


def region_id(task_id: int | str, from_name: str, class_name: str) -> str:
    """A 10-hex region id fixed by task, tag and class: predictions re-run to the same JSON."""
    return hashlib.sha1(f"{task_id}:{from_name}:{class_name}".encode()).hexdigest()[:10]


def label_map_to_brush_results(
    label_map: np.ndarray,
    classes: Sequence[str],
    *,
    task_id: int | str,
    from_name: str,
    to_name: str,
    ignore_value: int = IGNORE,
) -> list[dict]:
    """One brushlabels result per class present in `label_map` (H, W) uint8, by class id.

    Each mask is encoded as 0/255 in all four RGBA channels (the editor reads alpha). Pixels
    equal to `ignore_value` go to no region. Raises ResultError on a label map that is not 2-D
    uint8 or holds a value that is neither a class id nor `ignore_value`.
    """
    class_ids(classes)
    if not isinstance(label_map, np.ndarray) or label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise ResultError(
            f"label map must be a 2-D uint8 array, got {getattr(label_map, 'shape', None)} "
            f"{getattr(label_map, 'dtype', type(label_map).__name__)}"
        )
    height, width = label_map.shape
    check_size(height, width)
    present = np.flatnonzero(np.bincount(label_map.ravel(), minlength=256))
    unknown = [int(v) for v in present if v >= len(classes) and v != ignore_value]
    if unknown:
        raise ResultError(
            f"label map holds values {unknown} that are neither class ids 0..{len(classes) - 1} "
            f"nor the ignore value {ignore_value}"
        )
    out = []
    for class_id in (int(v) for v in present if v < len(classes) and v != ignore_value):
        mask = np.where(label_map == class_id, np.uint8(255), np.uint8(0))
        out.append(
            {
                "id": region_id(task_id, from_name, classes[class_id]),
                "type": "brushlabels",
                "from_name": from_name,
                "to_name": to_name,
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {"format": "rle", "rle": encode(mask), "brushlabels": [classes[class_id]]},
            }
        )
    return out


def label_map_to_polygon_results(
    label_map: np.ndarray,
    classes: Sequence[str],
    *,
    task_id: int | str,
    from_name: str,
    to_name: str,
    tolerance_px: float = 1.0,
    min_area_px: float = 4.0,
) -> list[dict]:
    """One polygonlabels result per outer contour of each class in `label_map` (H, W) uint8.

    Contours are traced on pixel centres and simplified within `tolerance_px` (as a person
    clicking vertices would); holes and parts smaller than `min_area_px` are dropped, so this
    is a lossy, human-like tracing, not a codec. Ids are fixed by task, tag, class and order.
    """
    ids = class_ids(classes)
    height, width = label_map.shape
    out = []
    for name, class_id in ids.items():
        mask = (label_map == class_id).astype(np.uint8)
        if not mask.any():
            continue
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for order, contour in enumerate(c for c in contours if cv2.contourArea(c) >= min_area_px):
            simple = cv2.approxPolyDP(contour, tolerance_px, True).reshape(-1, 2).astype(np.float64)
            if len(simple) < 3:
                continue
            # Outline through pixel centres, pushed half a pixel out so the centre rule keeps the edge pixels.
            centre = simple.mean(0)
            points = simple + 0.5 + 0.5 * np.sign(simple - centre)
            percent = np.stack([points[:, 0] * 100.0 / width, points[:, 1] * 100.0 / height], 1)
            out.append(
                {
                    "id": region_id(task_id, from_name, f"{name}#{order}"),
                    "type": "polygonlabels",
                    "from_name": from_name,
                    "to_name": to_name,
                    "original_width": width,
                    "original_height": height,
                    "image_rotation": 0,
                    "value": {"points": np.round(percent, 4).tolist(), "polygonlabels": [name], "closed": True},
                }
            )
    return out
