"""Run the backend: load the model, serve it with uvicorn, optionally connect it to the project.

Basic auth is on when both `ML_BACKEND_USER` and `ML_BACKEND_PASSWORD` are set (environment
only, like the Label Studio token). With `connect`, the project's model_version follows every
checkpoint the backend loads, so the editor shows the live predictions of the model served.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from pipeline.core.errors import LabelStudioError, ParamsError, PipelineError
from pipeline.core.params import BaseParams, LabelStudioParams, PreannotateParams, PullParams
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.task_images import image_source
from pipeline.mlbackend.app import Backend, create_app
from pipeline.mlbackend.connect import Connection, connect, rename
from pipeline.mlbackend.model import ServedModel
from pipeline.mlbackend.training import TrainingJob

RENAME_ATTEMPTS = 3


@dataclass(frozen=True)
class ServeOptions:
    """Command-line choices of `python -m pipeline ml-backend`."""

    model: Path
    host: str = "127.0.0.1"
    port: int = 9090
    url: str | None = None  # the address Label Studio uses (default http://HOST:PORT)
    train_command: str = "dvc repro train"
    train_log: Path = Path(".segpipe/ml-backend/train.log")
    cache: Path = Path(".segpipe/ml-backend/images")
    workdir: Path = Path(".")

    @property
    def public_url(self) -> str:
        return (self.url or f"http://{self.host}:{self.port}").rstrip("/")


def basic_auth_from_env() -> tuple[str, str] | None:
    """(user, password) from ML_BACKEND_USER / ML_BACKEND_PASSWORD, None when neither is set."""
    user, password = os.environ.get("ML_BACKEND_USER", ""), os.environ.get("ML_BACKEND_PASSWORD", "")
    if bool(user) != bool(password):
        raise ParamsError("set both ML_BACKEND_USER and ML_BACKEND_PASSWORD for basic auth, or neither")
    return (user, password) if user else None


def build_backend(
    options: ServeOptions,
    base: BaseParams,
    ls: LabelStudioParams,
    pull: PullParams,
    pre: PreannotateParams,
    client: LabelStudioClient | None,
) -> Backend:
    """The Backend with its model already loaded (Label Studio's first /health must not wait for it)."""
    model = ServedModel(options.model, base.names, pre.model_name, pre.device, pre.threads)
    model.current()
    source = image_source(client, pull)
    training = TrainingJob(
        options.train_command, options.train_log, options.workdir, on_finish=lambda _code: model.announce()
    )
    return Backend(
        model,
        source,
        options.cache,
        ls.image_tag,
        pre.brush_tag,
        pre.batch_size,
        training,
        basic_auth_from_env(),
        max(1, pull.workers),
    )


def follow_versions(backend: Backend, client: LabelStudioClient, connection: Connection) -> None:
    """Retitle the backend entry (and so the project's model_version) with each new checkpoint's version."""

    def activate(version: str) -> None:
        for attempt in range(RENAME_ATTEMPTS):
            try:
                rename(client, connection, version)
                return
            except LabelStudioError as error:
                # Label Studio re-checks /health with a 1 s timeout, which a busy machine can miss.
                print(
                    f"ml-backend: could not announce model_version {version} to project {connection.project_id} "
                    f"(attempt {attempt + 1} of {RENAME_ATTEMPTS}): {error}",
                    flush=True,
                )

    backend.model.listeners.append(activate)


def connect_when_up(
    server: uvicorn.Server,
    backend: Backend,
    client: LabelStudioClient,
    project: int | str,
    url: str,
    done: list,
    timeout_s: float = 60.0,
) -> None:
    """Wait until uvicorn listens, then register with the project (Label Studio calls back at once)."""
    deadline = time.monotonic() + timeout_s
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)  # uvicorn offers no event for "listening"
    try:
        project_id = client.find_project(project).id
        connection = connect(client, project_id, url, backend.model.announce(), backend.basic_auth)
        follow_versions(backend, client, connection)
        print(
            f"ml-backend: connected to project {project_id} as {url} (model_version {connection.model_version})",
            flush=True,
        )
        done.append(connection)
    except PipelineError as error:
        print(f"ml-backend: could not connect: {error}", flush=True)
        done.append(error)
        server.should_exit = True


def serve(
    backend: Backend, options: ServeOptions, client: LabelStudioClient | None = None, project: int | str | None = None
) -> None:
    """Serve until interrupted; with `project`, connect to it once listening."""
    server = uvicorn.Server(uvicorn.Config(create_app(backend), host=options.host, port=options.port, log_level="info"))
    outcome: list = []
    if project is not None:
        if client is None:
            raise LabelStudioError("connecting needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the environment")
        threading.Thread(
            target=connect_when_up, args=(server, backend, client, project, options.public_url, outcome), daemon=True
        ).start()
    stop = threading.Event()
    threading.Thread(target=backend.model.watch, args=(stop,), daemon=True).start()
    try:
        server.run()
    finally:
        stop.set()
        backend.training.stop()
        if backend.source.fetcher is not None:
            backend.source.fetcher.close()
    if outcome and isinstance(outcome[0], PipelineError):
        raise outcome[0]


@contextlib.contextmanager
def serving_app_in_thread(app: FastAPI, host: str, port: int, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve an app in a background thread of this process (tests, benchmarks); yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise PipelineError(f"the ML backend did not start listening on {host}:{port}")
        time.sleep(0.02)  # uvicorn offers no event for "listening"
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


@contextlib.contextmanager
def serving_in_thread(backend: Backend, host: str, port: int) -> Iterator[str]:
    """The backend's app served in a background thread; a training run still going is ended on exit."""
    try:
        with serving_app_in_thread(create_app(backend), host, port) as url:
            yield url
    finally:
        backend.training.stop()
        if backend.source.fetcher is not None:
            backend.source.fetcher.close()
