"""Hostile input: arbitrary bytes and JSON never escape as anything but the project's own errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import PipelineError
from pipeline.labelstudio import rle
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.task_images import read_local_image

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
)
REGION_KEYS = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels"]),
        "original_width": st.integers(-5, 2**20) | JSON,
        "original_height": st.integers(-5, 2**20) | JSON,
        "value": st.dictionaries(
            st.sampled_from(
                [
                    "rle",
                    "points",
                    "x",
                    "y",
                    "width",
                    "height",
                    "radiusX",
                    "radiusY",
                    "brushlabels",
                    "polygonlabels",
                    "format",
                    "rotation",
                ]
            ),
            JSON,
            max_size=8,
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.integers(0, 255), max_size=64) | st.binary(max_size=64),
    height=st.integers(-2, 4096),
    width=st.integers(-2, 4096),
)
def test_rle_decoder_only_raises_its_own_error(data, height, width) -> None:
    try:
        rle.decode(data, height, width)
    except PipelineError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(results=st.lists(REGION_KEYS | JSON, max_size=4))
def test_result_parser_only_raises_its_own_error(results) -> None:
    try:
        annotation_to_label_map(results, ["road", "car"])
    except PipelineError:
        pass


def test_local_files_cannot_leave_the_document_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "key.png").write_bytes(b"x")
    (root / "inside.png").write_bytes(b"y")
    os.symlink(outside, root / "link")
    assert read_local_image("/data/local-files/?d=inside.png", root) == b"y"
    for reference in (
        "/data/local-files/?d=../secret/key.png",
        "/data/local-files/?d=/etc/passwd",
        "/data/local-files/?d=link/key.png",
        "/data/upload/1/a.png",
    ):
        with pytest.raises(PipelineError):
            read_local_image(reference, root)
