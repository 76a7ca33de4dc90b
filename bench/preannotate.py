"""Pre-annotation speed against a real local Label Studio, in one run.

Pushes N predictions of 480x360 masks (a brush region per class) two ways into the same server:
  baseline  one `predictions.create` request per task (the SDK's per-task call)
  ours      `LabelStudioClient.import_predictions`, batched (what the preannotate stage does)
and prints both times and the ratio; then the model's inference throughput (images/s) on the
available device.

    .venv/bin/python bench/preannotate.py [--tasks 1000] [--batch 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pipeline.demo.synthetic import CLASSES, scene
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.export import label_config
from pipeline.labelstudio.results import label_map_to_brush_results
from pipeline.model.models import build_model

COLOURS = [(0, 0, 0), (128, 64, 128), (0, 0, 192), (220, 20, 60), (107, 142, 35)]


def records(task_ids: list[int], version: str) -> list[dict]:
    """One prediction per task from synthetic 480x360 label maps (ten distinct maps, reused)."""
    maps = [scene(seed)[1] for seed in range(10)]
    return [
        {
            "task": task_id,
            "model_version": version,
            "score": 0.5,
            "result": label_map_to_brush_results(
                maps[k % 10], CLASSES, task_id=task_id, from_name="brush", to_name="image"
            ),
        }
        for k, task_id in enumerate(task_ids)
    ]


def push_each(client: LabelStudioClient, predictions: list[dict]) -> float:
    started = time.perf_counter()
    for p in predictions:
        client.call(
            "create prediction",
            client.sdk.predictions.create,
            task=p["task"],
            result=p["result"],
            score=p["score"],
            model_version=p["model_version"],
        )
    return time.perf_counter() - started


def push_batched(client: LabelStudioClient, project_id: int, predictions: list[dict], batch: int) -> float:
    started = time.perf_counter()
    client.import_predictions(project_id, predictions, batch_size=batch)
    return time.perf_counter() - started


def inference_throughput(device: torch.device, batch: int = 4, repeats: int = 5) -> float:
    """Images/s of U-Net (mobilenet_v2) forward passes on 480x360 (padded to 480x384) images."""
    model = build_model("Unet", "mobilenet_v2", None, len(CLASSES)).to(device).eval()
    images = torch.randn(batch, 3, 384, 480, device=device)
    with torch.no_grad():
        model(images)  # warm-up: allocation, kernel selection
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            model(images).softmax(1).max(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-preannotate-"))
    running = server.start(data_dir=data_dir, port=server.free_port())
    try:
        with LabelStudioClient(running.url, running.credentials.token) as client:
            project = client.create_project("prediction push bench", label_config(CLASSES, COLOURS))
            task_ids = client.import_tasks(project.id, [{"image": f"/data/upload/{i}.png"} for i in range(args.tasks)])
            each = push_each(client, records(task_ids, "baseline"))
            batched = push_batched(client, project.id, records(task_ids, "batched"), args.batch)
            counts = {task["id"]: len(task["predictions"]) for task in client.iter_tasks(project.id)}
    finally:
        server.stop(data_dir)
    print(f"{args.tasks} predictions of 480x360 masks ({len(CLASSES)} classes) into a local Label Studio")
    print(f"  one predictions.create per task   {each:7.1f} s")
    print(f"  import_predictions, batch {args.batch:<5}  {batched:7.1f} s   (target < 15 s)")
    print(f"  speed-up {each / batched:.1f}x   (target >= 10x); every task holds {set(counts.values())} predictions")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"inference, U-Net mobilenet_v2, 480x360, batch 4, {name}: {inference_throughput(device):.1f} images/s")


if __name__ == "__main__":
    main()
