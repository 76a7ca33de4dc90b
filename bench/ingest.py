"""Ingest speed and memory: validate + merge against the SDK's BRUSH_TO_PNG converter, one run.

Builds a Label Studio JSON export of N synthetic 480x360 tasks with three simulated
annotators each (careful brush, sloppy polygon, object-missing brush), then
  ours:  pull (from the export file, not timed) -> validate + merge (timed, both cores)
  SDK:   label_studio_sdk.converter.Converter(...).convert(..., "BRUSH_TO_PNG")
and prints seconds, the ratio, and our peak RSS at two sizes (streaming: it should not grow).

    .venv/bin/python bench/ingest.py [--tasks 2000] [--memory 1000,4000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import yaml

from pipeline.demo.crowd import simulate_annotator
from pipeline.demo.synthetic import CLASSES, scene
from pipeline.labelstudio.export import Drawing, export_task, label_config

CREW = (("good", "brush"), ("sloppy", "polygon"), ("misser", "brush"))
COLOURS = [(0, 0, 0), (128, 64, 128), (0, 0, 192), (220, 20, 60), (107, 142, 35)]


def make_task(index: int, folder: Path, size: tuple[int, int] = (360, 480)) -> str:
    """Write one (height, width) image; return its export task as one JSON line."""
    image, truth = scene(index, *size)
    cv2.imwrite(str(folder / "images" / f"scene_{index:05d}.png"), image)
    rng = np.random.default_rng(index)
    drawings = [
        Drawing(
            user_id=10 + k,
            email=f"{profile}@example.com",
            label_map=simulate_annotator(truth, profile, rng, len(CLASSES)),
            tool=tool,
        )
        for k, (profile, tool) in enumerate(CREW)
    ]
    task = export_task(
        index + 1, f"/data/local-files/?d=images/scene_{index:05d}.png", drawings, CLASSES, 3 * index + 1
    )
    return json.dumps(task)


def build(folder: Path, sizes: list[int]) -> dict[int, Path]:
    """Exports of the first N tasks for every N in `sizes` (images shared), cached in `folder`."""
    exports = {n: folder / f"export_{n}.json" for n in sizes}
    if all(path.exists() for path in exports.values()):
        return exports
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        lines = list(pool.map(make_task, range(max(sizes)), [folder] * max(sizes), chunksize=16))
    for n, path in exports.items():
        path.write_text("[\n" + ",\n".join(lines[:n]) + "\n]\n")
    (folder / "config.xml").write_text(label_config(CLASSES, COLOURS))
    return exports


def params_file(work: Path, export: Path, root: Path) -> Path:
    params = {
        "base": {
            "seed": 0,
            "ignore_index": 255,
            "classes": [{"name": n, "color": list(c)} for n, c in zip(CLASSES, COLOURS)],
        },
        "labelstudio": {"project": 0, "image_tag": "image", "control_tags": ["brush", "polygon"]},
        "pull": {"export_file": str(export), "document_root": str(root), "allowed_origins": [], "workers": 4},
        "validate": {"unpainted": "background", "max_image_side": 16384, "workers": 0},
        "merge": {"method": "dawid_skene", "iterations": 5, "min_agreement": 0.7, "workers": 0},
    }
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def measured(commands: list[list[str]], cwd: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB of any process) of commands run one after another in a fresh wrapper.

    Dirty pages are flushed first, so that no run pays for writing back the files of the one before
    (and outputs are deleted only after the last run: deleting files costs the disk work too).
    """
    os.sync()
    script = textwrap.dedent(f"""
        import json, resource, subprocess, time
        start = time.perf_counter()
        for command in {commands!r}:
            subprocess.run(command, check=True, cwd={str(cwd)!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(json.dumps([time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    seconds, rss = json.loads(out.strip().splitlines()[-1])
    return seconds, rss


def stage_commands(params: Path, *options: str) -> list[list[str]]:
    """The validate and merge commands of the pipeline, run in the folder that holds raw/ and images/."""
    run = [sys.executable, "-m", "pipeline"]
    common = ["--params", str(params), *options]
    return [
        [*run, "validate", "--raw", "raw", "--images", "images", "--out", "annotations", "--report", "validation.json"]
        + common,
        [*run, "merge", "--annotations", "annotations", "--validation", "validation.json", "--out", "labels"]
        + ["--report", "agreement.json", "--images", "images", *common],
    ]


def ours(export: Path, root: Path, scratch: Path) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(prefix="ours-", dir=scratch))
    params = params_file(work, export, root)
    run = [sys.executable, "-m", "pipeline"]
    subprocess.run(
        [*run, "pull", "--out", "raw", "--images", "images", "--params", str(params)],
        check=True,
        cwd=work,
        capture_output=True,
    )
    return measured(stage_commands(params), work)


def sdk(export: Path, folder: Path, scratch: Path) -> tuple[float, float]:
    out = tempfile.mkdtemp(prefix="sdk-", dir=scratch)
    code = (
        "from label_studio_sdk.converter import Converter; "
        f"Converter(config={str(folder / 'config.xml')!r}, project_dir={str(folder)!r}, download_resources=False)"
        f".convert({str(export)!r}, {out!r}, 'BRUSH_TO_PNG', is_dir=False)"
    )
    return measured([[sys.executable, "-c", code]], folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--memory", default="1000,4000", help="two task counts for the peak-memory comparison")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest counts")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "segpipe-bench-ingest")
    args = parser.parse_args()
    small, large = (int(n) for n in args.memory.split(","))
    started = time.perf_counter()
    exports = build(args.cache, sorted({args.tasks, small, large}))
    print(
        f"export of {max(exports)} tasks x {len(CREW)} annotators ready in {time.perf_counter() - started:.0f} "
        f"s ({args.cache})"
    )
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    try:
        # The memory runs go first: they also fill numba's on-disk compile cache, as any earlier run would.
        rss = {n: ours(exports[n], args.cache, scratch)[1] for n in (small, large)}
        ours_runs = [ours(exports[args.tasks], args.cache, scratch) for _ in range(args.repeat)]
        sdk_runs = [sdk(exports[args.tasks], args.cache, scratch) for _ in range(args.repeat)]
    finally:
        shutil.rmtree(scratch)
    (ours_s, ours_rss), (sdk_s, sdk_rss) = min(ours_runs), min(sdk_runs)
    print(
        f"seconds per run: ours {', '.join(f'{s:.1f}' for s, _ in ours_runs)}; SDK "
        f"{', '.join(f'{s:.1f}' for s, _ in sdk_runs)}"
    )
    print(f"\n{args.tasks} tasks x {len(CREW)} annotators, 480x360, brush + polygon")
    print(
        f"  ours  validate + merge      {ours_s:8.1f} s  ({args.tasks / ours_s:6.1f} tasks/s)  peak RSS "
        f"{ours_rss:7.0f} MiB"
    )
    print(
        f"  SDK   Converter BRUSH_TO_PNG {sdk_s:7.1f} s  ({args.tasks / sdk_s:6.1f} tasks/s)  peak RSS "
        f"{sdk_rss:7.0f} MiB"
    )
    print(
        f"  speed-up {sdk_s / ours_s:.1f}x   (target >= 10x; the SDK writes 0/255 masks per annotation and label,"
        " skips polygons and merges nothing)"
    )
    print(
        f"\npeak RSS of validate + merge: {small} tasks {rss[small]:.0f} MiB, {large} tasks {rss[large]:.0f} MiB, "
        f"ratio {rss[large] / rss[small]:.2f} (target <= 1.20)"
    )


if __name__ == "__main__":
    main()
