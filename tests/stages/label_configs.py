"""Label configs as users make them (LS's templates, <Labels> + tools, two images, valueList) and known shapes.

Shapes are in image pixels on the 64 x 48 test image, chosen on pixel corners so the expected
pixels are known without any rasteriser: a box from (x0, y0) to (x1, y1) covers rows y0..y1-1
and columns x0..x1-1.
"""

from __future__ import annotations

import numpy as np

from pipeline.labelstudio.rle import encode
from tests.lsproject import HEIGHT, WIDTH

MASKS_TEMPLATE = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Airplane" background="rgba(255, 0, 0, 0.7)"/>
    <Label value="Car" background="rgba(0, 0, 255, 0.7)"/>
  </BrushLabels>
</View>"""
POLYGONS_TEMPLATE = """<View>
  <Header value="Select label and click the image to start"/>
  <Image name="image" value="$image" zoom="true"/>
  <PolygonLabels name="label" toName="image" strokeWidth="3" pointSize="small" opacity="0.9">
    <Label value="Airplane" background="red"/>
    <Label value="Car" background="blue"/>
  </PolygonLabels>
</View>"""
MULTI_TOOL = """<View>
  <Image name="img" value="$image"/>
  <Labels name="labels" toName="img">
    <Label value="Planet" background="#00ff00"/><Label value="Moon" background="#0000ff"/>
  </Labels>
  <Brush name="brush" toName="img"/>
  <Polygon name="polygon" toName="img"/>
  <Rectangle name="rect" toName="img"/>
  <Ellipse name="ellipse" toName="img"/>
  <MagicWand name="wand" toName="img"/>
  <Choices name="weather" toName="img"><Choice value="clear"/><Choice value="cloudy"/></Choices>
</View>"""
TWO_IMAGES = """<View>
  <Image name="left" value="$left"/>
  <PolygonLabels name="left_poly" toName="left"><Label value="Car" background="blue"/></PolygonLabels>
  <Image name="right" value="$right"/>
  <PolygonLabels name="right_poly" toName="right"><Label value="Car" background="blue"/></PolygonLabels>
</View>"""
VALUE_LIST = """<View>
  <Image name="pages" valueList="$pages"/>
  <PolygonLabels name="poly" toName="pages"><Label value="Car" background="blue"/></PolygonLabels>
</View>"""


def box(x0: int, y0: int, x1: int, y1: int, value: int) -> np.ndarray:
    """(H, W) uint8: `value` inside the box, 255 elsewhere."""
    out = np.full((HEIGHT, WIDTH), 255, np.uint8)
    out[y0:y1, x0:x1] = value
    return out


def percent_points(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x * 100.0 / WIDTH, y * 100.0 / HEIGHT] for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]


def polygon_value(x0: int, y0: int, x1: int, y1: int) -> dict:
    return {"points": percent_points(x0, y0, x1, y1), "closed": True}


def rectangle_value(x0: int, y0: int, x1: int, y1: int) -> dict:
    return {
        "x": x0 * 100.0 / WIDTH,
        "y": y0 * 100.0 / HEIGHT,
        "width": (x1 - x0) * 100.0 / WIDTH,
        "height": (y1 - y0) * 100.0 / HEIGHT,
        "rotation": 0,
    }


def brush_value(x0: int, y0: int, x1: int, y1: int) -> dict:
    alpha = np.where(box(x0, y0, x1, y1, 1) == 1, np.uint8(255), np.uint8(0))
    return {"format": "rle", "rle": encode(alpha)}


def result(rtype: str, from_name: str, to_name: str, value: dict, sizes: bool = True) -> dict:
    """A result as an importer writes it: no region id; the image size only when `sizes`."""
    out = {"type": rtype, "from_name": from_name, "to_name": to_name, "value": value}
    return {**out, "original_width": WIDTH, "original_height": HEIGHT} if sizes else out
