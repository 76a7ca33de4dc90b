"""Hand-edited and odd export items, pulled from a saved export and validated: one reason each, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, MergeParams, PullParams, ValidateParams
from pipeline.labelstudio.results import label_map_to_brush_results
from pipeline.stages import merge, pull, validate
from tests import imagefiles

CLASSES = ["road", "car"]
BASE = BaseParams(0, 255, tuple(ClassInfo(n, (0, 0, 0)) for n in CLASSES))
LS = LabelStudioParams(project=0, control_tags=("brush",))


def _map(height: int = 8, width: int = 8, seed: int = 0) -> np.ndarray:
    label = np.zeros((height, width), np.uint8)
    label[: height // 2 + seed % 2] = 1
    return label


def _annotation(annotation_id, author, label: np.ndarray, **extra) -> dict:
    result = label_map_to_brush_results(label, CLASSES, task_id=1, from_name="brush", to_name="image")
    return {
        "id": annotation_id,
        "completed_by": author,
        "result": result,
        "was_cancelled": False,
        "created_at": "2026-01-01T00:00:00Z",
        **extra,
    }


def _run(tmp_path: Path, tasks: list | str, images: dict[str, np.ndarray] | None = None) -> tuple[dict, dict]:
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    for name, pixels in (images or {"a.png": np.zeros((8, 8, 3), np.uint8)}).items():
        cv2.imwrite(str(root / name), pixels)
    export = tmp_path / "export.json"
    export.write_text(tasks if isinstance(tasks, str) else json.dumps(tasks))
    pull.run(
        tmp_path / "raw",
        tmp_path / "images",
        LS,
        PullParams(export_file=str(export), document_root=str(root), workers=1),
    )
    counts = validate.run(
        tmp_path / "raw",
        tmp_path / "images",
        tmp_path / "annotations",
        tmp_path / "validation.json",
        BASE,
        LS,
        ValidateParams(unpainted=None, workers=1),
    )
    report = json.loads((tmp_path / "validation.json").read_text())["tasks"]
    return counts, {t["task_id"] if t["task_id"] is not None else f"item{t['export_item']}": t for t in report}


IMAGE = {"image": "/data/local-files/?d=a.png"}


def test_deleted_users_are_distinct_annotators_never_superseded_nor_pooled(tmp_path: Path) -> None:
    task = {
        "id": 1,
        "data": IMAGE,
        "annotations": [
            _annotation(11, None, _map(seed=0)),
            _annotation(12, None, _map(seed=1)),
            _annotation(13, {"id": None, "email": None}, _map(seed=0)),
            _annotation(14, {"id": 7, "email": "k@x"}, _map()),
        ],
    }
    counts, report = _run(tmp_path, [task])
    entries = report[1]["annotations"]
    assert [e["fate"] for e in entries] == ["ok"] * 4
    assert [e["annotator"] for e in entries] == ["anon-a11", "anon-a12", "anon-a13", "u7"]
    assert [e["annotator_known"] for e in entries] == [False, False, False, True]
    assert sorted(p.name for p in (tmp_path / "annotations" / "1").glob("*.png")) == [
        "anon-a11.png",
        "anon-a12.png",
        "anon-a13.png",
        "u7.png",
    ]
    merge.run(
        tmp_path / "annotations",
        tmp_path / "validation.json",
        tmp_path / "labels",
        tmp_path / "agreement.json",
        BASE,
        MergeParams(workers=1),
    )
    annotators = json.loads((tmp_path / "agreement.json").read_text())["annotators"]
    assert {"anon-a11", "anon-a12", "anon-a13", "u7"} <= set(annotators)


def test_annotator_ids_with_slashes_and_mixed_types_never_crash(tmp_path: Path) -> None:
    task = {
        "id": 1,
        "data": IMAGE,
        "annotations": [
            _annotation(21, {"id": "../../etc/x", "email": "a@x"}, _map()),
            _annotation(22, {"id": "a_b"}, _map()),
            _annotation(23, {"id": "a/b"}, _map()),
            _annotation(24, 5, _map()),
            _annotation("25", {"id": 6}, _map()),
            _annotation(26, {"id": 5.5}, _map()),
            _annotation(27, [1], _map(), created_at=3),
        ],
    }
    counts, report = _run(tmp_path, [task])
    entries = report[1]["annotations"]
    keys = [e["annotator"] for e in entries]
    assert len(set(keys)) == len(keys) and all("/" not in key for key in keys)
    assert keys[1] == "ua_b" and keys[2].startswith("ua_b-") and keys[3] == "u5"
    assert keys[4:] == [
        "anon-a26",
        "anon-a27",
        "u6",
    ]  # odd ids are unknown annotators; the bad annotation id sorts last
    assert (
        entries[6]["fate"] == "rejected"
        and "not an integer" in entries[6]["reason"]
        and "task 1" in entries[6]["reason"]
    )
    assert [e["fate"] for e in entries[:6]] == ["ok"] * 6
    written = {p.relative_to(tmp_path / "annotations") for p in (tmp_path / "annotations").rglob("*.png")}
    assert all(path.parent == Path("1") for path in written) and len(written) == 6
    (tmp_path / "again").mkdir()
    _, again = _run(tmp_path / "again", [task])
    assert [e["annotator"] for e in again[1]["annotations"]] == keys  # deterministic


def test_malformed_items_are_rejected_one_by_one_naming_the_task(tmp_path: Path) -> None:
    good = {"id": 1, "data": IMAGE, "annotations": [_annotation(1, 1, _map())]}
    text = (
        "["
        + ",".join(
            [
                json.dumps(good),
                '{"id": 2, "data": {"image": "/data/local-files/?d=a.png"}, "annotations": {"id": 3, "result": []}}',
                '{"id": 3, "data": {"image": "/data/local-files/?d=a.png"}, "annotations": ['
                + json.dumps(_annotation(4, 1, _map()))
                + ', {"id": 5, "completed_by": 2, "result": [{"type": "brushlabels", "value": {"x": NaN}}]}]}',
                '{"id": 4, "data": {"image": "/data/local-files/?d=a.png", "w": 1e309}, "annotations": []}',
                '{"id": "five", "annotations": []}',
                '"junk"',
                '{"id": 6.5}',
                '{"id": 7, "data": {"image": "/data/local-files/?d=a.png"}, "predictions": "none", "annotations": []}',
                '{"id": 8, "data": {"image": "/data/local-files/?d=a.png"}, '
                '"annotations": [{"id": 99999999999999999999999, "result": []}]}',
            ]
        )
        + "]"
    )
    counts, report = _run(tmp_path, text)
    assert report[1]["fate"] == "ok"
    assert (
        report[2]["fate"] == "rejected"
        and "'annotations' is a dict" in report[2]["reason"]
        and "task 2" in report[2]["reason"]
    )
    assert [a["fate"] for a in report[3]["annotations"]] == ["ok", "rejected"]
    assert "non-finite" in report[3]["annotations"][1]["reason"] and "task 3" in report[3]["annotations"][1]["reason"]
    assert report[4]["fate"] == "rejected" and "non-finite" in report[4]["reason"]
    for item, words in (("item4", "'five'"), ("item5", "str"), ("item6", "6.5")):
        assert report[item]["fate"] == "rejected" and words in report[item]["reason"]
    assert report[7]["fate"] == "rejected" and "'predictions' is a str" in report[7]["reason"]
    assert report[8]["annotations"][0]["fate"] == "rejected" and "64-bit" in report[8]["annotations"][0]["reason"]
    assert counts["tasks"] == 9 and counts["annotations"] == 4


@pytest.mark.parametrize(
    ("text", "offset"),
    [('{"id": 1}', 0), ('[{"id": 1},\n oops]', 13), ('[{"id": 1}] tail', 12), ('[{"id": 1, "x": [1, 2}]', 21), ("", 0)],
)
def test_a_file_that_is_not_a_json_list_fails_with_the_byte_offset(tmp_path: Path, text: str, offset: int) -> None:
    export = tmp_path / "export.json"
    export.write_text(text)
    with pytest.raises(PipelineError, match=f"at byte {offset}$"):
        pull.run(
            tmp_path / "raw",
            tmp_path / "images",
            LS,
            PullParams(export_file=str(export), document_root=str(tmp_path), workers=1),
        )
    assert not (tmp_path / "raw").exists()


def test_exif_rotated_jpeg_is_validated_in_its_displayed_orientation(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    imagefiles.rotated_jpeg(root / "r.jpg", orientation=6, height=8, width=12)  # displayed 8 wide, 12 high
    displayed = _map(height=12, width=8)
    task = {"id": 1, "data": {"image": "/data/local-files/?d=r.jpg"}, "annotations": [_annotation(1, 1, displayed)]}
    counts, report = _run(tmp_path, [task], images={})
    assert report[1]["fate"] == "ok", report[1]
    index = json.loads((tmp_path / "annotations" / "index.jsonl").read_text().splitlines()[0])
    assert (index["height"], index["width"]) == (12, 8)
