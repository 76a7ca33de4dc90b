"""Incremental pull against a full pull, on a real local Label Studio with N tasks.

Seeds a project of N small tasks (one brush annotation each, images under local-files storage),
then times:
  full         the first pull (no state: the whole export, every image fetched)
  incremental  a re-pull after a share of the tasks got a new annotation (only those exported)
  full again   the same re-pull with pull.incremental: false (the whole export)
Images are read from the server's document root (`pull.document_root`), as when pull runs beside
the server: the figures are about the export.
checks that the incremental and the full snapshot are byte-identical, and prints the ratio.

    .venv/bin/python bench/incremental.py [--tasks 10000] [--changed 0.01] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2

from pipeline.core.params import LabelStudioParams, PullParams
from pipeline.labelstudio import incremental, server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull
from tests import lsproject


def seed(client: LabelStudioClient, root: Path, count: int) -> tuple[int, list[int], int]:
    """A project of `count` tasks with one annotation each; returns (project id, task ids, annotator id)."""
    folder = root / f"bench_{count}_{int(time.time())}"
    folder.mkdir(parents=True)
    project = client.create_project(folder.name, lsproject.CONFIG)
    client.add_local_storage(project.id, str(folder))
    user = client.ensure_user("bench@example.com")
    tasks = []
    for index in range(count):
        image, truth = lsproject.scene(index % 50)
        name = f"t{index:06d}.png"
        cv2.imwrite(str(folder / name), image)
        result = lsproject.brush_annotation(0, truth)
        tasks.append(
            {
                "data": {"image": f"/data/local-files/?d={folder.name}/{name}"},
                "annotations": [{"result": result, "completed_by": user}],
            }
        )
    return project.id, client.import_tasks(project.id, tasks), user


def timed_pull(out: Path, project_id: int, incremental: bool, document_root: Path) -> float:
    """Seconds of one pull; images are read from the server's document root (pull runs beside the server)."""
    start = time.perf_counter()
    pull.run(
        out / "raw",
        out / "images",
        LabelStudioParams(project=project_id),
        PullParams(workers=4, incremental=incremental, document_root=str(document_root)),
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of tasks annotated again before the re-pull")
    parser.add_argument("--data-dir", type=Path, default=None, help="a local Label Studio's folder (started if needed)")
    parser.add_argument("--project", type=int, default=None, help="reuse a project seeded by an earlier run")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-ls-"))
    running = server.start(data_dir=data_dir, port=server.free_port(), document_root=data_dir / "files", timeout=900)
    os.environ.update(running.env())
    work = Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    try:
        with LabelStudioClient(running.url, running.credentials.token) as client:
            started = time.perf_counter()
            if args.project is None:
                project_id, task_ids, user = seed(client, running.document_root, args.tasks)
            else:
                project_id, user = args.project, client.ensure_user("bench@example.com")
                task_ids = sorted(incremental.task_fingerprints(client, project_id))
            print(f"seeded {len(task_ids)} tasks in {time.perf_counter() - started:.0f} s")
            full = timed_pull(work / "inc", project_id, True, running.document_root)
            changed = task_ids[:: max(1, round(1 / args.changed))]
            for task_id in changed:
                client.create_annotation(task_id, lsproject.brush_annotation(task_id, lsproject.scene(1)[1]), user)
        again = timed_pull(work / "inc", project_id, True, running.document_root)
        shutil.copytree(work / "inc", work / "full")  # the same starting point: previous snapshot and images
        full_again = timed_pull(work / "full", project_id, False, running.document_root)
        identical = all(
            (work / "inc" / "raw" / name).read_bytes() == (work / "full" / "raw" / name).read_bytes()
            for name in ("tasks.jsonl", "project.json")
        )
        print(f"tasks {len(task_ids)}, changed {len(changed)} ({100 * len(changed) / len(task_ids):.1f} %)")
        print(f"full pull (first, images fetched)     {full:7.1f} s")
        print(f"full re-pull (whole export)            {full_again:7.1f} s")
        print(f"incremental re-pull                    {again:7.1f} s")
        print(f"ratio full / incremental: {full_again / again:.1f}x; snapshots byte-identical: {identical}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.data_dir is None:
            server.stop(data_dir)


if __name__ == "__main__":
    main()
