"""One Label Studio region (a `result` entry) to the pixels of the image it covers.

Shapes: H, W = the image's height and width in pixels; N = a polygon's vertex count.
Coordinates: Label Studio stores x in percent of `original_width` and y in percent of
`original_height`; in pixel units x_px = x% * W / 100, and pixel (row, col) has its centre at
(col + 0.5, row + 0.5).

Rasterising rule (polygon, rectangle, ellipse): a pixel belongs to the region when its centre
lies inside the shape, under the canvas non-zero winding rule. Ties, for a centre exactly on
the outline of a polygon or rectangle, follow the top-left convention: a centre on a left or
top edge is inside, one on a right or bottom edge is outside, so two shapes that share an edge
never both claim a pixel and a grid-aligned square of k x k pixels covers exactly k x k pixels.
An ellipse includes the centres on its outline. Brush pixels belong to the region when their
alpha is at least 128: the editor paints anti-aliased stroke edges with partial alpha (the
fraction of the pixel covered), so this keeps the pixels that are at least half covered, the
same idea as the pixel-centre rule.

`cv2.fillPoly` is not used: it snaps vertex y to whole rows and always paints the outline, so it
claims pixels whose centres lie outside the polygon (a 2 x 2 pixel square comes out 3 x 3).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain

import cv2
import numba
import numpy as np

from pipeline.core.errors import ResultError, RLEError
from pipeline.labelstudio.rle import decode

# Larger sides are refused before any allocation: 2**15 x 2**15 is already a 1 GiB label map.
MAX_SIDE = 2**15
BRUSH_ALPHA_THRESHOLD = 128
# Coordinates (percent) and angles (degrees) beyond +-1e4 are corrupt: 100 image sizes away,
# or 27 turns. Refusing them keeps the float arithmetic far from overflow.
MAX_ABS_NUMBER = 1e4


def region_error(index: int, result: Mapping, reason: str) -> ResultError:
    """A ResultError naming the region (position, id, from_name, type) and the reason."""
    rid = result.get("id") if isinstance(result, Mapping) else None
    from_name = result.get("from_name") if isinstance(result, Mapping) else None
    rtype = result.get("type") if isinstance(result, Mapping) else None
    return ResultError(
        f"region {rid!r:.40} (result #{index}, from_name {from_name!r:.40}, type {rtype!r:.40}): {reason}"
    )


_KIND_NAMES = {Mapping: "an object", list: "a list", str: "a string", int: "an integer"}


def _key(index: int, result: Mapping, container: Mapping, key: str, kind: type | tuple, where: str = "") -> object:
    """container[key] (container is `result` or one of its parts), checked to be of `kind`.

    A missing key or a wrong type is a ResultError naming the key, never a KeyError.
    """
    if key not in container:
        raise region_error(index, result, f"missing key '{where}{key}'")
    value = container[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        raise region_error(index, result, f"'{where}{key}' is {value!r:.40}, expected {expected}")
    return value


def _number(index: int, result: Mapping, value: object, what: str) -> float:
    """A finite float from a JSON number; anything else is a ResultError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise region_error(index, result, f"{what} is {value!r:.40}, expected a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > MAX_ABS_NUMBER:
        raise region_error(
            index, result, f"{what} is {value!r:.40}, expected a finite number within +-{MAX_ABS_NUMBER:g}"
        )
    return number


def _value_number(index: int, result: Mapping, value: Mapping, key: str) -> float:
    """value[key] as a finite float; a missing key is named as such."""
    if key not in value:
        raise region_error(index, result, f"missing key 'value.{key}'")
    return _number(index, result, value[key], f"value.{key}")


def _side(index: int, result: Mapping, key: str) -> int:
    """original_width / original_height: a positive whole number no larger than MAX_SIDE."""
    if key not in result:
        raise region_error(index, result, f"missing key {key!r}")
    value = result[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # some tools write 640.0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SIDE:
        raise region_error(index, result, f"{key} is {value!r:.40}, expected a whole number in 1..{MAX_SIDE}")
    return value


@dataclass(frozen=True)
class Coverage:
    """A region's pixels: in rows first_row .. first_row + R - 1, those whose values (R, W) uint8 reach threshold.

    A brush or bitmask keeps its decoded alpha over the whole image (threshold: validate.brush_alpha_threshold,
    128 by default); a shape its 0/1 mask (threshold 1) of only the rows it spans, so that painting it touches
    no other row.
    """

    values: np.ndarray
    threshold: int
    first_row: int = 0

    @property
    def rows(self) -> slice:
        return slice(self.first_row, self.first_row + self.values.shape[0])


GEOMETRY_OF_TYPE = {
    "brushlabels": "brush",
    "brush": "brush",
    "magicwand": "brush",
    "polygonlabels": "polygon",
    "polygon": "polygon",
    "rectanglelabels": "rectangle",
    "rectangle": "rectangle",
    "ellipselabels": "ellipse",
    "ellipse": "ellipse",
    "bitmasklabels": "bitmask",
    "bitmask": "bitmask",
}
# A `labels` result may carry its region's shape in its own value: the keys tell which shape.
GEOMETRY_KEYS = (
    ("rle", "brush"),
    ("imageDataURL", "bitmask"),
    ("points", "polygon"),
    ("radiusX", "ellipse"),
    ("width", "rectangle"),
)


def geometry_of(result: Mapping) -> str | None:
    """The shape a result draws (brush, polygon, rectangle, ellipse, bitmask), or None."""
    geometry = GEOMETRY_OF_TYPE.get(result.get("type"))
    value = result.get("value")
    if geometry is None and isinstance(value, Mapping):
        geometry = next((shape for key, shape in GEOMETRY_KEYS if key in value), None)
    return geometry


def read_size(index: int, result: Mapping, image_size: tuple[int, int] | None) -> tuple[int, int]:
    """(height, width) the region's coordinates refer to: its original size, else the image's."""
    if "original_height" not in result and "original_width" not in result and image_size is not None:
        return image_size  # imported results may omit it; the geometry is checked against the image then
    return _side(index, result, "original_height"), _side(index, result, "original_width")


def check_rotation(index: int, result: Mapping) -> None:
    """Refuse regions drawn on an image rotated in the editor (they are stored in the rotated view)."""
    rotation = _number(index, result, result.get("image_rotation", 0), "image_rotation")
    if rotation % 360 != 0:
        raise region_error(
            index,
            result,
            f"the image was rotated by {rotation:g} degrees in the editor (image_rotation), and "
            "regions drawn on a rotated image are not converted back; fix: open the task, rotate "
            "the image back to 0 degrees, check the regions and resubmit the annotation",
        )


def region_coverage(
    index: int, result: Mapping, geometry: str, height: int, width: int, brush_threshold: int = BRUSH_ALPHA_THRESHOLD
) -> Coverage:
    """The pixels of a region drawing `geometry` on an image of `height` x `width`.

    Raises ResultError on a bad RLE, PNG or geometry, or when the region covers no pixel.
    """
    value = _key(index, result, result, "value", Mapping)
    h, w, i = height, width, index
    if geometry == "brush":
        coverage = Coverage(_brush_alpha(i, result, value, h, w), brush_threshold)
    elif geometry == "bitmask":
        coverage = Coverage(bitmask_alpha(i, result, value, h, w), brush_threshold)
    elif geometry == "polygon":
        coverage = polygon_coverage(_polygon_points(i, result, value) * (w, h) / 100.0, h, w)
    elif geometry == "rectangle":
        x, y, rw, rh = (_value_number(i, result, value, k) for k in ("x", "y", "width", "height"))
        if rw <= 0 or rh <= 0:
            raise region_error(i, result, f"rectangle size {rw:g}% x {rh:g}% is not positive")
        angle = _number(i, result, value.get("rotation", 0), "value.rotation")
        corners = rectangle_corners(x * w / 100, y * h / 100, rw * w / 100, rh * h / 100, angle)
        coverage = polygon_coverage(corners, h, w)
    else:
        cx, cy, rx, ry = (_value_number(i, result, value, k) for k in ("x", "y", "radiusX", "radiusY"))
        if rx <= 0 or ry <= 0:
            raise region_error(i, result, f"ellipse radii {rx:g}% x {ry:g}% are not positive")
        angle = _number(i, result, value.get("rotation", 0), "value.rotation")
        mask = fill_ellipse(cx * w / 100, cy * h / 100, rx * w / 100, ry * h / 100, angle, h, w)
        coverage = Coverage(mask.view(np.uint8), 1)
    if coverage.values.max(initial=0) < coverage.threshold:
        why = (
            f"no pixel has alpha >= {brush_threshold} (validate.brush_alpha_threshold)"
            if geometry in ("brush", "bitmask")
            else "outside it or thinner than a pixel"
        )
        raise region_error(i, result, f"covers no pixel of the {w}x{h} image ({why}); delete it")
    return coverage


def bitmask_alpha(index: int, result: Mapping, value: Mapping, height: int, width: int) -> np.ndarray:
    """Decode value.imageDataURL (a PNG data URL) to the (H, W) uint8 mask: alpha, or grey for opaque PNGs."""
    url = _key(index, result, value, "imageDataURL", str, "value.")
    head, _, data = url.partition(",")
    if not head.startswith("data:image/png") or ";base64" not in head:
        raise region_error(index, result, f"value.imageDataURL starts {head[:40]!r}, expected 'data:image/png;base64,'")
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise region_error(index, result, "value.imageDataURL is not valid base64") from None
    # The PNG header holds the size: check it before decoding anything (a tiny file can claim a huge image).
    if content[:8] != b"\x89PNG\r\n\x1a\n" or len(content) < 24:
        raise region_error(index, result, "value.imageDataURL does not hold a PNG")
    png_width, png_height = struct.unpack(">II", content[16:24])
    if (png_height, png_width) != (height, width):
        raise region_error(
            index, result, f"the bitmask PNG is {png_width}x{png_height}, expected the image's {width}x{height}"
        )
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise region_error(index, result, "value.imageDataURL holds a damaged PNG")
    if image.ndim == 3:
        image = image[:, :, 3] if image.shape[2] == 4 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        image = (image >> 8).astype(np.uint8)
    return np.ascontiguousarray(image)


def _brush_alpha(index: int, result: Mapping, value: Mapping, height: int, width: int) -> np.ndarray:
    """Decode value.rle to the (H, W) uint8 alpha channel of the brush stroke."""
    if value.get("format", "rle") != "rle":
        raise region_error(index, result, f"value.format is {value.get('format')!r:.40}, expected 'rle'")
    if "rle" not in value:
        raise region_error(index, result, "missing key 'value.rle'")
    try:
        alpha = decode(value["rle"], height, width)
    except RLEError as exc:
        raise region_error(index, result, f"value.rle does not decode to {width}x{height}: {exc}") from exc
    if alpha.shape != (height, width):
        raise region_error(index, result, f"value.rle decodes to {alpha.shape}, expected {(height, width)}")
    return alpha


def _polygon_points(index: int, result: Mapping, value: Mapping) -> np.ndarray:
    """value.points as an (N, 2) float64 array of percent; an open polygon is refused."""
    if value.get("closed", True) is not True:
        raise region_error(index, result, "the polygon is not closed; close it in the editor and resubmit")
    points = _key(index, result, value, "points", list, "value.")
    if len(points) < 3:
        raise region_error(index, result, f"the polygon has {len(points)} points, it needs at least 3")
    try:  # the common, well-formed case in a few C loops: numbers only, in N pairs
        if set(map(type, chain.from_iterable(points))) <= {int, float}:
            out = np.asarray(points, dtype=np.float64)
            if out.shape == (len(points), 2) and np.abs(out).max() <= MAX_ABS_NUMBER:  # NaN fails too
                return out
    except (TypeError, ValueError, OverflowError):  # a point that is no list, uneven lists, a huge integer
        pass
    out = np.empty((len(points), 2), dtype=np.float64)
    for k, point in enumerate(points):  # slow path: find and name the bad point
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise region_error(index, result, f"value.points[{k}] is {point!r:.40}, expected [x, y]")
        out[k] = [_number(index, result, c, f"value.points[{k}]") for c in point]
    return out


def rectangle_corners(x: float, y: float, width: float, height: float, rotation: float) -> np.ndarray:
    """(4, 2) corners of a rectangle turned `rotation` degrees clockwise about its top-left (x, y).

    Pixel units, y pointing down: this is Konva's rotation, which the editor uses.
    """
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    local = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])
    turned = local @ np.array([[cos, sin], [-sin, cos]])
    return turned + (x, y)


