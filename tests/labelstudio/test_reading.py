"""Every result type accounted for: labels + tools paired by id, magic wand, bitmask, ids and sizes LS omits."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from pipeline.core.errors import ParamsError, ResultError
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.rle import encode

CLASSES = ["Planet", "Moon"]
H, W = 4, 8


def box_alpha(rows: slice, cols: slice, value: int = 255) -> np.ndarray:
    alpha = np.zeros((H, W), np.uint8)
    alpha[rows, cols] = value
    return alpha


def sized(result: dict) -> dict:
    return {"original_width": W, "original_height": H, "image_rotation": 0, "to_name": "img", **result}


def labels(rid: str | None, label: str, **geometry) -> dict:
    result = {"type": "labels", "from_name": "labels", "value": {**geometry, "labels": [label]}}
    return sized(result if rid is None else {"id": rid, **result})


def tool(rid: str | None, rtype: str, value: dict, from_name: str | None = None) -> dict:
    result = {"type": rtype, "from_name": from_name or rtype, "value": value}
    return sized(result if rid is None else {"id": rid, **result})


def rle_value(alpha: np.ndarray) -> dict:
    return {"format": "rle", "rle": encode(alpha)}


def png_url(mask: np.ndarray) -> str:
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[..., 3] = mask
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", rgba)[1].tobytes()).decode()


def paint(results, **options) -> np.ndarray:
    return annotation_to_label_map(results, CLASSES, **options).label_map


SQUARE = [[0, 0], [50, 0], [50, 100], [0, 100]]  # left half, in percent
EXPECTED_LEFT = np.array([[0] * 4 + [255] * 4] * H, np.uint8)


@pytest.mark.parametrize(
    "rtype, value",
    [
        ("brush", rle_value(box_alpha(slice(None), slice(0, 4)))),
        ("magicwand", rle_value(box_alpha(slice(None), slice(0, 4)))),
        ("polygon", {"points": SQUARE, "closed": True}),
        ("rectangle", {"x": 0, "y": 0, "width": 50, "height": 100, "rotation": 0}),
        ("bitmask", {"imageDataURL": png_url(box_alpha(slice(None), slice(0, 4)))}),
    ],
)
def test_tools_are_painted_with_the_label_of_their_labels_partner(rtype, value):
    # The editor's form: the labels result repeats the shape; the tool result of the same id holds it too.
    paired = [labels("r1", "Planet", **value), tool("r1", rtype, value)]
    out = annotation_to_label_map(paired, CLASSES, to_name="img")
    np.testing.assert_array_equal(out.label_map, EXPECTED_LEFT)
    assert out.regions == 1  # one region, painted once
    # A bare labels result (no shape) followed by the tool, and a tool labelled in its own value.
    np.testing.assert_array_equal(paint([tool("r2", rtype, value), labels("r2", "Planet")]), EXPECTED_LEFT)
    np.testing.assert_array_equal(paint([tool("r3", rtype, {**value, "labels": ["Planet"]})]), EXPECTED_LEFT)


def test_labelled_bitmask_and_ellipse_with_rotation():
    mask = box_alpha(slice(0, 2), slice(None))
    out = paint([tool("b", "bitmasklabels", {"imageDataURL": png_url(mask), "bitmasklabels": ["Moon"]})])
    np.testing.assert_array_equal(out, np.where(mask > 0, 1, 255).astype(np.uint8))
    turned = tool(
        "e",
        "ellipselabels",
        {"x": 50, "y": 50, "radiusX": 10, "radiusY": 40, "rotation": 90, "ellipselabels": ["Moon"]},
    )
    assert (paint([turned]) == 1).sum() > 0


def test_rotated_rectangle_turns_about_its_top_left_corner():
    # 90 degrees clockwise about (4, 0): the 4 x 2 px box turns down into columns 2..3, rows 0..3.
    rect = tool(
        "r",
        "rectanglelabels",
        {"x": 50, "y": 0, "width": 50, "height": 50, "rotation": 90, "rectanglelabels": ["Planet"]},
    )
    expected = np.full((H, W), 255, np.uint8)
    expected[0:4, 2:4] = 0
    np.testing.assert_array_equal(paint([rect]), expected)


def test_results_without_ids_or_original_size_are_accepted():
    no_ids = [
        {
            k: v
            for k, v in tool(None, "polygonlabels", {"points": SQUARE, "polygonlabels": ["Planet"]}).items()
            if k not in ("original_width", "original_height")
        },
        tool(None, "brushlabels", {**rle_value(box_alpha(slice(0, 1), slice(None))), "brushlabels": ["Moon"]}),
    ]
    out = annotation_to_label_map(no_ids, CLASSES, height=H, width=W)
    expected = EXPECTED_LEFT.copy()
    expected[0] = 1
    np.testing.assert_array_equal(out.label_map, expected)
    assert out.regions == 2  # two results without ids are two regions, never paired
    # Without the image size a region without its own size cannot be placed.
    with pytest.raises(ResultError, match="missing key 'original_height'"):
        annotation_to_label_map(no_ids[:1], CLASSES)
    # A brush without size whose RLE does not fit the image is refused, naming both sizes.
    other = {k: v for k, v in no_ids[1].items() if k not in ("original_width", "original_height")}
    with pytest.raises(ResultError, match="does not decode to 9x4"):
        annotation_to_label_map([other], CLASSES, height=4, width=9)


def test_regions_of_another_image_and_ignored_types_are_counted():
    results = [
        tool("a", "polygonlabels", {"points": SQUARE, "polygonlabels": ["Planet"]}),
        {**tool("b", "polygonlabels", {"points": SQUARE, "polygonlabels": ["Moon"]}), "to_name": "second"},
        {"id": "k", "type": "keypointlabels", "from_name": "kp", "to_name": "img", "value": {"x": 1, "y": 1}},
        {"id": "c", "type": "choices", "from_name": "weather", "to_name": "img", "value": {"choices": ["x"]}},
        {"type": "relation", "from_id": "a", "to_id": "k", "direction": "right"},
        {"id": "t", "type": "textarea", "from_name": "note", "to_name": "img", "value": {"text": ["hi"]}},
        {"id": "s", "type": "rating", "from_name": "stars", "to_name": "img", "value": {"rating": 3}},
    ]
    out = annotation_to_label_map(results, CLASSES, to_name="img", unlabeled_value=1)
    assert out.ignored == {
        "choices": 1,
        "keypointlabels": 1,
        "rating": 1,
        "relation": 1,
        "textarea": 1,
        "to_name:second": 1,
    }
    np.testing.assert_array_equal(out.label_map, np.where(EXPECTED_LEFT == 0, 0, 1))  # Moon was on the other image


@pytest.mark.parametrize(
    "results, words",
    [
        ([labels("x", "Planet")], "has a label but no shape"),
        ([tool("x", "brush", rle_value(box_alpha(slice(None), slice(0, 2))))], "has no label"),
        ([labels("x", "Planet", points=SQUARE), labels("x", "Moon")], "2 labels"),
        ([tool("x", "vectorlabels", {"vectorlabels": ["Planet"]})], "result type 'vectorlabels' is not supported"),
        (
            [{"id": "c", "type": "choices", "from_name": "w", "value": {}}],
            "nothing to paint: the result holds no segmentation region, only 1 choices",
        ),
        (
            [tool("x", "bitmask", {"imageDataURL": "data:image/jpeg;base64,AAAA", "labels": ["Moon"]})],
            "expected 'data:image/png",
        ),
        (
            [tool("x", "bitmask", {"imageDataURL": png_url(np.zeros((2, 2), np.uint8)), "labels": ["Moon"]})],
            "the bitmask PNG is 2x2, expected the image's 8x4",
        ),
    ],
)
def test_what_cannot_be_painted_is_refused_with_a_reason(results, words):
    with pytest.raises(ResultError) as info:
        annotation_to_label_map(results, CLASSES, to_name="img")
    assert words in str(info.value)


def test_brush_alpha_threshold_is_a_parameter():
    edge = box_alpha(slice(None), slice(0, 4), value=100)  # an anti-aliased edge, alpha 100
    stroke = [tool("e", "brushlabels", {**rle_value(edge), "brushlabels": ["Planet"]})]
    with pytest.raises(ResultError, match="no pixel has alpha >= 128"):
        paint(stroke)
    np.testing.assert_array_equal(paint(stroke, brush_threshold=1), EXPECTED_LEFT)  # the SDK's COCO export keeps > 0
    with pytest.raises(ParamsError, match="brush_threshold"):
        paint(stroke, brush_threshold=0)
