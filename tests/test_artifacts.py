"""The files between stages: one reader and one writer each, and one error per kind of damage."""

from __future__ import annotations

import json

import pytest

from pipeline.artifacts import annotations, reports, snapshot, splits
from pipeline.core.errors import ArtifactError


def test_index_round_trip_and_its_errors(tmp_path):
    entries = [{"task_id": 1, "maps": {}}, {"task_id": 5, "maps": {"u2": {"file": "5/u2.png"}}}]
    with annotations.index_writer(tmp_path) as add:
        for entry in entries:
            add(entry)
    assert annotations.read_index(tmp_path) == entries
    assert annotations.index_by_task(tmp_path)[5] == entries[1]
    with pytest.raises(ArtifactError, match=r"index.jsonl not found; run the validate stage first"):
        annotations.read_index(tmp_path / "nothing")
    annotations.index_path(tmp_path).write_text('{"task_id": 1}\n{"task_id": \n')
    with pytest.raises(ArtifactError, match=r"index.jsonl line 2 is not JSON"):
        annotations.read_index(tmp_path)


@pytest.mark.parametrize("keyed", [False, True])
def test_streamed_report_is_json_of_one_shape(tmp_path, keyed):
    path = tmp_path / "report.json"
    with reports.streamed_report(path, "tasks", keyed=keyed) as report:
        for task_id in (3, 4):
            report.add({"task_id": task_id, "fate": "ok"}, task_id)
        report.finish({"summary": {"tasks": 2}, "project": {"id": 7, "title": "t"}})
    loaded = json.loads(path.read_text())
    entries = [{"task_id": 3, "fate": "ok"}, {"task_id": 4, "fate": "ok"}]
    assert loaded["tasks"] == ({"3": entries[0], "4": entries[1]} if keyed else entries)
    assert loaded["summary"] == {"tasks": 2} and reports.report_project(path) == {"id": 7, "title": "t"}
    assert path.read_text().count("\n") >= 4  # one line per entry: readable and diffable


def test_failed_report_leaves_no_file(tmp_path):
    path = tmp_path / "report.json"
    with pytest.raises(RuntimeError), reports.streamed_report(path, "tasks") as report:
        report.add({"task_id": 1})
        raise RuntimeError("stage failed")
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_reports_read_back_what_later_stages_need(tmp_path):
    path = tmp_path / "agreement.json"
    with reports.streamed_report(path, "tasks", keyed=True) as report:
        report.add({"task_id": 9}, 9)
        report.finish({"summary": {"tasks": 1}, "annotators": {"u1": {}}, "review": [{"task_id": 9}]})
    assert reports.review_ids(path) == [9]
    assert reports.agreement_summary(path) == {"summary": {"tasks": 1}, "annotators": {"u1": {}}}
    assert reports.review_ids(None) == [] and reports.agreement_summary(tmp_path / "none.json") == {}


def test_splits_take_any_names(tmp_path):
    splits.write_splits(tmp_path, {"fit": [3, 1], "holdout": [2]})
    assert splits.read_split(tmp_path, "fit") == [1, 3] and splits.split_names(tmp_path) == ["fit", "holdout"]
    with pytest.raises(ArtifactError, match=r"split 'val' is not in .* \(it holds fit, holdout\); set train.val_split"):
        splits.read_split(tmp_path, "val", "train.val_split")
    with pytest.raises(ArtifactError, match="no split in .*; run the split stage first"):
        splits.read_split(tmp_path / "empty", "train")


def test_snapshot_lines_round_trip(tmp_path):
    lines = [snapshot.record_line({"id": i, "data": {}}, {"ref": f"/x/{i}.png"}) for i in (1, 2)]
    snapshot.tasks_path(tmp_path).write_text("".join(lines))
    assert [task["id"] for task, _ in snapshot.snapshot_records(tmp_path)] == [1, 2]
    with pytest.raises(ArtifactError, match="tasks.jsonl not found; run the pull stage first"):
        list(snapshot.snapshot_records(tmp_path / "none"))
    with pytest.raises(ArtifactError, match="project.json not found; run the pull stage first"):
        snapshot.read_project(tmp_path)
