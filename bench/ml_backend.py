"""The live path's speed against a real local Label Studio, ours and the usual ML-backend pattern, in one run.

Two backends serve the same U-Net (mobilenet_v2, 480x360 synthetic scenes, images fetched from
the server's local-files storage):
  ours  `pipeline.mlbackend`: model loaded once, every task of a /predict in batches of
        preannotate.batch_size
  peer  the pattern of Label Studio's own ML backend examples, on the same prediction code:
        the checkpoint loaded in every /predict, one task per call (Label Studio, given one
        result for many tasks, falls back to one request per task)
Measured: /predict latency for one task (p50, p95 over --repeats calls, after one warm-up);
one /predict of --tasks tasks sent straight to each backend (the peer answers the first only,
so its figure is --tasks single-task calls); and the data manager's "Retrieve predictions"
action on --tasks tasks, end to end through Label Studio (ours: one /predict; peer: one request
per task), as tasks/s; with the ratios. Label Studio waits 100 s for a /predict by default;
the bench starts it with ML_TIMEOUT_PREDICT=--ls-timeout so a slow machine still completes.

    .venv/bin/python bench/ml_backend.py [--tasks 100] [--repeats 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import torch
from fastapi import FastAPI

from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, PreannotateParams, PullParams, TrainParams
from pipeline.demo.synthetic import CLASSES, scene
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.config import brush_target
from pipeline.labelstudio.export import label_config
from pipeline.labelstudio.task_images import image_field
from pipeline.mlbackend.app import Backend
from pipeline.mlbackend.connect import connect
from pipeline.mlbackend.images import fetch_task_images
from pipeline.mlbackend.model import ServedModel
from pipeline.mlbackend.serve import ServeOptions, build_backend, serving_app_in_thread, serving_in_thread
from pipeline.model.checkpoint import save_checkpoint
from pipeline.model.models import build_model
from pipeline.model.predictor import predict_files

COLOURS = [(0, 0, 0), (128, 64, 128), (0, 0, 192), (220, 20, 60), (107, 142, 35)]
BASE = BaseParams(0, 255, tuple(ClassInfo(n, c) for n, c in zip(CLASSES, COLOURS)))


def write_checkpoint(path: Path) -> Path:
    params = TrainParams(architecture="Unet", encoder="mobilenet_v2", encoder_weights=None, base_size=None)
    torch.manual_seed(0)
    save_checkpoint(
        path, build_model("Unet", "mobilenet_v2", None, len(CLASSES)), params, list(CLASSES), COLOURS, 1, 0.0, {}
    )
    return path


def per_request_app(backend: Backend) -> FastAPI:
    """The peer: loads the checkpoint on every /predict and answers the first task only."""
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"status": "UP"}

    @app.post("/setup")
    def setup(_body: dict) -> dict:
        return {"model_version": "peer-per-request"}

    @app.post("/predict")
    def predict(body: dict) -> dict:
        task = body["tasks"][0]
        model = ServedModel(
            backend.model.checkpoint, list(CLASSES), "peer", backend.model.describe()["device"] or "cpu", 0
        )
        target = brush_target(body.get("label_config"), backend.image_tag, backend.brush_tag)
        field = image_field(body.get("label_config"), target.to_name)
        [image] = fetch_task_images([task], field, backend.source, backend.cache, 1)
        [record] = predict_files(model.current(), [image.path], [task["id"]], target.from_name, target.to_name, 1)
        return {
            "results": [{"result": record["result"], "score": record["score"], "model_version": "peer-per-request"}]
        }

    return app


def make_project(
    client: LabelStudioClient, running: server.RunningServer, title: str, count: int
) -> tuple[int, list[dict]]:
    folder = running.document_root / "bench-ml"
    folder.mkdir(exist_ok=True)
    for index in range(count):
        if not (folder / f"scene_{index:04d}.png").exists():
            cv2.imwrite(str(folder / f"scene_{index:04d}.png"), scene(index)[0])
    project = client.create_project(title, label_config(CLASSES, COLOURS))
    client.add_local_storage(project.id, str(folder))
    refs = [{"image": f"/data/local-files/?d=bench-ml/scene_{i:04d}.png"} for i in range(count)]
    ids = client.import_tasks(project.id, refs)
    return project.id, [{"id": i, "data": r, "project": project.id} for i, r in zip(ids, refs)]


def request(tasks: list[dict]) -> dict:
    """A /predict body as Label Studio sends it: the tasks and the project's label config."""
    return {"tasks": tasks, "label_config": label_config(CLASSES, COLOURS)}


