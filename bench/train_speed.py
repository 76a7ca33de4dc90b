"""Training throughput: plain fp32 eager against the optimised path, same model, size and device.

    .venv/bin/python bench/train_speed.py [--params params.yaml] [--set key=value ...] [--steps N]
        [--images N] [--size H W] [--no-compile] [--device auto|cpu|cuda]

The model comes from params.yaml's train section (override with --set, e.g. --set architecture=FCN8s),
the data from a synthetic on-disk dataset of --images scenes of --size, read through the real
DataLoader, augmentations and train_one_epoch. Two runs, each a warm-up epoch (torch.compile
compiles there) then a timed epoch of --steps batches:

    fp32 eager   precision fp32, contiguous memory, no compile
    optimised    bf16 autocast, channels_last, torch.compile

Printed per run: images/s over the timed epoch, the share of that time spent waiting for the next
batch (data wait), and the ratio optimised / eager. On a CPU the optimised path gains little or
loses (bf16 is emulated on most CPUs); it is meant for CUDA GPUs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.params import (  # noqa: E402
    load_section,
    read_params,
    with_overrides,  # noqa: E402
)
from pipeline.model.data import TrainDataset, list_samples, make_loader  # noqa: E402
from pipeline.model.distributed import Runtime, resolve_device, set_cpu_threads  # noqa: E402
from pipeline.model.loop import SegmentationLoss, make_optimizer, make_scheduler, train_one_epoch  # noqa: E402
from pipeline.model.models import build_model  # noqa: E402
from pipeline.model.transforms import train_transform  # noqa: E402
from tests.training.synthetic import make_dataset  # noqa: E402


def measure(params, num_classes: int, dataset, runtime: Runtime, steps: int, optimised: bool, seed: int) -> dict:
    """Warm-up epoch then a timed epoch of `steps` batches; images/s and data-wait share of the timed one."""
    torch.manual_seed(seed)
    transform = train_transform(
        params.base_size, params.crop_size, params.scale_range, params.hflip, params.color_jitter
    )
    samples = list_samples(*dataset)
    train_set = TrainDataset(
        (samples * (1 + steps * params.batch_size // len(samples)))[: steps * params.batch_size], transform
    )
    loader = make_loader(
        train_set,
        params.batch_size,
        params.workers,
        shuffle=True,
        seed=seed,
        drop_last=True,
        pin_memory=runtime.device.type == "cuda",
    )
    model = build_model(params.architecture, params.encoder, params.encoder_weights, num_classes).to(runtime.device)
    dtype = torch.bfloat16 if optimised else None
    if optimised:
        model = model.to(memory_format=torch.channels_last)
    trained = torch.compile(model) if optimised and params.compile else model
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, dataclasses.replace(params, epochs=2), len(loader))
    loss_fn = SegmentationLoss(params.dice_weight)
    train_one_epoch(trained, loader, loss_fn, optimizer, scheduler, runtime, dtype, optimised, "warm-up")
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    stats = train_one_epoch(trained, loader, loss_fn, optimizer, scheduler, runtime, dtype, optimised, "timed")
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "images_per_s": len(loader) * params.batch_size / seconds,
        "data_wait": stats.data_wait,
        "step_ms": 1000 * seconds / len(loader),
        "loss": stats.loss,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a train param")
    parser.add_argument("--steps", type=int, default=10, help="timed batches per run")
    parser.add_argument("--images", type=int, default=32, help="synthetic scenes on disk")
    parser.add_argument("--size", type=int, nargs=2, default=(360, 480), metavar=("H", "W"))
    parser.add_argument("--device", default=None, help="default: train.device")
    parser.add_argument("--no-compile", action="store_true", help="optimised path without torch.compile")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    values = read_params(args.params)
    params = with_overrides("train", load_section("train", args.params, values), args.set + ["encoder_weights=null"])
    params = dataclasses.replace(params, compile=not args.no_compile)
    device = resolve_device(args.device or params.device)
    set_cpu_threads(params.threads, device)
    runtime = Runtime(0, 1, 0, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"{params.architecture}/{params.encoder}, batch {params.batch_size}, crop {params.crop_size} "
        f"(base_size {params.base_size}), {params.workers} loader workers, {args.steps} timed steps on {name}"
    )
    with tempfile.TemporaryDirectory() as folder:
        layout = make_dataset(Path(folder), n=args.images, size=tuple(args.size))
        dataset = (layout.raw, layout.annotations, layout.labels, layout.splits, "train")
        rows = {}
        for label, optimised in (
            ("fp32 eager", False),
            ("bf16+channels_last" + ("+compile" if params.compile else ""), True),
        ):
            rows[label] = measure(
                params,
                len(load_section("base", args.params, values).classes),
                dataset,
                runtime,
                args.steps,
                optimised,
                0,
            )
            r = rows[label]
            print(
                f"  {label:<34} {r['images_per_s']:8.2f} images/s  {r['step_ms']:8.1f} ms/step  "
                f"data wait {r['data_wait']:5.1%}"
            )
    eager, fast = rows.values()
    print(f"ratio optimised / eager: {fast['images_per_s'] / eager['images_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
