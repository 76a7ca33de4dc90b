"""Label Studio result JSON (the `result` list of an annotation or prediction) <-> label maps.

Shapes: H, W = image height and width in pixels. A label map is (H, W) uint8 holding class ids
in the order of the given class names; 255 is ignore (undecided, void, unlabeled).

Reading an annotation (`annotation_to_label_map`):
- Regions of type brushlabels, polygonlabels, rectanglelabels and ellipselabels are painted;
  every other result (choices, textarea, keypointlabels, relations, ...) is not a region of
  the label map and is listed in `ignored`, never an error.
- Overlap rule: regions are painted in the order of the result list and a later region is
  drawn on top and wins, as the editor layers them. Pixels where regions of different classes
  overlapped are counted in `overlap_pixels` (each pixel once).
- Pixels covered by no region get `unlabeled_value` (255 by default; a caller whose params
  say "unpainted is background" passes that class id).
- One bad region rejects the whole annotation: a ResultError names the region (id, position,
  from_name, type) and says what is wrong; the caller adds the task and annotation ids.
- image_rotation other than 0 is refused (see `regions.read_region_header`): the editor stores
  regions drawn on a rotated image relative to the rotated view, and undoing that is not done
  here; the annotator is told to rotate the image back and resubmit.
Pixel rules (pixel centres, tie rule, brush alpha threshold) are in `regions`.

Writing predictions (`label_map_to_brush_results`): one brushlabels region per class present,
ordered by class id, with a region id derived from task, tag and class, so re-running gives the
same JSON. `annotation_to_label_map` of that list gives the label map back exactly.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numba
import numpy as np

from pipeline.constants import IGNORE_INDEX as IGNORE
from pipeline.errors import ParamsError, ResultError
from pipeline.labelstudio.regions import (
    MAX_SIDE,
    REGION_TYPES,
    read_region_header,
    region_coverage,
    region_error,
)
from pipeline.labelstudio.rle import encode


@dataclass(frozen=True)
class LabelMapResult:
    """One annotation as a label map.

    label_map: (H, W) uint8 class ids, `unlabeled_value` where no region is.
    regions: how many regions were painted.
    overlap_pixels: pixels claimed by regions of two or more different classes.
    ignored: (region id or None, type) of each result that is not a painted region.
    """

    label_map: np.ndarray
    regions: int
    overlap_pixels: int
    ignored: tuple[tuple[str | None, str], ...]


@dataclass(frozen=True)
class LabelTag:
    """A control tag of a label config, e.g. <BrushLabels name="tag" toName="image">."""

    name: str
    type: str
    to_name: str
    labels: tuple[str, ...]


def _class_ids(classes: Sequence[str]) -> dict[str, int]:
    """Class name -> id; the names must be distinct strings and fewer than 255."""
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ParamsError(f"classes must be a list of non-empty names, got {classes!r}")
    if not 0 < len(classes) < IGNORE:
        raise ParamsError(f"classes must hold 1..254 names (255 is ignore), got {len(classes)}")
    if len(set(classes)) != len(classes):
        raise ParamsError(f"class names must be distinct, got {list(classes)!r}")
    return {name: i for i, name in enumerate(classes)}


def _check_options(
    classes: Sequence[str], unlabeled_value: object, height: object, width: object
) -> dict[str, int]:
    """Check the caller's arguments (ParamsError) and return class name -> id."""
    ids = _class_ids(classes)
    if isinstance(unlabeled_value, bool) or not isinstance(unlabeled_value, int) or not 0 <= unlabeled_value <= 255:
        raise ParamsError(f"unlabeled_value must be a whole number in 0..255, got {unlabeled_value!r}")
    if (height is None) != (width is None):
        raise ParamsError("give both height and width of the image, or neither")
    if height is not None:
        _check_size(height, width)
    return ids


def _check_size(height: object, width: object) -> None:
    for name, side in (("height", height), ("width", width)):
        if isinstance(side, bool) or not isinstance(side, int) or not 0 < side <= MAX_SIDE:
            raise ParamsError(f"image {name} must be a whole number in 1..{MAX_SIDE}, got {side!r}")


def _split_regions(
    results: object, from_names: Collection[str] | None
) -> tuple[list[tuple[int, Mapping]], list[tuple[str | None, str]]]:
    """(position, result) of each region to paint, and (id, type) of each result ignored."""
    if not isinstance(results, (list, tuple)):
        raise ResultError(f"the result must be a list of regions, got {type(results).__name__}")
    if not results:
        raise ResultError("empty result: the annotation holds no region")
    regions, ignored = [], []
    for index, result in enumerate(results):
        if not isinstance(result, Mapping):
            raise ResultError(f"result #{index} is {type(result).__name__}, expected an object")
        rtype = result.get("type")
        if not isinstance(rtype, str):
            raise region_error(index, result, "missing key 'type' (or it is not a string)")
        if rtype in REGION_TYPES and (from_names is None or result.get("from_name") in from_names):
            regions.append((index, result))
        else:
            rid = result.get("id")
            ignored.append((rid if isinstance(rid, str) or rid is None else str(rid), rtype))
    if not regions:
        kinds = ", ".join(sorted({t for _, t in ignored}))
        raise ResultError(f"no region to paint: the result holds only {kinds} (ignored)")
    return regions, ignored


