"""The ML backend web app: Label Studio's protocol over the served checkpoint.

    GET  /health    {"status": "UP", "model_version", "training": {...}}  (LS waits 1 s: nothing loads here)
    POST /setup     {project, schema, ...} -> {"model_version"}
    POST /predict   {tasks, project, label_config, params} -> {"results": [one per task, in order], "model_version"}
    POST /webhook   {"action": "START_TRAINING", ...} starts one training run; other events are acknowledged
    GET  /status    model, training run (state, stage, last log line, log file) and request counters

Every route takes HTTP basic auth when a user and password are configured (from the environment).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from pipeline.core.errors import LabelStudioError, PipelineError
from pipeline.labelstudio.config import brush_target
from pipeline.labelstudio.task_images import ImageSource, image_field
from pipeline.mlbackend.images import fetch_task_images
from pipeline.mlbackend.model import ServedModel
from pipeline.mlbackend.training import TrainingJob
from pipeline.model.predictor import predict_files

TRAINING_ACTIONS = ("START_TRAINING",)


@dataclass
class Backend:
    """Everything the routes share: the model, where images come from, the training run, auth."""

    model: ServedModel
    source: ImageSource
    cache: Path
    image_tag: str | None  # None: from the label config Label Studio sends
    brush_tag: str | None
    batch_size: int
    training: TrainingJob
    basic_auth: tuple[str, str] | None = None
    fetch_workers: int = 4


class PredictRequest(BaseModel):
    tasks: list[Any] = Field(default_factory=list)
    project: Any = None
    label_config: str | None = None
    params: dict | None = None


class SetupRequest(BaseModel):
    project: Any = None
    schema_: str | None = Field(default=None, alias="schema")


def _auth_dependency(backend: Backend):
    basic = HTTPBasic(auto_error=False)

    def check(credentials: HTTPBasicCredentials | None = Depends(basic)) -> None:
        if backend.basic_auth is None:
            return
        user, password = backend.basic_auth
        good = (
            credentials is not None
            and secrets.compare_digest(credentials.username.encode(), user.encode())
            and secrets.compare_digest(credentials.password.encode(), password.encode())
        )
        if not good:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "basic auth required: the user and password set for this backend",
                headers={"WWW-Authenticate": "Basic"},
            )

    return check


def predict_tasks(backend: Backend, tasks: list[Any], label_config: str | None = None) -> dict:
    """One entry per task, in order (Label Studio stores them only then): a prediction, or [] with the
    reason in `errors` when the task's image is refused or missing. Tags come from `label_config`
    (as Label Studio sends it) unless the params name them."""
    target = brush_target(label_config, backend.image_tag, backend.brush_tag)
    field = image_field(label_config, target.to_name)
    predictor = backend.model.current()
    images = fetch_task_images(tasks, field, backend.source, backend.cache, backend.fetch_workers)
    usable = [image for image in images if image.path is not None and isinstance(image.task_id, int)]
    records = predict_files(
        predictor,
        [image.path for image in usable],
        [image.task_id for image in usable],
        target.from_name,
        target.to_name,
        backend.batch_size,
    )
    by_task = {record["task"]: record for record in records}
    results, errors = [], []
    for image in images:
        record = by_task.get(image.task_id) if image.path is not None else None
        if record is None:
            errors.append(image.error or f"task {image.task_id}: no integer task id")
            results.append([])  # no prediction for this task; Label Studio still matches the others by position
        else:
            results.append(
                {"result": record["result"], "score": record["score"], "model_version": record["model_version"]}
            )
    return {"results": results, "model_version": predictor.version, "errors": errors}


def create_app(backend: Backend) -> FastAPI:
    """The FastAPI app over one Backend (nothing is loaded here: the caller loads the model first)."""
    app = FastAPI(title="segpipe ML backend", dependencies=[Depends(_auth_dependency(backend))])
    counters = {"health_requests": 0, "setup_requests": 0, "predict_requests": 0, "predicted_tasks": 0}
    predict_lock = threading.Lock()  # one forward pass at a time: CPU threads are not oversubscribed

    @app.exception_handler(PipelineError)
    def pipeline_error(_request, error: PipelineError) -> JSONResponse:
        code = 502 if isinstance(error, LabelStudioError) else 500
        return JSONResponse({"status": "ERROR", "error": str(error)}, status_code=code)

    @app.get("/health")
    def health() -> dict:
        counters["health_requests"] += 1
        return {
            "status": "UP",
            "model_class": "segpipe",
            "model_version": backend.model.describe()["model_version"],
            "training": backend.training.status()["state"],
        }

    @app.post("/setup")
    def setup(_request: SetupRequest) -> dict:
        counters["setup_requests"] += 1
        return {"model_version": backend.model.current().version}

    @app.post("/predict")
    def predict(request: PredictRequest) -> dict:
        with predict_lock:
            answer = predict_tasks(backend, request.tasks, request.label_config)
            counters["predict_requests"] += 1
            counters["predicted_tasks"] += len(request.tasks)
        return answer

    @app.post("/webhook", status_code=201)
    def webhook(event: dict) -> dict:
        action = event.get("action") if isinstance(event, dict) else None
        if action not in TRAINING_ACTIONS:
            return {"status": "ignored", "action": action}
        started, run = backend.training.start()
        return {"status": "started" if started else "already running", "training": run}

    @app.get("/status")
    def status_route() -> dict:
        return {"model": backend.model.describe(), "training": backend.training.status(), **counters}

    return app
