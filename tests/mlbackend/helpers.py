"""A served checkpoint connected to a real project, for the live-path tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, PreannotateParams, PullParams, TrainParams
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.mlbackend.app import Backend
from pipeline.mlbackend.serve import ServeOptions, build_backend, serving_in_thread
from pipeline.model.checkpoint import save_checkpoint
from pipeline.model.models import build_model
from tests import lsproject

BASE = BaseParams(seed=0, ignore_index=255, classes=tuple(ClassInfo(n, (9, 9, 9)) for n in lsproject.CLASSES))
PRE = PreannotateParams(batch_size=4, push_batch=100, device="cpu")


def write_checkpoint(path: Path, seed: int = 0) -> Path:
    """A small U-Net on lsproject's classes, initialised from `seed` (a different seed, a different file)."""
    torch.manual_seed(seed)
    params = TrainParams(architecture="Unet", encoder="mobilenet_v2", encoder_weights=None, base_size=None)
    model = build_model(params.architecture, params.encoder, None, len(lsproject.CLASSES))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, params, list(lsproject.CLASSES), [c.color for c in BASE.classes], 1, 0.0, {})
    return path


@dataclass
class LiveBackend:
    backend: Backend
    url: str
    client: LabelStudioClient


@contextlib.contextmanager
def live_backend(
    running: server.RunningServer,
    checkpoint: Path,
    work: Path,
    train_command: str = "true",
    basic_auth: tuple[str, str] | None = None,
) -> Iterator[LiveBackend]:
    """The backend over `checkpoint`, fetching images through the real server, in this process."""
    options = ServeOptions(
        checkpoint,
        "127.0.0.1",
        server.free_port(),
        train_command=train_command,
        train_log=work / "train.log",
        cache=work / "cache",
        workdir=work,
    )
    with LabelStudioClient(running.url, running.credentials.token, retry_total_s=5) as client:
        backend = build_backend(options, BASE, LabelStudioParams(project=0), PullParams(workers=2), PRE, client)
        backend.basic_auth = basic_auth
        with serving_in_thread(backend, options.host, options.port) as url:
            yield LiveBackend(backend, url, client)


def retrieve_predictions(running: server.RunningServer, project_id: int) -> None:
    """The data manager action "Retrieve predictions" on every task, as the UI sends it."""
    response = httpx.post(
        f"{running.url}/api/dm/actions/",
        params={"id": "retrieve_tasks_predictions", "project": project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
        headers={"Authorization": f"Token {running.credentials.token}"},
        timeout=120,
    )
    response.raise_for_status()


def task_predictions(client: LabelStudioClient, project_id: int) -> dict[int, list[dict]]:
    return {task["id"]: task["predictions"] for task in client.iter_tasks(project_id)}
