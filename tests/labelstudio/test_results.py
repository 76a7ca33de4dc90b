"""Label Studio results <-> label maps: known answers, a reference rasteriser, errors, a fixture."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from label_studio_sdk.converter.brush import decode_rle

from pipeline.core.errors import ParamsError, PipelineError, ResultError
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.regions import fill_ellipse, fill_polygon
from pipeline.labelstudio.results import label_map_to_brush_results
from pipeline.labelstudio.rle import encode

FIXTURES = Path(__file__).parent / "fixtures"
CLASSES = ["road", "car", "sky"]


def grid(text: str) -> np.ndarray:
    """(H, W) uint8 from rows of digits; '.' is 255."""
    rows = text.split()
    return np.array([[255 if c == "." else int(c) for c in row] for row in rows], dtype=np.uint8)


def region(rtype: str, value: dict, label="car", rid="r1", w=4, h=4, **extra) -> dict:
    return {
        "id": rid,
        "type": rtype,
        "from_name": "tag",
        "to_name": "image",
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": {**value, rtype: [label]},
        **extra,
    }


def poly(points, **kw):
    return region("polygonlabels", {"points": points, "closed": True}, **kw)


def rect(x, y, width, height, rotation=0, **kw):
    return region("rectanglelabels", {"x": x, "y": y, "width": width, "height": height, "rotation": rotation}, **kw)


def ellipse(x, y, rx, ry, rotation=0, **kw):
    return region("ellipselabels", {"x": x, "y": y, "radiusX": rx, "radiusY": ry, "rotation": rotation}, **kw)


def brush(alpha: np.ndarray, **kw):
    h, w = alpha.shape
    return region("brushlabels", {"format": "rle", "rle": encode(alpha)}, w=w, h=h, **kw)


def paint(*results, **kw) -> np.ndarray:
    return annotation_to_label_map(list(results), CLASSES, **kw).label_map


KNOWN = {
    # Hypotenuse x + y = 4 is a right edge: the centres on it (row + col = 3) stay out.
    "triangle": (poly([[0, 0], [100, 0], [0, 100]]), "111. 11.. 1... ...."),
    "square": (poly([[25, 25], [75, 25], [75, 75], [25, 75]]), ".... .11. .11. ...."),
    # Corners on pixel centres: centres on the left and top edges are in, right and bottom out.
    "tie_rule": (poly([[12.5, 12.5], [62.5, 12.5], [62.5, 62.5], [12.5, 62.5]]), "11.. 11.. .... ...."),
    "clockwise_or_not": (poly([[25, 75], [75, 75], [75, 25], [25, 25]]), ".... .11. .11. ...."),
    "rectangle": (rect(25, 0, 50, 50), ".11. .11. .... ...."),
    # Turned 90 degrees clockwise about its top-left corner (2, 0): it now spans x 1..2, y 0..2.
    "rectangle_rot90": (rect(50, 0, 50, 25, rotation=90), ".1.. .1.. .... ...."),
    # Top-left (2.25, 0), sides 2*sqrt(2) and sqrt(2) turned 45 degrees: corners (2.25, 0),
    # (4.25, 2), (3.25, 3), (1.25, 1); the centres inside have row - col in {-1, -2}, row + col in 2..5.
    "rectangle_rot45": (rect(56.25, 0, 50 * math.sqrt(2), 25 * math.sqrt(2), rotation=45), "..1. ..11 ...1 ...."),
    "ellipse": (ellipse(50, 50, 50, 25), ".... 1111 1111 ...."),
    "ellipse_rot90": (ellipse(50, 50, 50, 25, rotation=90), ".11. .11. .11. .11."),
    "partly_outside": (rect(-50, 50, 100, 100), ".... .... 11.. 11.."),
}


@pytest.mark.parametrize("name", KNOWN)
def test_known_answers(name):
    result, expected = KNOWN[name]
    np.testing.assert_array_equal(paint(result), grid(expected))


def test_brush_alpha_threshold_keeps_pixels_at_least_half_covered():
    alpha = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(paint(brush(alpha)), grid("..11"))


def reference_inside(points: np.ndarray, height: int, width: int):
    """Winding number on pixel centres, one edge at a time; also the centres exactly on an edge."""
    xs, ys = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    winding = np.zeros((height, width), dtype=int)
    on_edge = np.zeros((height, width), dtype=bool)
    for (ax, ay), (bx, by) in zip(points, np.roll(points, -1, axis=0)):
        side = (bx - ax) * (ys - ay) - (xs - ax) * (by - ay)
        on_edge |= (
            (side == 0)
            & (np.minimum(ax, bx) <= xs)
            & (xs <= np.maximum(ax, bx))
            & (np.minimum(ay, by) <= ys)
            & (ys <= np.maximum(ay, by))
        )
        winding += (ay <= ys) & (by > ys) & (side > 0)
        winding -= (by <= ys) & (ay > ys) & (side < 0)
    return winding != 0, on_edge


# Eighths of a pixel keep every product exact, so "on an edge" is decided without rounding.
eighths = st.integers(-16, 8 * 14).map(lambda k: k / 8)


@settings(max_examples=150, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), pts=st.lists(st.tuples(eighths, eighths), min_size=3, max_size=9))
def test_fill_polygon_matches_reference_off_the_edges(h, w, pts):
    points = np.array(pts, dtype=np.float64)
    inside, on_edge = reference_inside(points, h, w)
    got = fill_polygon(points, h, w)
    np.testing.assert_array_equal(got[~on_edge], inside[~on_edge])


@settings(max_examples=60, deadline=None)
@given(side=st.sampled_from([4, 8, 16]), pts=st.lists(st.tuples(eighths, eighths), min_size=3, max_size=7))
def test_polygon_percent_path_matches_reference(side, pts):
    pixels = np.array(pts, dtype=np.float64)
    inside, on_edge = reference_inside(pixels, side, side)
    result = poly((pixels * 100 / side).tolist(), w=side, h=side)
    try:
        got = paint(result) == 1
    except ResultError as exc:
        assert "covers no pixel" in str(exc) and not inside[~on_edge].any()
        return
    np.testing.assert_array_equal(got[~on_edge], inside[~on_edge])


@settings(max_examples=60, deadline=None)
@given(st.tuples(*[st.floats(-5, 25)] * 2, *[st.floats(0.2, 12)] * 2, st.floats(0, 360)))
def test_fill_ellipse_crops_nothing_inside(shape):
    cx, cy, rx, ry, angle = shape
    ys, xs = np.mgrid[0:20, 0:20] + 0.5
    t = math.radians(angle)
    u, v = (xs - cx) * math.cos(t) + (ys - cy) * math.sin(t), (ys - cy) * math.cos(t) - (xs - cx) * math.sin(t)
    np.testing.assert_array_equal(fill_ellipse(cx, cy, rx, ry, angle, 20, 20), (u / rx) ** 2 + (v / ry) ** 2 <= 1)


def test_later_region_wins_and_overlap_is_counted_once():
    results = [
        rect(0, 0, 75, 100, label="road", rid="a"),
        rect(50, 0, 50, 100, label="car", rid="b"),
        rect(50, 0, 25, 100, label="sky", rid="c"),
        rect(0, 0, 25, 25, label="road", rid="d"),
    ]
    out = annotation_to_label_map(results, CLASSES)
    np.testing.assert_array_equal(out.label_map, grid("0021 0021 0021 0021"))
    # Column 2 only (road, car, then sky), each pixel once; road over road at (0, 0) is no overlap.
    assert (out.regions, out.overlap_pixels) == (4, 4)


def test_unlabeled_value_fills_unpainted_pixels_and_can_be_a_class():
    out = annotation_to_label_map([rect(0, 0, 50, 100, label="road")], CLASSES, unlabeled_value=0)
    np.testing.assert_array_equal(out.label_map, grid("0000 0000 0000 0000"))
    assert paint(rect(0, 0, 50, 100, label="car"))[0].tolist() == [1, 1, 255, 255]


def test_other_tags_and_types_are_ignored_not_errors():
    results = [
        {"id": "c", "type": "choices", "value": {"choices": ["x"]}},
        rect(0, 0, 50, 50),
        {**rect(0, 0, 100, 100, rid="other"), "from_name": "other"},
    ]
    out = annotation_to_label_map(results, CLASSES, from_names={"tag"}, unlabeled_value=0)
    assert out.ignored == {"choices": 1, "control:other": 1} and out.regions == 1
    # The dropped region covered the whole image: what it held is unknown, so 255, never the unpainted class.
    np.testing.assert_array_equal(out.label_map, grid("11.. 11.. .... ...."))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 9).flatmap(
        lambda h: st.integers(1, 9).flatmap(
            lambda w: st.lists(st.sampled_from([0, 1, 2, 255]), min_size=h * w, max_size=h * w).map(
                lambda v: np.array(v, dtype=np.uint8).reshape(h, w)
            )
        )
    )
)
def test_brush_round_trip_gives_the_label_map_back(label_map):
    results = label_map_to_brush_results(label_map, CLASSES, task_id=5, from_name="tag", to_name="image")
    present = sorted(set(label_map.flat) - {255})
    assert [r["value"]["brushlabels"] for r in results] == [[CLASSES[c]] for c in present]
    if not results:
        return
    out = annotation_to_label_map(results, CLASSES, height=label_map.shape[0], width=label_map.shape[1])
    np.testing.assert_array_equal(out.label_map, label_map)
    assert out.overlap_pixels == 0


def test_region_ids_are_deterministic_and_differ_between_tasks():
    m = grid("01 2.")
    ids = [
        [r["id"] for r in label_map_to_brush_results(m, CLASSES, task_id=t, from_name="tag", to_name="image")]
        for t in (1, 1, 2)
    ]
    assert ids[0] == ids[1] and not set(ids[0]) & set(ids[2]) and len(set(ids[0])) == 3
    assert all(len(i) == 10 and i.isalnum() for i in ids[0])


def test_brush_results_hold_what_label_studio_needs():
    (r,) = label_map_to_brush_results(grid("1. .."), CLASSES, task_id=1, from_name="tag", to_name="image")
    assert r["type"] == "brushlabels" and r["value"]["format"] == "rle" and r["value"]["brushlabels"] == ["car"]
    assert (r["original_width"], r["original_height"], r["image_rotation"]) == (2, 2, 0)
    # The SDK's own decoder: RGBA per pixel, the editor reading alpha; the mask is 0/255 in all four.
    rgba = decode_rle(r["value"]["rle"]).reshape(2, 2, 4)
    np.testing.assert_array_equal(rgba, np.array([[255, 0], [0, 0]], np.uint8)[:, :, None].repeat(4, axis=2))
    with pytest.raises(ResultError, match=r"\[7\]"):
        label_map_to_brush_results(grid("17"), CLASSES, task_id=1, from_name="tag", to_name="image")


DELETE = object()


def changed(base: dict, **paths) -> dict:
    """A copy of `base` with value__x=... setting value["x"] (DELETE removes the key)."""
    out = copy.deepcopy(base)
    for path, new in paths.items():
        *parents, last = path.split("__")
        node = out
        for key in parents:
            node = node[key]
        if new is DELETE:
            node.pop(last, None)
        else:
            node[last] = new
    return out


RECT, ELLIPSE = rect(0, 0, 50, 50, rid="bad1"), ellipse(50, 50, 10, 10, rid="bad1")
POLY, BRUSH = poly([[0, 0], [50, 0], [0, 50]], rid="bad1"), brush(np.zeros((4, 4), np.uint8), rid="bad1")
ERRORS = {
    "rle_garbage": (changed(BRUSH, value__rle=[1, 2, 3]), "value.rle does not decode"),
    "rle_wrong_size": (changed(brush(np.zeros((4, 3), np.uint8), rid="bad1"), original_width=4), "decode to 4x4"),
    "rle_not_list": (changed(BRUSH, value__rle="abc"), "value.rle does not decode"),
    "rle_missing": (changed(BRUSH, value__rle=DELETE), "'value.rle'"),
    "width_zero": (changed(RECT, original_width=0), "original_width is 0"),
    "width_text": (changed(RECT, original_width="4"), "original_width is '4'"),
    "width_fraction": (changed(RECT, original_width=4.5), "original_width is 4.5"),
    "width_huge": (changed(RECT, original_width=2**15 + 1), "1..32768"),
    "height_missing": (changed(RECT, original_height=DELETE), "'original_height'"),
    "label_unknown": (
        changed(RECT, value__rectanglelabels=["bus"]),
        "'bus' is not a class; valid names: road, car, sky",
    ),
    "labels_several": (changed(RECT, value__rectanglelabels=["car", "road"]), "2 labels"),
    "labels_empty": (changed(RECT, value__rectanglelabels=[]), "empty label list"),
    "labels_missing": (changed(RECT, value__rectanglelabels=DELETE), "'value.rectanglelabels'"),
    "type_unknown": (changed(RECT, type="vectorlabels"), "result type 'vectorlabels' is not supported"),
    "label_not_text": (changed(RECT, value__rectanglelabels=[3]), "label 3 is not"),
    "polygon_two_points": (changed(POLY, value__points=[[0, 0], [50, 50]]), "at least 3"),
    "polygon_outside": (changed(POLY, value__points=[[110, 0], [150, 0], [150, 50]]), "covers no pixel"),
    "polygon_nan": (changed(POLY, value__points=[[0, 0], [float("nan"), 0], [0, 50]]), "finite"),
    "polygon_inf": (changed(POLY, value__points=[[0, 0], [50, float("inf")], [0, 50]]), "finite"),
    "polygon_text_point": (changed(POLY, value__points=[[0, 0], ["50", 0], [0, 50]]), "expected a number"),
    "polygon_bad_pair": (changed(POLY, value__points=[[0, 0], [50], [0, 50]]), "expected [x, y]"),
    "polygon_open": (changed(POLY, value__closed=False), "not closed"),
    "polygon_no_points": (changed(POLY, value__points=DELETE), "'value.points'"),
    "rectangle_outside": (changed(RECT, value__x=-80), "covers no pixel"),
    "rectangle_flat": (changed(RECT, value__height=0), "not positive"),
    "rectangle_missing_x": (changed(RECT, value__x=DELETE), "missing key 'value.x'"),
    "ellipse_outside": (changed(ELLIPSE, value__x=200), "covers no pixel"),
    "ellipse_no_radius": (changed(ELLIPSE, value__radiusX=0), "not positive"),
    "rotated_image": (changed(RECT, image_rotation=90), "rotated"),
    "value_missing": (changed(RECT, value=DELETE), "'value'"),
    "value_not_object": (changed(RECT, value=[1]), "'value' is [1], expected an object"),
    "from_name_missing": (changed(RECT, from_name=DELETE), "'from_name'"),
    "type_missing": (changed(RECT, type=DELETE), "'type'"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_bad_regions_raise_result_error_naming_the_region(name):
    result, words = ERRORS[name]
    with pytest.raises(ResultError) as info:
        annotation_to_label_map([rect(0, 0, 25, 25, rid="good0"), result], CLASSES)
    # Without an id the position names the region.
    message = str(info.value)
    assert "'bad1'" in message and words in message, message


def test_sizes_must_agree_with_the_image_and_each_other():
    with pytest.raises(ResultError, match=r"'r1'.*4x4 differs from the size 5x4 of the image"):
        annotation_to_label_map([rect(0, 0, 50, 50)], CLASSES, height=4, width=5)
    with pytest.raises(ResultError, match=r"'b'.*8x4 differs from the size 4x4 of region 'a'"):
        annotation_to_label_map([rect(0, 0, 50, 50, rid="a"), rect(0, 0, 50, 50, rid="b", w=8)], CLASSES)


def test_empty_results_and_bad_arguments():
    with pytest.raises(ResultError, match="empty result"):
        annotation_to_label_map([], CLASSES)
    with pytest.raises(ResultError, match="nothing to paint.*1 choices"):
        annotation_to_label_map([{"id": "c", "type": "choices", "value": {}}], CLASSES)
    with pytest.raises(ResultError, match="result #0 is str"):
        annotation_to_label_map(["x"], CLASSES)
    for kwargs in ({"classes": ["a", "a"]}, {"unlabeled_value": 256}, {"height": 4}):
        args = {"classes": CLASSES, **kwargs}
        with pytest.raises(ParamsError):
            annotation_to_label_map([rect(0, 0, 50, 50)], **args)


def test_label_studio_export_fixture_decodes_to_the_expected_map():
    (task,) = json.loads((FIXTURES / "export_task_brush_polygon.json").read_text())
    done = [a for a in task["annotations"] if not a["was_cancelled"]]
    out = annotation_to_label_map(done[0]["result"], CLASSES, height=8, width=12)
    expected = grid(
        "222222222222 222222222222 ............ ............ ...111000000 000111000000 000111000000 000000000000"
    )
    np.testing.assert_array_equal(out.label_map, expected)
    assert (out.regions, out.overlap_pixels, out.ignored) == (3, 6, {"choices": 1})
    with pytest.raises(ResultError, match="empty result"):
        annotation_to_label_map(task["annotations"][1]["result"], CLASSES)


junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 40)
    | st.sampled_from([2**15 + 1, 10**400, -(2**70)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5)
    | st.sampled_from(["brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels", "car", "rle"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "x",
                    "y",
                    "width",
                    "height",
                    "radiusX",
                    "radiusY",
                    "points",
                    "rle",
                    "format",
                    "rotation",
                    "closed",
                    "brushlabels",
                    "polygonlabels",
                    "rectanglelabels",
                    "ellipselabels",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)
garbage_result = st.fixed_dictionaries(
    {},
    optional={
        "id": junk,
        "type": st.sampled_from(["brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels"]) | junk,
        "from_name": st.just("tag") | junk,
        "original_width": st.integers(-2, 9) | junk,
        "original_height": st.integers(-2, 9) | junk,
        "image_rotation": st.just(0) | junk,
        "value": junk,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(garbage_result | junk, max_size=3))
def test_garbage_only_ever_raises_pipeline_errors(results):
    try:
        out = annotation_to_label_map(results, CLASSES)
    except PipelineError:
        return
    assert out.label_map.dtype == np.uint8 and out.regions >= 1


VALID = [rect(0, 0, 50, 50), poly([[0, 0], [50, 0], [0, 50]]), ellipse(50, 50, 20, 20), BRUSH]
PATHS = [
    "id",
    "type",
    "from_name",
    "original_width",
    "original_height",
    "image_rotation",
    "value",
    "value__x",
    "value__width",
    "value__points",
    "value__rle",
    "value__rotation",
    "value__radiusX",
    "value__closed",
    "value__format",
    "value__rectanglelabels",
    "value__polygonlabels",
    "value__brushlabels",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.dictionaries(st.sampled_from(PATHS), junk | st.just(DELETE), min_size=1, max_size=3))
def test_damaged_regions_only_ever_raise_pipeline_errors(base, paths):
    # Inside `value` first, so that replacing `value` itself comes last.
    paths = dict(sorted(paths.items(), key=lambda kv: "__" not in kv[0]))
    if "value" in paths:
        paths = {k: v for k, v in paths.items() if "__" not in k}
    try:
        annotation_to_label_map([changed(base, **paths)], CLASSES)
    except PipelineError:
        pass
