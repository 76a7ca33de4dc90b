"""Reading ONE annotation's (or prediction's) `result` list into a label map.

Shapes: H, W = image height and width in pixels. A label map is (H, W) uint8 holding class ids
in the order of the given class names; 255 is ignore (undecided, void, unlabeled).

Which results are painted (the README's table of supported tags lists them):
- labelled tools: brushlabels, polygonlabels, rectanglelabels (rotation included),
  ellipselabels, bitmasklabels (PNG data URL);
- tools: brush, polygon, rectangle, ellipse, magicwand, bitmask, labelled by a `labels`
  result of the same region id or by `labels` in their own value. A `labels` result that
  carries the shape itself (LS writes both) is the same region, painted once.
Ignored on purpose and counted by type in `ignored`: keypoints, choices, textarea, relations,
ratings (see IGNORED_TYPES); results on another object tag (`to_name`) counted as
`to_name:<name>`; results of a control not in `from_names` counted as `control:<name>`, and
the pixels such a region covers become ignore (255), never the unpainted value. Any other type
rejects the annotation with a ResultError naming it.

Region ids only pair `labels` with tools: a result without one gets `#<position>`.
Missing `original_width/height`: the image's size is taken (the geometry must then fit it).
Overlap rule: regions are painted in the order of the result list; a later region wins, as the
editor layers them; pixels claimed by two classes are counted in `overlap_pixels`.
image_rotation other than 0 is refused (see `regions.check_rotation`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np

from pipeline.core.constants import IGNORE_INDEX as IGNORE
from pipeline.core.errors import ParamsError, ResultError
from pipeline.labelstudio.regions import (
    BRUSH_ALPHA_THRESHOLD,
    GEOMETRY_OF_TYPE,
    MAX_SIDE,
    check_rotation,
    geometry_of,
    read_size,
    region_coverage,
    region_error,
)

LABELS_TYPE = "labels"
IGNORED_TYPES = frozenset(
    {"keypointlabels", "keypoint", "choices", "textarea", "relation", "rating", "number", "datetime", "taxonomy"}
)
SUPPORTED = sorted({*GEOMETRY_OF_TYPE, LABELS_TYPE})


@dataclass(frozen=True)
class LabelMapResult:
    """One annotation as a label map.

    label_map: (H, W) uint8 class ids, `unlabeled_value` where no region is, 255 under dropped regions.
    regions: how many regions were painted.
    overlap_pixels: pixels claimed by regions of two or more different classes.
    ignored: how many results were not painted, by type (or `to_name:<x>`, `control:<x>`).
    """

    label_map: np.ndarray
    regions: int
    overlap_pixels: int
    ignored: dict[str, int]


@dataclass
class Region:
    """The results of one region id: where its shape is and which label(s) it got."""

    id: str
    shape: tuple[int, Mapping] | None = None  # (position, result) holding the geometry
    label_sources: list[tuple[int, Mapping, str]] | None = None  # (position, result, value key)
    dropped: bool = False


def class_ids(classes: Sequence[str]) -> dict[str, int]:
    """Class name -> id; the names must be distinct strings and fewer than 255."""
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ParamsError(f"classes must be a list of non-empty names, got {classes!r}")
    if not 0 < len(classes) < IGNORE:
        raise ParamsError(f"classes must hold 1..254 names (255 is ignore), got {len(classes)}")
    if len(set(classes)) != len(classes):
        raise ParamsError(f"class names must be distinct, got {list(classes)!r}")
    return {name: i for i, name in enumerate(classes)}


def check_size(height: object, width: object) -> None:
    for name, side in (("height", height), ("width", width)):
        if isinstance(side, bool) or not isinstance(side, int) or not 0 < side <= MAX_SIDE:
            raise ParamsError(f"image {name} must be a whole number in 1..{MAX_SIDE}, got {side!r}")


def _check_options(classes, unlabeled_value, height, width, brush_threshold) -> dict[str, int]:
    ids = class_ids(classes)
    for name, value, low in (("unlabeled_value", unlabeled_value, 0), ("brush_threshold", brush_threshold, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 255:
            raise ParamsError(f"{name} must be a whole number in {low}..255, got {value!r}")
    if (height is None) != (width is None):
        raise ParamsError("give both height and width of the image, or neither")
    if height is not None:
        check_size(height, width)
    return ids


def _region_id(index: int, result: Mapping) -> str:
    rid = result.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or rid == "":
        return f"#{index}"  # results imported without ids: each is its own region
    return str(rid)


def _skip_reason(result: Mapping, rtype: str, to_name: str | None, from_names: Collection[str] | None) -> str | None:
    """Why a result is not painted (a key of `ignored`), or None to paint it."""
    target = result.get("to_name")
    if to_name is not None and isinstance(target, str) and target != to_name:
        return f"to_name:{target}"
    if rtype in IGNORED_TYPES:
        return rtype
    if from_names is not None and result.get("from_name") not in from_names:
        return f"control:{result.get('from_name')}"
    return None


def group_regions(
    results: object, to_name: str | None = None, from_names: Collection[str] | None = None
) -> tuple[list[Region], Counter]:
    """Pair the results into regions (by id, in order of first appearance); count what is not painted."""
    if not isinstance(results, (list, tuple)):
        raise ResultError(f"the result must be a list of regions, got {type(results).__name__}")
    if not results:
        raise ResultError("empty result: the annotation holds no region")
    regions: dict[str, Region] = {}
    ignored: Counter = Counter()
    for index, result in enumerate(results):
        if not isinstance(result, Mapping):
            raise ResultError(f"result #{index} is {type(result).__name__}, expected an object")
        rtype = result.get("type")
        if not isinstance(rtype, str):
            raise region_error(index, result, "missing key 'type' (or it is not a string)")
        reason = _skip_reason(result, rtype, to_name, from_names)
        if reason is not None and not reason.startswith("control:"):
            ignored[reason] += 1
            continue
        if rtype not in SUPPORTED:
            raise region_error(
                index,
                result,
                f"result type {rtype!r} is not supported; painted types are "
                f"{', '.join(SUPPORTED)}; ignored: {', '.join(sorted(IGNORED_TYPES))}. "
                "Remove the region or change the label config",
            )
        if not isinstance(result.get("from_name"), str):
            raise region_error(index, result, "missing key 'from_name' (or it is not a string)")
        region = regions.setdefault(_region_id(index, result), Region(_region_id(index, result), label_sources=[]))
        if reason is not None:
            ignored[reason] += 1
            region.dropped = True
        _add_result(region, index, result, rtype)
    return list(regions.values()), ignored


def _add_result(region: Region, index: int, result: Mapping, rtype: str) -> None:
    if rtype in GEOMETRY_OF_TYPE or (rtype == LABELS_TYPE and geometry_of(result)):
        if region.shape is None or region.shape[1].get("type") == LABELS_TYPE:
            region.shape = (index, result)  # a tool's own result is preferred over a labels copy of it
    value = result.get("value")
    if isinstance(value, Mapping):
        # A labelled tool names its label under its type; <Labels> (and tools labelled in place) under "labels".
        keys = {rtype, LABELS_TYPE} if rtype.endswith("labels") else {LABELS_TYPE}
        region.label_sources += [(index, result, key) for key in sorted(keys) if key in value]


def region_label(region: Region) -> str:
    """The one label of a region, from its labelled tool, its `labels` partner or its own `labels`."""
    if region.shape is None:
        index, result, _ = region.label_sources[0] if region.label_sources else (0, {}, "")
        raise region_error(
            index,
            result,
            "has a label but no shape: a <Labels> result only names the label of a "
            "region drawn with a tool (Brush, Polygon, ...) of the same region id; draw "
            "the region with a tool in the editor, or delete the label, and resubmit",
        )
    index, result = region.shape
    value = result.get("value")
    if not isinstance(value, Mapping):
        missing = "value" not in result
        raise region_error(
            index, result, "missing key 'value'" if missing else f"'value' is {value!r:.40}, expected an object"
        )
    rtype = result.get("type")
    if rtype.endswith("labels") and rtype != LABELS_TYPE and rtype not in value and not region.label_sources:
        raise region_error(
            index, result, f"missing key 'value.{rtype}': the region has no label; pick one and resubmit"
        )
    labels: list[str] = []
    for index, result, key in region.label_sources:
        found = result["value"][key]
        if not isinstance(found, list):
            raise region_error(index, result, f"'value.{key}' is {found!r:.40}, expected a list")
        for label in found:
            if not isinstance(label, str) or not label:
                raise region_error(index, result, f"label {label!r:.40} is not a non-empty string")
        labels += [label for label in found if label not in labels]
    index, result = region.shape
    if not labels:
        raise region_error(
            index,
            result,
            f"drawn with <{result.get('from_name')}> but has no label (empty label list); "
            "select the region in the editor, pick one label and resubmit",
        )
    if len(labels) > 1:
        raise region_error(index, result, f"holds {len(labels)} labels {labels!r:.80}; a region must have exactly one")
    return labels[0]


def annotation_to_label_map(
    results: Sequence[Mapping],
    classes: Sequence[str],
    *,
    height: int | None = None,
    width: int | None = None,
    from_names: Collection[str] | None = None,
    to_name: str | None = None,
    unlabeled_value: int = IGNORE,
    brush_threshold: int = BRUSH_ALPHA_THRESHOLD,
) -> LabelMapResult:
    """Paint the regions of ONE annotation's `result` list into an (H, W) uint8 label map.

    height, width: the image's true size, when known; every region's original size must match.
    Without them the first region's size is the size, and every other region must match it.
    from_names: when given, results of other control tags are not painted (their pixels become 255).
    to_name: when given, results on another object tag are ignored.
    Raises ResultError on an empty list, a list with nothing to paint, or any bad region (see
    module docstring); ParamsError on bad classes, sizes, unlabeled_value or brush_threshold.
    """
    ids = _check_options(classes, unlabeled_value, height, width, brush_threshold)
    regions, ignored = group_regions(results, to_name, from_names)
    painted_regions = [r for r in regions if not r.dropped]
    if not painted_regions:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(ignored.items()))
        raise ResultError(
            f"nothing to paint: the result holds no segmentation region, only {kinds} (counted, not "
            "painted); draw the regions with a brush, polygon, rectangle or ellipse tool, or leave the "
            "annotation out (it gives no label map)"
        )
    size = (height, width) if height is not None else None
    canvas = None
    for region in regions:
        label = region_label(region)
        index, result = region.shape
        check_rotation(index, result)
        region_size = read_size(index, result, size)
        if size is None:
            size, size_from = region_size, f"region {region.id!r}"
        elif region_size != size:
            where = "the image" if height is not None else size_from
            reason = (
                f"original size {region_size[1]}x{region_size[0]} differs from the size {size[1]}x{size[0]} of {where}"
            )
            raise region_error(index, result, reason)
        if not region.dropped and label not in ids:
            raise region_error(index, result, f"label {label!r} is not a class; valid names: {', '.join(classes)}")
        coverage = region_coverage(index, result, geometry_of(result), size[0], size[1], brush_threshold)
        if canvas is None:
            canvas = Canvas.blank(size, unlabeled_value)
        canvas.paint(coverage, IGNORE if region.dropped else ids[label], region.dropped)
    return LabelMapResult(
        canvas.finish(unlabeled_value),
        len(painted_regions),
        np.count_nonzero(canvas.overlap),
        dict(sorted(ignored.items())),
    )


@dataclass
class Canvas:
    """A label map being painted: (H, W) class ids, which pixels a class painted, overlaps, dropped pixels."""

    label_map: np.ndarray
    painted: np.ndarray
    overlap: np.ndarray
    dropped: np.ndarray

    @classmethod
    def blank(cls, size: tuple[int, int], unlabeled_value: int) -> Canvas:
        zeros = np.zeros(size, dtype=bool)
        return cls(np.full(size, unlabeled_value, dtype=np.uint8), zeros, zeros.copy(), zeros.copy())

    def paint(self, coverage, class_id: int, dropped: bool) -> None:
        rows = coverage.rows
        if dropped:
            self.dropped[rows] |= coverage.values >= coverage.threshold
            return
        _paint(
            self.label_map[rows].ravel(),
            self.painted[rows].ravel(),
            self.overlap[rows].ravel(),
            coverage.values.ravel(),
            coverage.threshold,
            class_id,
        )

    def finish(self, unlabeled_value: int) -> np.ndarray:
        """The label map, with 255 where only a dropped region is: what it covered is unknown, not unpainted."""
        self.label_map[self.dropped & ~self.painted] = IGNORE
        return self.label_map


@numba.njit(cache=True, nogil=True)
def _paint(
    label_map: np.ndarray, painted: np.ndarray, overlap: np.ndarray, values: np.ndarray, threshold: int, class_id: int
) -> None:
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
