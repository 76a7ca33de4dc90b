"""Memory at size: pull (from an export file), validate and merge on 5,000 and 50,000 small tasks.

Each run is a fresh set of processes; the figure is the peak RSS of the largest one. Streaming
(ijson, a bounded window of work in flight) should keep it flat as the export grows tenfold.

    .venv/bin/python bench/size.py [--counts 5000,50000] [--size 48x64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the export builder and measuring helpers of bench/ingest.py)


def build(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """An export file of `count` tasks, written line by line (never all in memory)."""
    export = folder / f"export_{count}.json"
    if export.exists():
        return export
    (folder / "images").mkdir(parents=True, exist_ok=True)
    make = partial(ingest.make_task, folder=folder, size=size)
    with ProcessPoolExecutor() as pool, open(export.with_suffix(".tmp"), "w") as out:
        out.write("[\n")
        for index, line in enumerate(pool.map(make, range(count), chunksize=64)):
            out.write(("" if index == 0 else ",\n") + line)
        out.write("\n]\n")
    export.with_suffix(".tmp").replace(export)
    return export


def run(export: Path, root: Path) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(prefix="size-"))
    params = ingest.params_file(work, export, root)
    cli = [sys.executable, "-m", "pipeline"]
    return ingest.measured(
        [
            [*cli, "pull", "--out", "raw", "--images", "images", "--params", str(params)],
            *ingest.stage_commands(params),
        ],
        work,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="5000,50000")
    parser.add_argument("--size", default="48x64", help="image height x width")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "segpipe-bench-size")
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    size = tuple(int(v) for v in args.size.split("x"))
    results = {}
    for count in counts:
        started = time.perf_counter()
        export = build(args.cache, count, size)
        print(f"export of {count} tasks ready in {time.perf_counter() - started:.0f} s")
        results[count] = run(export, args.cache)
        print(
            f"{count:>7} tasks: pull + validate + merge {results[count][0]:7.1f} s, peak RSS "
            f"{results[count][1]:6.0f} MiB"
        )
    low, high = min(counts), max(counts)
    print(f"peak RSS ratio {high} / {low} tasks: {results[high][1] / results[low][1]:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
