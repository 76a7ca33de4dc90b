"""Consensus of a simulated five-annotator crowd on CamVid, scored against the ground truth.

    .venv/bin/python bench/consensus.py [--limit N] [--staple-limit N] [--crowdkit-limit N]

Loads the CamVid train+val label maps (11 classes; id 11 = void -> 255),
simulates five annotators per image (good, dilated, misser, confuser,
spammer; seeded per image), then merges them with majority_vote,
weighted_vote (models estimated over all loaded images first, timed
separately), SimpleITK MultiLabelSTAPLE and, when crowd-kit is importable,
its binary SegmentationEM run one class against the rest.

Scores: mIoU over the 11 classes on all images of a method, where an
undecided (255) consensus pixel counts as a miss of its true class; void
truth pixels are ignored. Times: milliseconds per 480x360 image for the
consensus call alone, single-threaded (OpenCV and SimpleITK pinned to one
thread), median and mean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.consensus import estimate_annotator_models, majority_vote, quality_report, staple, weighted_vote  # noqa: E402
from pipeline.crowd import class_pairs, simulate_annotator  # noqa: E402
from pipeline.metrics import confusion_matrix  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"
CROWD = ("good", "dilated", "misser", "confuser", "spammer")
CONFUSED = [("Road", "Pavement"), ("Pedestrian", "Bicyclist"), ("Pole", "SignSymbol"), ("Fence", "Building")]
BACKGROUND = ("Sky", "Building", "Road", "Pavement", "Tree")
TARGET_MIOU, TARGET_MS = 0.95, 20.0


def load_truths(root: Path, limit: int | None) -> tuple[list[str], list[np.ndarray]]:
    meta = json.loads((root / "classes.json").read_text())
    void = int(meta["ignore_index"])
    names = [c["name"] for c in meta["classes"] if c["id"] != void]
    files = [p for split in ("trainannot", "valannot") for p in sorted((root / split).glob("*.png"))]
    truths = []
    for path in files[:limit]:
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        label[label == void] = 255
        truths.append(label)
    return names, truths


def simulate_crowd(truths, names, seed: int, jitter: float) -> list[dict[str, np.ndarray]]:
    pairs = class_pairs(CONFUSED, names)
    background = [names.index(n) for n in BACKGROUND]
    tasks = []
    for i, truth in enumerate(truths):
        rng = np.random.default_rng([seed, i])
        tasks.append({p: simulate_annotator(truth, p, rng, len(names), pairs=pairs,
                                            background=background, jitter=jitter) for p in CROWD})
    return tasks


def score(truths, merge, tasks, num_classes: int) -> dict:
    """Run ``merge`` on each task; mIoU with undecided as a miss, undecided share, timings."""
    cm = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    times = []
    for truth, task in zip(truths, tasks):
        start = time.perf_counter()
        merged = merge(task)
        times.append(time.perf_counter() - start)
        cm += confusion_matrix(truth, np.where(merged == 255, num_classes, merged), num_classes + 1)
    tp = np.diag(cm)[:num_classes]
    union = cm[:num_classes].sum(axis=1) + cm[:, :num_classes].sum(axis=0) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {
        "images": len(times),
        "miou": float(np.nanmean(iou)),
        "iou": iou,
        "undecided": float(cm[:num_classes, num_classes].sum() / max(cm[:num_classes].sum(), 1)),
        "ms_median": 1000 * float(np.median(times)),
        "ms_mean": 1000 * float(np.mean(times)),
    }


def crowdkit_merge(num_classes: int):
    """One-vs-rest SegmentationEM: a pixel takes the one class whose binary EM says yes, else 255.

    crowd-kit has no "unlabeled": a 255 pixel is "not this class" in every binary task.
    """
    try:
        import pandas as pd
        from crowdkit.aggregation import SegmentationEM
    except ImportError:
        return None

    def merge(task: dict[str, np.ndarray]) -> np.ndarray:
        rows = [(k, a, m == k) for k in range(num_classes) for a, m in sorted(task.items())]
        frame = pd.DataFrame(rows, columns=["task", "worker", "segmentation"])
        masks = SegmentationEM().fit_predict(frame)
        stack = np.stack([np.asarray(masks.get(k, np.zeros_like(task[next(iter(task))], bool)), bool)
                          for k in range(num_classes)])
        out = np.argmax(stack, axis=0).astype(np.uint8)
        out[stack.sum(axis=0) != 1] = 255
        return out

    return merge


def print_table(rows: dict[str, dict], names: list[str]) -> None:
    print(f"\n{'method':<36}{'images':>7}{'mIoU':>8}{'undecided':>11}{'ms median':>11}{'ms mean':>9}")
    for method, r in rows.items():
        ms = f"{r['ms_median']:>11.1f}{r['ms_mean']:>9.1f}" if r["ms_median"] is not None else f"{'-':>11}{'-':>9}"
        print(f"{method:<36}{r['images']:>7}{r['miou']:>8.4f}{100 * r['undecided']:>10.2f}%{ms}")
    print("\nper-class IoU (" + ", ".join(names) + ")")
    for method, r in rows.items():
        print(f"{method:<36}" + " ".join(f"{v:.3f}" for v in r["iou"]))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CamVid folder (classes.json, *annot/)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images (train, then val)")
    parser.add_argument("--staple-limit", type=int, default=None, help="run STAPLE on the first N images only")
    parser.add_argument("--crowdkit-limit", type=int, default=20, help="crowd-kit on the first N images only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", type=float, default=0.5, help="boundary jitter of the crowd, px (std)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (args.data / "classes.json").is_file():
        print(f"skipped: no CamVid dataset at {args.data} (expected classes.json, trainannot/, valannot/)")
        return 0
    cv2.setNumThreads(1)
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    names, truths = load_truths(args.data, args.limit)
    c = len(names)
    start = time.perf_counter()
    tasks = simulate_crowd(truths, names, args.seed, args.jitter)
    print(f"{len(truths)} images, crowd {', '.join(CROWD)} (jitter {args.jitter} px, seed {args.seed}) "
          f"simulated in {time.perf_counter() - start:.1f} s")

    start = time.perf_counter()
    models = estimate_annotator_models(tasks, c)
    elapsed = time.perf_counter() - start
    print(f"weighted_vote models: {models.passes} passes over {len(tasks)} images, converged={models.converged}, "
          f"{elapsed:.1f} s ({1000 * elapsed / len(tasks):.1f} ms per image, "
          f"{1000 * elapsed / (len(tasks) * models.passes):.1f} ms per image and pass)")

    rows = {f"single annotator: {p}": {**score(truths, lambda t, p=p: t[p], tasks, c), "ms_median": None}
            for p in CROWD}
    rows["majority_vote"] = score(truths, lambda t: majority_vote(t, c), tasks, c)
    rows["weighted_vote (vote)"] = score(truths, lambda t: weighted_vote(t, models), tasks, c)
    n = args.staple_limit or len(tasks)
    rows["staple (MultiLabelSTAPLE)"] = score(truths[:n], lambda t: staple(t, c), tasks[:n], c)
    merge = crowdkit_merge(c)
    if merge is None:
        print("crowd-kit not importable: its row is skipped (pip install crowd-kit to add it)")
    else:
        n = args.crowdkit_limit
        rows["crowd-kit SegmentationEM 1-vs-rest"] = score(truths[:n], merge, tasks[:n], c)
    print_table(rows, names)

    print("\nannotators against the project consensus (from the models):")
    for a, q in quality_report(models, names, top_k=1).items():
        top = q["top_confusions"][0] if q["top_confusions"] else None
        worst = f"{top['consensus']}->{top['labelled']} {100 * top['share']:.0f}%" if top else "-"
        print(f"  {a:<10} mIoU {q['mean_iou']:.3f}  accuracy {q['pixel_accuracy']:.3f}  top confusion {worst}")

    vote = rows["weighted_vote (vote)"]
    ok = vote["miou"] >= TARGET_MIOU and vote["ms_median"] <= TARGET_MS
    print(f"\ntarget: vote >= {TARGET_MIOU} mIoU at <= {TARGET_MS:.0f} ms/image: "
          f"{vote['miou']:.4f} mIoU, {vote['ms_median']:.1f} ms median -> {'MET' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
