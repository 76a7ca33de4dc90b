"""Label Studio JSON exports of synthetic scenes with simulated annotators, written to disk (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.demo.crowd import simulate_annotator
from pipeline.demo.synthetic import CLASSES, scene
from pipeline.labelstudio.export import Drawing, export_task

CREW = (("good", "brush"), ("sloppy", "polygon"), ("misser", "brush"))


def write_export(folder: Path, count: int, size: tuple[int, int] = (40, 56)) -> tuple[Path, Path]:
    """`count` tasks (1-3 annotators each) plus one with a missing image; returns (export.json, document root)."""
    root = folder / "files"
    root.mkdir(parents=True)
    tasks = []
    for index in range(count):
        image, truth = scene(index, *size)
        cv2.imwrite(str(root / f"s{index}.png"), image)
        rng = np.random.default_rng(index)
        drawings = [
            Drawing(10 + k, f"{p}@example.com", simulate_annotator(truth, p, rng, len(CLASSES)), tool)
            for k, (p, tool) in enumerate(CREW)
        ]
        tasks.append(
            export_task(
                index + 1, f"/data/local-files/?d=s{index}.png", drawings[: 1 + index % 3], CLASSES, 3 * index + 1
            )
        )
    tasks.append({"id": count + 1, "data": {"image": "/data/local-files/?d=missing.png"}, "annotations": []})
    export = folder / "export.json"
    export.write_text(json.dumps(tasks))
    return export, root