def fill_polygon(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) bool: pixels whose centre is inside the polygon `points` (N, 2) x, y in pixels.

    Non-zero winding, top-left tie rule (see the module docstring).
    """
    coverage = polygon_coverage(points, height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[coverage.rows] = coverage.values.view(bool)
    return mask


def polygon_coverage(points: np.ndarray, height: int, width: int) -> Coverage:
    """`fill_polygon`'s mask as a Coverage of the rows the polygon spans."""
    points = np.ascontiguousarray(points, dtype=np.float64)
    if len(points) < 3:
        return Coverage(np.zeros((0, width), np.uint8), 1)
    top, band = _scanline_band(points, height, width)
    return Coverage(band, 1, top)


@numba.njit(cache=True, nogil=True)
def _scanline_band(points: np.ndarray, height: int, width: int) -> tuple[int, np.ndarray]:
    """(top, band): rows top .. top + R - 1 of the polygon's (H, W) mask, band (R, W) uint8 0/1.

    Scanline on pixel-centre rows: each edge crossing a row adds its direction at the first
    column whose centre is at or right of the crossing, and a running sum along the row is the
    winding number at each centre. One compiled pass over the edges, then over the rows spanned.
    """
    count = points.shape[0]
    top, bottom = height, 0
    for k in range(count):  # rows whose centre r + 0.5 lies in [min y, max y): horizontal edges cross none
        y0, y1 = points[k, 1], points[(k + 1) % count, 1]
        first = min(max(math.ceil(min(y0, y1) - 0.5), 0), height)
        stop = min(max(math.ceil(max(y0, y1) - 0.5), 0), height)
        if stop > first:
            top, bottom = min(top, first), max(bottom, stop)
    if bottom <= top:
        return 0, np.zeros((0, width), np.uint8)
    steps = np.zeros((bottom - top, width + 1), np.int32)
    for k in range(count):
        x0, y0 = points[k, 0], points[k, 1]
        x1, y1 = points[(k + 1) % count, 0], points[(k + 1) % count, 1]
        first = min(max(math.ceil(min(y0, y1) - 0.5), 0), height)
        stop = min(max(math.ceil(max(y0, y1) - 0.5), 0), height)
        direction = 1 if y1 > y0 else -1
        for row in range(first, stop):
            t = (row + 0.5 - y0) / (y1 - y0)
            column = min(max(math.ceil(x0 + t * (x1 - x0) - 0.5), 0), width)
            steps[row - top, column] += direction
    band = np.empty((bottom - top, width), np.uint8)
    for row in range(bottom - top):
        winding = 0
        for column in range(width):
            winding += steps[row, column]
            band[row, column] = winding != 0
    return top, band


