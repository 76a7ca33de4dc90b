"""Task images for /predict, fetched by pull's own code and rules.

Each image goes through `pipeline.labelstudio.task_images.fetch_image` with the source `image_source`
builds for pull: the same reference rules and origin allow-list (`pull.allowed_origins`), the
same local-files checks, the same image checks and the same content-addressed files, here in a
cache folder of the backend. A task whose image is refused or missing gets its reason instead
of a path.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.labelstudio.task_images import ImageField, ImageSource, fetch_image, image_reference


@dataclass(frozen=True)
class TaskImage:
    """Where one task's image landed, or why it could not be had."""

    task_id: object
    path: Path | None
    error: str | None


def fetch_task_images(
    tasks: list[dict], field: ImageField, source: ImageSource, cache: Path, workers: int = 4
) -> list[TaskImage]:
    """One TaskImage per task, in order; the server being unreachable raises (LabelStudioError)."""
    cache.mkdir(parents=True, exist_ok=True)

    def one(task: dict) -> TaskImage:
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task, dict):
            return TaskImage(None, None, f"a task is not an object: {str(task)[:80]}")
        record = fetch_image(
            image_reference(task, field), None, source, cache, task_id if isinstance(task_id, int) else None
        )
        if record.get("file"):
            return TaskImage(task_id, cache / record["file"], None)
        return TaskImage(task_id, None, f"task {task_id}: {record.get('error')}")

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(one, tasks))