def latencies(url: str, tasks: list[dict], repeats: int) -> list[float]:
    httpx.post(f"{url}/predict", json=request(tasks[:1]), timeout=120).raise_for_status()  # warm-up
    out = []
    for k in range(repeats):
        started = time.perf_counter()
        httpx.post(f"{url}/predict", json=request([tasks[(k + 1) % len(tasks)]]), timeout=120).raise_for_status()
        out.append(time.perf_counter() - started)
    return out


def direct_all(url: str, tasks: list[dict], one_per_call: bool) -> float:
    """Seconds to predict every task straight from the backend: one request, or one request per task."""
    started = time.perf_counter()
    for chunk in [[t] for t in tasks] if one_per_call else [tasks]:
        httpx.post(f"{url}/predict", json=request(chunk), timeout=3600).raise_for_status()
    return time.perf_counter() - started


def retrieve_all(running: server.RunningServer, client: LabelStudioClient, project_id: int, url: str) -> float:
    """Seconds for the data manager's "Retrieve predictions" on every task, through Label Studio."""
    connect(client, project_id, url, f"bench-{project_id}")
    started = time.perf_counter()
    httpx.post(
        f"{running.url}/api/dm/actions/",
        params={"id": "retrieve_tasks_predictions", "project": project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
        timeout=3600,
        headers={"Authorization": f"Token {running.credentials.token}"},
    ).raise_for_status()
    elapsed = time.perf_counter() - started
    stored = sum(len(t["predictions"]) for t in client.iter_tasks(project_id))
    print(f"    project {project_id}: {stored} predictions stored")
    return elapsed


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--ls-timeout", type=int, default=1800, help="ML_TIMEOUT_PREDICT of the bench's Label Studio (s)"
    )
    args = parser.parse_args()
    os.environ["ML_TIMEOUT_PREDICT"] = str(args.ls_timeout)  # the server inherits this process's environment
    work = Path(tempfile.mkdtemp(prefix="bench-ml-backend-"))
    running = server.start(data_dir=work / "ls", port=server.free_port(), local_ml_backends=True)
    pre = PreannotateParams(batch_size=4, device=args.device, threads=0)
    try:
        with LabelStudioClient(running.url, running.credentials.token) as client:
            options = ServeOptions(write_checkpoint(work / "best.pt"), port=server.free_port(), cache=work / "cache")
            backend = build_backend(options, BASE, LabelStudioParams(project=0), PullParams(workers=4), pre, client)
            ours_project, tasks = make_project(client, running, "bench ours", args.tasks)
            peer_project, _ = make_project(client, running, "bench peer", args.tasks)
            with (
                serving_in_thread(backend, "127.0.0.1", options.port) as ours_url,
                serving_app_in_thread(per_request_app(backend), "127.0.0.1", server.free_port()) as peer_url,
            ):
                ours_latency, peer_latency = (
                    latencies(ours_url, tasks, args.repeats),
                    latencies(peer_url, tasks, args.repeats),
                )
                ours_direct, peer_direct = direct_all(ours_url, tasks, False), direct_all(peer_url, tasks, True)
                ours_all = retrieve_all(running, client, ours_project, ours_url)
                peer_all = retrieve_all(running, client, peer_project, peer_url)
    finally:
        server.stop(work / "ls")
    device = (
        torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"U-Net mobilenet_v2, 480x360 images from a local Label Studio, {device}")
    for name, values in (("ours", ours_latency), ("peer", peer_latency)):
        print(f"  /predict, 1 task, {name}: p50 {p(values, 50) * 1000:7.0f} ms   p95 {p(values, 95) * 1000:7.0f} ms")
    print(f"  latency ratio peer/ours: p50 {p(peer_latency, 50) / p(ours_latency, 50):.1f}x")
    print(
        f"  {args.tasks} tasks straight to the backend: ours one request {ours_direct:6.1f} s "
        f"({args.tasks / ours_direct:.1f} tasks/s)"
        f"   peer one per task {peer_direct:6.1f} s ({args.tasks / peer_direct:.1f} tasks/s)   ratio "
        f"{peer_direct / ours_direct:.1f}x"
    )
    print(
        f"  retrieve predictions, {args.tasks} tasks via Label Studio: ours {ours_all:6.1f} s "
        f"({args.tasks / ours_all:.1f} tasks/s)"
        f"   peer {peer_all:6.1f} s ({args.tasks / peer_all:.1f} tasks/s)   ratio {peer_all / ours_all:.1f}x"
    )


if __name__ == "__main__":
    main()
