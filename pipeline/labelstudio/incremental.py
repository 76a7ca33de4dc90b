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
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import orjson

from pipeline.core.atomic import write_json
from pipeline.labelstudio.client import LabelStudioClient

FINGERPRINT_FIELDS = (
    "updated_at",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "predictions_model_versions",
)
# Columns the task list would otherwise compute and send for every task (annotation results are megabytes).
HEAVY_COLUMNS = (
    "annotations_results",
    "predictions_results",
    "annotations_ids",
    "annotators",
    "drafts",
    "comment_authors",
    "file_upload",
    "storage_filename",
    "data",
    "avg_lead_time",
    "predictions_score",
)
# The mark is taken from the server's clock (second resolution) before exporting, minus a margin:
# a task saved while the pull runs is exported again next time rather than missed.
MARK_MARGIN = timedelta(seconds=5)
# Above this share of changed tasks, one full export is cheaper than a selection.
FULL_EXPORT_SHARE = 0.5


@dataclass(frozen=True)
class Changes:
    """What differs from the last snapshot: ids to export (sorted) and ids to drop."""

    changed: list[int]
    deleted: set[int]


@dataclass(frozen=True)
class Survey:
    """What to export (None: everything) and what the state records for the next pull."""

    changes: Changes | None
    record: dict


def survey(client: LabelStudioClient, project_id: int, state: dict | None) -> Survey:
    """Compare the project with the last pull's state, the cheap way when it can tell.

    Fast path: the tasks whose `updated_at` is past the last pull's mark (a filtered query), when
    the project's task and prediction counts say nothing was deleted and no prediction came in
    bulk. Otherwise every task's fingerprint is listed and compared (one light row per task).
    """
    counters, mark = _project_counters(client, project_id)
    if state is not None and state.get("mark") and state.get("counters"):
        recent = _task_rows(client, project_id, _after(state["mark"]))
        known = state["tasks"]
        new = [task_id for task_id in recent if str(task_id) not in known]
        if counters == [len(known) + len(new), state["counters"][1]]:
            # The margin brings back tasks seen last time: only a different fingerprint counts.
            changed = sorted(task_id for task_id, print_ in recent.items() if known.get(str(task_id)) != print_)
            tasks = {**known, **{str(task_id): print_ for task_id, print_ in recent.items()}}
            return Survey(Changes(changed, set()), {"mark": mark, "counters": counters, "tasks": tasks})
    fingerprints = _task_rows(client, project_id, [])
    record = {"mark": mark, "counters": counters, "tasks": {str(k): v for k, v in sorted(fingerprints.items())}}
    return Survey(changes_since(state, fingerprints), record)


def _project_counters(client: LabelStudioClient, project_id: int) -> tuple[list[int], str]:
    """([task count, prediction count], the server's clock minus a margin) read before anything is exported."""
    response = client.call(f"get project {project_id}", client.request, "GET", f"/api/projects/{project_id}/")
    body = response.json()
    now = parsedate_to_datetime(response.headers["Date"]) if response.headers.get("Date") else datetime.now(UTC)
    mark = (now - MARK_MARGIN).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return [int(body.get("task_number") or 0), int(body.get("total_predictions_number") or 0)], mark


def _after(mark: str) -> list[dict]:
    return [{"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": mark}]


def _task_rows(
    client: LabelStudioClient, project_id: int, filters: list[dict], page_size: int = 1000
) -> dict[int, str]:
    """{task id: fingerprint} of the project's tasks matching `filters` (all when empty), light rows only."""
    hidden = [f"tasks:{column}" for column in HEAVY_COLUMNS]
    query = json.dumps(
        {"hiddenColumns": {"explore": hidden, "labeling": hidden}, "filters": {"conjunction": "and", "items": filters}}
    )
    fingerprints: dict[int, str] = {}
    page = 1
    while True:
        params = {"project": project_id, "page": page, "page_size": page_size, "fields": "task_only", "query": query}
        body = client.call(
            f"list tasks of project {project_id} (page {page})", client.request, "GET", "/api/tasks", params=params
        ).json()
        for task in body["tasks"]:
            fingerprints[int(task["id"])] = json.dumps([task.get(field) for field in FINGERPRINT_FIELDS])
        if not body["tasks"] or page * page_size >= body["total"]:
            return fingerprints
        page += 1


def task_fingerprints(client: LabelStudioClient, project_id: int) -> dict[int, str]:
    """{task id: fingerprint} of every task of the project, from the light task list."""
    return _task_rows(client, project_id, [])


def export_selected(client: LabelStudioClient, project_id: int, task_ids: list[int]) -> Iterator[bytes]:
    """The JSON export of just `task_ids` (a temporary data-manager view selects them), streamed."""
    view = client.call(
        f"create a selection view in project {project_id}",
        client.request,
        "POST",
        "/api/dm/views/",
        json={
            "project": project_id,
            "selected_items": {"all": False, "included": task_ids},
            "data": {"filters": {"conjunction": "and", "items": []}},
        },
    ).json()
    try:
        yield from client.export_tasks(project_id, task_filter_options={"view": view["id"]})
    finally:
        client.call(f"delete selection view {view['id']}", client.request, "DELETE", f"/api/dm/views/{view['id']}/")


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


def write_state(path: Path, project_id: int, snapshot: Path, record: dict) -> None:
    """Record a survey's result for the snapshot now in `snapshot`."""
    write_json(path, {"project": project_id, "snapshot_sha256": file_sha256(snapshot / "tasks.jsonl"), **record})


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