def fill_ellipse(cx: float, cy: float, rx: float, ry: float, rotation: float, height: int, width: int) -> np.ndarray:
    """(H, W) bool: pixels whose centre is inside or on an ellipse (pixel units).

    Centre (cx, cy), radii rx, ry > 0, turned `rotation` degrees clockwise about the centre.
    Only the ellipse's bounding box (one pixel wider for rounding) is evaluated.
    """
    theta = math.radians(rotation)
    cos, sin = math.cos(theta), math.sin(theta)
    half_w, half_h = math.hypot(rx * cos, ry * sin) + 1, math.hypot(rx * sin, ry * cos) + 1
    r0, r1 = (int(np.clip(math.floor(v), 0, height)) for v in (cy - half_h, cy + half_h + 1))
    c0, c1 = (int(np.clip(math.floor(v), 0, width)) for v in (cx - half_w, cx + half_w + 1))
    mask = np.zeros((height, width), dtype=bool)
    dy = (np.arange(r0, r1) + 0.5 - cy)[:, None]
    dx = (np.arange(c0, c1) + 0.5 - cx)[None, :]
    u = (dx * cos + dy * sin) / rx
    v = (dy * cos - dx * sin) / ry
    mask[r0:r1, c0:c1] = u * u + v * v <= 1.0
    return mask
