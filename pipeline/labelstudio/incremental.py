"""Incremental pull: export only the tasks created or changed since the last snapshot, drop the deleted ones.

Each pull lists every task of the project with a few cheap fields (no annotation results), its
fingerprint: `updated_at` (Label Studio moves it when an annotation is saved or deleted) and the
annotation and prediction counters and model versions (bulk prediction imports leave `updated_at`
alone). Tasks whose fingerprint differs from the one recorded at the last pull, and new ids, are
exported through a data-manager view that selects exactly them, with the same serializer as a
full export; ids no longer listed are deleted. The new snapshot is the old one's lines for the
unchanged tasks merged, by id, with the fresh lines: byte for byte what a full pull writes.

The state (project id, fingerprints, hash of the snapshot it belongs to) lives beside the
snapshot, not in it: a snapshot restored from elsewhere (git checkout + dvc pull) does not match
the recorded hash and the next pull is a full one. Images are content-addressed and kept; a full
pull (`pull.incremental: false`) also re-checks the images of unchanged tasks.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from pipeline.atomic import write_json
from pipeline.labelstudio.client import LabelStudioClient

FINGERPRINT_FIELDS = ("updated_at", "total_annotations", "cancelled_annotations", "total_predictions",
                      "predictions_model_versions")
# Columns the task list would otherwise compute and send for every task (annotation results are megabytes).
HEAVY_COLUMNS = ("annotations_results", "predictions_results", "annotations_ids", "annotators", "drafts",
                 "comment_authors", "file_upload", "storage_filename", "data", "avg_lead_time", "predictions_score")
# Above this share of changed tasks, one full export is cheaper than a selection.
FULL_EXPORT_SHARE = 0.5


@dataclass(frozen=True)
class Changes:
    """What differs from the last snapshot: ids to export (sorted) and ids to drop."""

    changed: list[int]
    deleted: set[int]


def task_fingerprints(client: LabelStudioClient, project_id: int, page_size: int = 1000) -> dict[int, str]:
    """{task id: fingerprint} of every task of the project, from the light task list."""
    hidden = [f"tasks:{column}" for column in HEAVY_COLUMNS]
    query = json.dumps({"hiddenColumns": {"explore": hidden, "labeling": hidden}})
    fingerprints: dict[int, str] = {}
    page = 1
    while True:
        params = {"project": project_id, "page": page, "page_size": page_size, "fields": "task_only", "query": query}
        body = client.call(f"list task fingerprints of project {project_id} (page {page})", client._request, "GET",
                           "/api/tasks", params=params).json()
        for task in body["tasks"]:
            fingerprints[int(task["id"])] = json.dumps([task.get(field) for field in FINGERPRINT_FIELDS])
        if not body["tasks"] or page * page_size >= body["total"]:
            return fingerprints
        page += 1


def export_selected(client: LabelStudioClient, project_id: int, task_ids: list[int]) -> Iterator[bytes]:
    """The JSON export of just `task_ids` (a temporary data-manager view selects them), streamed."""
    view = client.call(f"create a selection view in project {project_id}", client._request, "POST", "/api/dm/views/",
                       json={"project": project_id, "selected_items": {"all": False, "included": task_ids},
                             "data": {"filters": {"conjunction": "and", "items": []}}}).json()
    try:
        yield from client.export_tasks(project_id, task_filter_options={"view": view["id"]})
    finally:
        client.call(f"delete selection view {view['id']}", client._request, "DELETE", f"/api/dm/views/{view['id']}/")


def changes_since(state: dict | None, fingerprints: dict[int, str]) -> Changes | None:
    """The tasks to export and to drop, or None when a full export is due (no usable state, or most changed)."""
    if state is None:
        return None
    before = {int(task_id): print_ for task_id, print_ in state["tasks"].items()}
    changed = sorted(task_id for task_id, print_ in fingerprints.items() if before.get(task_id) != print_)
    if len(changed) > FULL_EXPORT_SHARE * max(1, len(fingerprints)):
        return None
    return Changes(changed, set(before) - set(fingerprints))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state(path: Path, snapshot: Path, project_id: int) -> dict | None:
    """The last pull's state if it belongs to this project and to the snapshot on disk, else None."""
    tasks = snapshot / "tasks.jsonl"
    if not path.exists() or not tasks.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("project") != project_id or not isinstance(state.get("tasks"), dict):
        return None
    return state if state.get("snapshot_sha256") == file_sha256(tasks) else None


def write_state(path: Path, project_id: int, snapshot: Path, fingerprints: dict[int, str]) -> None:
    write_json(path, {"project": project_id, "snapshot_sha256": file_sha256(snapshot / "tasks.jsonl"),
                      "tasks": {str(task_id): print_ for task_id, print_ in sorted(fingerprints.items())}})


def merge_snapshot(previous: Path, fresh: Path, changes: Changes, target: Path) -> int:
    """Write `target`: lines of `previous` for tasks neither changed nor deleted, and all of `fresh`, by id.

    Both inputs are tasks.jsonl files sorted by task id; returns the number of lines written.
    """
    dropped = changes.deleted | set(changes.changed)
    count = 0
    with open(previous, "rb") as old, open(fresh, "rb") as new, open(target, "wb") as out:
        kept = ((task_id, line) for task_id, line in _with_ids(old) if task_id not in dropped)
        for _, line in heapq.merge(kept, _with_ids(new), key=lambda pair: pair[0]):
            out.write(line)
            count += 1
    return count


def _with_ids(lines) -> Iterator[tuple[int, bytes]]:
    for line in lines:
        yield orjson.loads(line)["task"]["id"], line
