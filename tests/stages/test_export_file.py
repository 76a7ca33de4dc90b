"""pull from a saved JSON export with a local document root, then validate and merge: no server."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, MergeParams, PullParams, ValidateParams
from pipeline.demo.crowd import simulate_annotator
from pipeline.demo.synthetic import CLASSES, scene
from pipeline.labelstudio.export import Drawing, export_task
from pipeline.stages import merge, pull, validate

BASE = BaseParams(0, 255, tuple(ClassInfo(n, (0, 0, 0)) for n in CLASSES))


def test_export_file_through_validate_and_merge(tmp_path: Path) -> None:
    root = tmp_path / "files"
    (root / "shots").mkdir(parents=True)
    tasks = []
    for index in range(120):
        image, truth = scene(index, 48, 64)
        cv2.imwrite(str(root / "shots" / f"s{index}.png"), image)
        rng = np.random.default_rng(index)
        drawings = [
            Drawing(10 + k, f"{p}@example.com", simulate_annotator(truth, p, rng, len(CLASSES)), tool)
            for k, (p, tool) in enumerate((("good", "brush"), ("sloppy", "polygon"), ("misser", "brush")))
        ]
        tasks.append(
            export_task(index + 1, f"/data/local-files/?d=shots/s{index}.png", drawings, CLASSES, 3 * index + 1)
        )
    tasks.append({"id": 999, "data": {"image": "/data/local-files/?d=../outside.png"}, "annotations": []})
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks[::-1]))  # any order in: sorted out
    count = pull.run(
        tmp_path / "raw",
        tmp_path / "images",
        LabelStudioParams(project=0),
        PullParams(export_file=str(export), document_root=str(root), workers=2),
    )
    assert count == 121
    lines = (tmp_path / "raw" / "tasks.jsonl").read_text().splitlines()
    assert [json.loads(line)["task"]["id"] for line in lines] == [*range(1, 121), 999]
    assert "leaves the document root" in json.loads(lines[-1])["image"]["error"]
    counts = validate.run(
        tmp_path / "raw",
        tmp_path / "images",
        tmp_path / "annotations",
        tmp_path / "validation.json",
        BASE,
        LabelStudioParams(project=0, control_tags=("brush", "polygon")),
        ValidateParams(workers=2),
    )
    assert counts["annotations_ok"] == 360 and counts["tasks_ok"] == 120
    first = json.loads((tmp_path / "annotations" / "index.jsonl").read_text().splitlines()[0])
    (tmp_path / "images" / first["image"]).unlink()  # merge measures the others' images
    summary = merge.run(
        tmp_path / "annotations",
        tmp_path / "validation.json",
        tmp_path / "labels",
        tmp_path / "agreement.json",
        BASE,
        MergeParams(workers=2),
        images_dir=tmp_path / "images",
    )
    assert summary["tasks"] == 120 and len(list((tmp_path / "labels").glob("*.png"))) == 120
    assert len(list((tmp_path / "labels" / "confidence").glob("*.png"))) == 120
    agreement = json.loads((tmp_path / "agreement.json").read_text())
    quality = {a["email"]: a["iou_vs_consensus"] for a in agreement["annotators"].values()}
    assert quality["good@example.com"] > quality["misser@example.com"]
    offsets = {a["email"]: a["boundary_offset_px"] for a in agreement["annotators"].values()}
    assert offsets["good@example.com"] < offsets["sloppy@example.com"]  # wobbly edges lie further off
    assert agreement["summary"]["corrections"] == ["missed_objects", "boundary_offsets"]
    assert agreement["summary"]["image_measured_tasks"] == [119, 120]
    people = {a["email"]: a for a in agreement["annotators"].values()}
    assert people["good@example.com"]["boundary_offset_reference"] == "image_edges"
    assert people["good@example.com"]["edge_fidelity"] > people["sloppy@example.com"]["edge_fidelity"]
    undone = {a["email"]: a["missed_object_classes"] for a in agreement["annotators"].values()}
    assert undone["misser@example.com"] and not undone["good@example.com"]
    entries = agreement["tasks"].values()
    assert all(0 <= t["against_majority"] <= 1 and 0 < t["mean_confidence"] <= 1 for t in entries)


def test_malformed_export_items_get_one_clear_error_each(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), np.zeros((8, 8, 3), np.uint8))
    good = {
        "id": 2,
        "data": {"image": "/data/local-files/?d=a.png"},
        "annotations": [
            {"id": 5, "completed_by": {"id": 1}, "result": [{"type": "brushlabels", "value": "nope"}]},
            "junk",
            7,
        ],
    }
    export = tmp_path / "export.json"
    export.write_text(json.dumps([good, {"id": 3, "data": "not a dict", "annotations": "nor a list"}]))
    pull.run(
        tmp_path / "raw",
        tmp_path / "images",
        LabelStudioParams(project=0),
        PullParams(export_file=str(export), document_root=str(root), workers=1),
    )
    counts = validate.run(
        tmp_path / "raw",
        tmp_path / "images",
        tmp_path / "annotations",
        tmp_path / "validation.json",
        BASE,
        LabelStudioParams(project=0),
        ValidateParams(workers=1),
    )
    report = {t["task_id"]: t for t in json.loads((tmp_path / "validation.json").read_text())["tasks"]}
    assert [a["fate"] for a in report[2]["annotations"]] == ["rejected"] * 3
    assert (
        "not an object" in report[2]["annotations"][1]["reason"] and "task 2" in report[2]["annotations"][0]["reason"]
    )
    assert report[3]["fate"] == "rejected" and "'annotations' is a str, not a list" in report[3]["reason"]
    assert counts["annotations"] == 3 and counts["tasks"] == 2


def test_task_edges_read_only_the_task_image_inside_the_image_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    picture = np.zeros((6, 8, 3), np.uint8)
    picture[:, 4:] = 200
    cv2.imwrite(str(images / "a.png"), picture)
    cv2.imwrite(str(tmp_path / "outside.png"), picture)
    task = {"image": "a.png", "height": 6, "width": 8}
    edges = merge.task_edges(images, task)
    assert edges.shape == (6, 8) and edges[:, 3:5].min() > 0 and edges[:, 0].max() == 0
    (images / "link.png").symlink_to(tmp_path / "outside.png")
    outside = ("../outside.png", str(tmp_path / "outside.png"), "link.png")  # climbing, absolute, symlink
    for hostile in (*outside, "missing.png", None, 7, "", "a\x00.png"):
        assert merge.task_edges(images, {**task, "image": hostile}) is None
    assert merge.task_edges(images, {**task, "height": 7}) is None  # not the label maps' size
    (images / "junk.png").write_bytes(b"not an image")
    assert merge.task_edges(images, {**task, "image": "junk.png"}) is None
