"""data/annotations: what validate writes and merge, split, train and evaluate read.

<task_id>/<annotator>.png   one label map per (task, annotator): (H, W) uint8, 255 = ignore
index.jsonl                 one line per task with at least one valid annotation, sorted by task id:
                            {"task_id", "image" (relative to the images folder), "height", "width",
                             "image_name", "data", "maps": {annotator: {"file", "annotation_id",
                             "email"}}, "cooccurrence": {... "pixels": "<task_id>/_combinations.zst"}}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from pipeline.core.errors import ArtifactError
from pipeline.dataset.masks import read_label_map, write_label_map

INDEX = "index.jsonl"


def index_path(annotations_dir: Path) -> Path:
    return Path(annotations_dir) / INDEX


def map_file(task_id: int, annotator: str) -> str:
    """The path of one annotator's label map, relative to the annotations folder."""
    return f"{task_id}/{annotator}.png"


def iter_index(annotations_dir: Path) -> Iterator[dict]:
    """The index entries, streamed in task-id order."""
    path = index_path(annotations_dir)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise ArtifactError(f"{path} not found; run the validate stage first") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise ArtifactError(
                    f"{path} line {number} is not JSON ({error}); run the validate stage again"
                ) from None


def read_index(annotations_dir: Path) -> list[dict]:
    """Every index entry, in task-id order."""
    return list(iter_index(annotations_dir))


def index_by_task(annotations_dir: Path) -> dict[int, dict]:
    """{task_id: index entry}."""
    return {entry["task_id"]: entry for entry in iter_index(annotations_dir)}


def load_maps(annotations_dir: Path, entry: dict) -> dict[str, np.ndarray]:
    """{annotator: (H, W) uint8} of one index entry, by annotator key."""
    return {key: read_label_map(Path(annotations_dir) / item["file"]) for key, item in sorted(entry["maps"].items())}


def write_map(annotations_dir: Path, task_id: int, annotator: str, label_map: np.ndarray) -> str:
    """Save one annotator's (H, W) uint8 map; returns its relative path for the index."""
    relative = map_file(task_id, annotator)
    (Path(annotations_dir) / str(task_id)).mkdir(exist_ok=True)
    write_label_map(Path(annotations_dir) / relative, label_map)
    return relative


@contextlib.contextmanager
def index_writer(annotations_dir: Path) -> Iterator:
    """A function that appends one entry to index.jsonl (sorted keys: equal content, equal bytes)."""
    with open(index_path(annotations_dir), "wb") as handle:
        yield lambda entry: handle.write(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS) + b"\n")