def annotation_to_label_map(
    results: Sequence[Mapping],
    classes: Sequence[str],
    *,
    height: int | None = None,
    width: int | None = None,
    from_names: Collection[str] | None = None,
    unlabeled_value: int = IGNORE,
) -> LabelMapResult:
    """Paint the regions of ONE annotation's `result` list into an (H, W) uint8 label map.

    height, width: the image's true size, when known; every region's original size must match.
    Without them the first region's size is the size, and every other region must match it.
    from_names: when given, results of other control tags are ignored.
    Raises ResultError on an empty list, a list with no region, or any bad region (see module
    docstring); ParamsError on bad classes, sizes or unlabeled_value.
    """
    ids = _check_options(classes, unlabeled_value, height, width)
    regions, ignored = _split_regions(results, from_names)
    size, size_from = (height, width), "the image"
    label_map = painted = overlap = None
    for index, result in regions:
        header = read_region_header(index, result)
        if size == (None, None):
            size, size_from = (header.height, header.width), f"region {header.id!r}"
        if (header.height, header.width) != size:
            reason = f"original size {header.width}x{header.height} differs from the size {size[1]}x{size[0]} of {size_from}"
            raise region_error(index, result, reason)
        if header.label not in ids:
            reason = f"label {header.label!r} is not a class; valid names: {', '.join(classes)}"
            raise region_error(index, result, reason)
        coverage = region_coverage(result, header)
        if label_map is None:
            label_map = np.full(size, unlabeled_value, dtype=np.uint8)
            painted, overlap = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
        rows = coverage.rows
        _paint(label_map[rows].ravel(), painted[rows].ravel(), overlap[rows].ravel(), coverage.values.ravel(),
               coverage.threshold, ids[header.label])
    return LabelMapResult(label_map, len(regions), np.count_nonzero(overlap), tuple(ignored))


@numba.njit(cache=True, nogil=True)
def _paint(label_map: np.ndarray, painted: np.ndarray, overlap: np.ndarray, values: np.ndarray, threshold: int,
           class_id: int) -> None:
    """Draw one region (flat views, in place): the pixels whose values reach threshold.

    Marks pixels another class had painted already. Painting is tracked apart from the map
    because the unlabeled value may itself be a class id. Selects instead of branches: the
    loop vectorises, which makes it several times faster.
    """
    label, cut = np.uint8(class_id), np.uint8(threshold)
    for p in range(values.size):
        hit = values[p] >= cut
        overlap[p] = overlap[p] | (hit & painted[p] & (label_map[p] != label))
        label_map[p] = label if hit else label_map[p]
        painted[p] = painted[p] | hit


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
    _class_ids(classes)
    if not isinstance(label_map, np.ndarray) or label_map.ndim != 2 or label_map.dtype != np.uint8:
        raise ResultError(f"label map must be a 2-D uint8 array, got {getattr(label_map, 'shape', None)} "
                          f"{getattr(label_map, 'dtype', type(label_map).__name__)}")
    height, width = label_map.shape
    _check_size(height, width)
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
        out.append({
            "id": region_id(task_id, from_name, classes[class_id]),
            "type": "brushlabels",
            "from_name": from_name,
            "to_name": to_name,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {"format": "rle", "rle": encode(mask), "brushlabels": [classes[class_id]]},
        })
    return out


def label_tags(label_config_xml: str) -> dict[str, LabelTag]:
    """The labelling control tags of a label config, by name.

    Every element whose tag ends in "Labels" (BrushLabels, PolygonLabels, RectangleLabels,
    EllipseLabels, KeyPointLabels, Labels, ...) with its <Label> values; a label's `alias`,
    when set, replaces its value because that is what results store. Raises ResultError on
    malformed XML, a tag without name/toName, or two tags with one name.
    """
    try:
        root = ET.fromstring(label_config_xml)
    except (ET.ParseError, TypeError) as exc:
        raise ResultError(f"the label config is not well-formed XML: {exc}") from exc
    tags: dict[str, LabelTag] = {}
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.tag.endswith("Labels"):
            continue
        name, to_name = element.get("name"), element.get("toName")
        if not name or not to_name:
            raise ResultError(f"<{element.tag}> in the label config lacks a name or toName attribute")
        if name in tags:
            raise ResultError(f"two control tags in the label config are named {name!r}")
        labels = tuple(
            label.get("alias") or label.get("value", "") for label in element.iter("Label")
        )
        tags[name] = LabelTag(name, element.tag, to_name, labels)
    return tags


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
    ids = _class_ids(classes)
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
            out.append({
                "id": region_id(task_id, from_name, f"{name}#{order}"),
                "type": "polygonlabels",
                "from_name": from_name,
                "to_name": to_name,
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
                "value": {"points": np.round(percent, 4).tolist(), "polygonlabels": [name], "closed": True},
            })
    return out
