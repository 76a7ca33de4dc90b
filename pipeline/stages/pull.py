"""pull: snapshot a Label Studio project (or a saved JSON export) into data/raw and data/images.

  data/raw/tasks.jsonl    one line per task, sorted by task id: {"task": <export task>, "image": <record>}
                          where <record> is {"ref", "file", "sha256", "etag"} or {"ref", "error"};
                          a task rejected as a whole (see pipeline.labelstudio.export_reader) has "problem"
  data/raw/rejected.jsonl export items that are no task at all: {"position", "reason"}
  data/raw/project.json   id, title and label config of the project (no URL, no token)
  data/images/ab/<sha256><ext>   every task image, named by content hash

The tasks file is written whole or not at all; images are only ever added under their
content hash (and unreferenced ones removed once the new tasks file is in place), so a pull
that fails half-way leaves the previous snapshot intact. The content is deterministic
(sorted lines and keys, no timestamps of our own): pulling an unchanged project gives
byte-identical files and DVC skips every later stage; new predictions or annotations change
data/raw but not data/images, so training is not redone for them. Images are fetched once: a
re-pull sends the previous ETag (the server answers 304) or, for local files, compares
content hashes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from pipeline.artifacts.snapshot import PROJECT, REJECTED, record_line, snapshot_records, tasks_path
from pipeline.core.atomic import replace_dir, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.params import LabelStudioParams, PullParams
from pipeline.labelstudio import incremental
from pipeline.labelstudio.client import LabelStudioClient, normalise_task
from pipeline.labelstudio.export_reader import ExportItem, iter_export
from pipeline.labelstudio.task_images import (
    ImageField,
    ImageSource,
    fetch_image,
    image_field,
    image_reference,
    image_source,
)

BATCH = 64


def remove_unreferenced(images: Path, snapshot: Path) -> int:
    """Delete images no task of the snapshot refers to; returns how many went."""
    wanted = {image["file"] for _, image in snapshot_records(snapshot) if image.get("file")}
    removed = 0
    for path in images.glob("*/*"):
        if path.relative_to(images).as_posix() not in wanted:
            path.unlink()
            removed += 1
    return removed


def previous_images(snapshot: Path) -> dict[str, dict]:
    """Image records of the last snapshot, by reference; none before the first pull."""
    if not tasks_path(snapshot).exists():
        return {}
    return {image["ref"]: image for _, image in snapshot_records(snapshot) if image.get("file") and image.get("ref")}


def write_snapshot(
    items: Iterator[ExportItem],
    source: ImageSource,
    field: ImageField,
    snapshot: Path,
    old_snapshot: Path,
    images: Path,
    workers: int,
) -> int:
    """Fetch the images of streamed export items and write tasks.jsonl sorted by task id; returns the count.

    Items that are no task at all go to rejected.jsonl ({"position", "reason"}), a task rejected
    as a whole keeps its line with a "problem" (validate reports both); nothing is dropped silently.
    """
    previous = previous_images(old_snapshot)
    unsorted = snapshot / "tasks.unsorted.jsonl"
    offsets: list[tuple[int, int, int]] = []  # (task id, offset, length): only these stay in memory
    with (
        open(unsorted, "w") as out,
        open(snapshot / REJECTED, "w") as rejected,
        ThreadPoolExecutor(max(1, workers)) as pool,
        tqdm(desc="pull", unit="task") as bar,
    ):
        batch: list[ExportItem] = []
        for item in _chain_end(items):
            if item is not None and item.task is None:
                rejected.write(json.dumps({"position": item.position, "reason": item.problem}, sort_keys=True) + "\n")
                continue
            if item is not None:
                batch.append(ExportItem(item.position, normalise_task(item.task), item.problem))
            if batch and (item is None or len(batch) == BATCH):
                records = pool.map(lambda i: _image_record(i, field, previous, source, images), batch)
                for entry, record in zip(batch, records):
                    line = record_line(entry.task, record, entry.problem)
                    offsets.append((entry.task["id"], out.tell(), len(line)))
                    out.write(line)
                bar.update(len(batch))
                batch = []
    _write_sorted(unsorted, offsets, tasks_path(snapshot))
    unsorted.unlink()
    return len(offsets)


def _image_record(item: ExportItem, field: ImageField, previous: dict, source: ImageSource, images: Path) -> dict:
    reference = image_reference(item.task, field)
    if item.problem:
        return {"ref": reference if isinstance(reference, str) else None, "error": "not fetched: the task is rejected"}
    known = previous.get(reference) if isinstance(reference, str) else None
    return fetch_image(reference, known, source, images, item.task["id"])


def _chain_end(tasks: Iterator[dict]) -> Iterator[dict | None]:
    yield from tasks
    yield None  # marks the end so the last partial batch is flushed


def _write_sorted(unsorted: Path, offsets: list[tuple[int, int, int]], target: Path) -> None:
    counts = Counter(task_id for task_id, _, _ in offsets)
    duplicates = sorted(task_id for task_id, count in counts.items() if count > 1)
    if duplicates:
        raise PipelineError(f"the export holds task ids more than once: {duplicates[:10]}; export the project again")
    with open(unsorted) as source, open(target, "w") as out:
        for _, offset, _ in sorted(offsets):
            source.seek(offset)
            out.write(source.readline())


def _from_server(
    client: LabelStudioClient,
    project_id: int,
    source: ImageSource,
    image_tag: str,
    snapshot: Path,
    out: Path,
    images: Path,
    params: PullParams,
    state_path: Path,
) -> tuple[int, dict | None]:
    """Write the snapshot of a live project: all of it, or only what changed (pipeline.labelstudio.incremental)."""
    # The survey comes before the export: a task changed in between is seen again next time.
    survey = (
        incremental.survey(client, project_id, incremental.read_state(state_path, out, project_id))
        if params.incremental
        else None
    )
    changes = survey.changes if survey else None
    export_path = snapshot / "export.json"
    with open(export_path, "wb") as handle:
        chunks = (
            client.export_tasks(project_id)
            if changes is None
            else incremental.export_selected(client, project_id, changes.changed)
            if changes.changed
            else [b"[]"]
        )
        for chunk in chunks:
            handle.write(chunk)
    count = write_snapshot(iter_export(export_path), source, image_tag, snapshot, out, images, params.workers)
    export_path.unlink()
    if changes is not None:
        fresh = snapshot / "tasks.changed.jsonl"
        (snapshot / "tasks.jsonl").rename(fresh)
        count = incremental.merge_snapshot(out / "tasks.jsonl", fresh, changes, snapshot / "tasks.jsonl")
        fresh.unlink()
    return count, survey.record if survey else None


def run(out: Path, images: Path, ls_params: LabelStudioParams, params: PullParams, state: Path | None = None) -> int:
    """Snapshot the configured project (or export file) into `out` and `images`; returns the task count.

    `state` (default `<out>.pull-state.json`) records what an incremental re-pull compares with.
    """
    state_path = state or out.with_name(f"{out.name}.pull-state.json")
    record = None
    client = None if params.export_file and params.document_root else LabelStudioClient.from_env()
    images.mkdir(parents=True, exist_ok=True)
    try:
        source = image_source(client, params)
        fetcher = source.fetcher
        with replace_dir(out) as snapshot:
            if params.export_file:
                project = {"id": None, "title": None, "label_config": None, "source": "export_file"}
                field = image_field(None, ls_params.image_tag)
                count = write_snapshot(
                    iter_export(Path(params.export_file)), source, field, snapshot, out, images, params.workers
                )
            else:
                found = client.find_project(ls_params.project)
                project = {"id": found.id, "title": found.title, "label_config": found.label_config, "source": "server"}
                field = image_field(found.label_config, ls_params.image_tag)  # a config that cannot serve fails here
                count, record = _from_server(client, found.id, source, field, snapshot, out, images, params, state_path)
            write_json(snapshot / PROJECT, project)
    finally:
        if client is not None:
            fetcher.close()
            client.close()
    if record is not None:
        incremental.write_state(state_path, project["id"], out, record)
    remove_unreferenced(images, out)
    return count
