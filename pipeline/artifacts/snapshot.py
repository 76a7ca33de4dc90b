"""The snapshot pull writes into data/raw and every later reader streams.

tasks.jsonl    one line per task, sorted by task id: {"task": <export task>, "image": <record>}
               where <record> is {"ref", "file", "sha256", "etag"} or {"ref", "error"}; a task
               rejected as a whole (pipeline.labelstudio.export_reader) also has "problem"
rejected.jsonl export items that are no task at all: {"position", "reason"}
project.json   id, title and label config of the project (no URL, no token)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pipeline.core.errors import ArtifactError

TASKS = "tasks.jsonl"
PROJECT = "project.json"
REJECTED = "rejected.jsonl"


def tasks_path(snapshot: Path) -> Path:
    return Path(snapshot) / TASKS


def record_line(task: dict, image: dict, problem: str | None = None) -> str:
    """One line of tasks.jsonl (sorted keys: equal content, equal bytes); `problem` only when there is one."""
    return (
        json.dumps({"task": task, "image": image, **({"problem": problem} if problem else {})}, sort_keys=True) + "\n"
    )


def snapshot_records(snapshot: Path) -> Iterator[tuple[dict, dict]]:
    """(task, image record) of every line of a snapshot's tasks.jsonl, streamed."""
    for line in snapshot_lines(snapshot):
        record = json.loads(line)
        yield record["task"], record["image"]


def snapshot_lines(snapshot: Path) -> Iterator[str]:
    """The raw lines of tasks.jsonl (for workers that parse them themselves)."""
    try:
        handle = open(tasks_path(snapshot))
    except FileNotFoundError:
        raise ArtifactError(f"{tasks_path(snapshot)} not found; run the pull stage first") from None
    with handle:
        yield from handle


def read_project(snapshot: Path) -> dict:
    """project.json: {"id", "title", "label_config", "source"}."""
    path = Path(snapshot) / PROJECT
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found; run the pull stage first") from None


def read_rejected(snapshot: Path) -> list[dict]:
    """The {"position", "reason"} of every export item that was no task; [] when none was."""
    path = Path(snapshot) / REJECTED
    if not path.exists():
        return []
    with open(path) as lines:
        return [json.loads(line) for line in lines if line.strip()]
