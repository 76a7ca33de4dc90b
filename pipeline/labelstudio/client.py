"""Talk to a Label Studio server: projects, tasks, exports, images and predictions.

Connection details come from the environment only (`LABEL_STUDIO_URL`,
`LABEL_STUDIO_API_KEY`). Transient failures (refused connections, timeouts, 5xx, 429) are
retried with exponential backoff for a bounded total time; 401/403/404 fail at once with a
message naming the URL and the status. No message ever contains the API key or the
response headers (Label Studio sets session cookies in them).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from pipeline.core.errors import LabelStudioError
from pipeline.labelstudio.fetch import FetchSettings, ImageFetcher, origin_headers_from_env

T = TypeVar("T")

EXPORT_OPTIONS = {"predictions": {"only_id": False}, "annotations__completed_by": {"only_id": False}}
# Task fields that change when someone merely opens a task, not when its content changes.
VOLATILE_TASK_FIELDS = (
    "drafts",
    "updated_at",
    "updated_by",
    "comment_authors",
    "comment_count",
    "last_comment_updated_at",
)


@dataclass(frozen=True)
class Project:
    """The parts of a Label Studio project the pipeline needs."""

    id: int
    title: str
    label_config: str
    model_version: str | None


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, httpx.TransportError):
        return True
    status = _status_of(error)
    return status is not None and (status >= 500 or status == 429)


def _status_of(error: BaseException) -> int | None:
    if isinstance(error, ApiError):
        return error.status_code
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code
    return None


def _detail_of(error: BaseException) -> str:
    """A short, secret-free description of a failed call."""
    if isinstance(error, ApiError):
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("validation_errors") or body.get("detail") or ""
        return str(detail)[:300]
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.text[:300]
    return type(error).__name__


class LabelStudioClient:
    """A connection to one Label Studio server; every call is retried and its errors explained."""

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 60.0, retry_total_s: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise LabelStudioError(f"LABEL_STUDIO_URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.retry_total_s, self.timeout_s = retry_total_s, timeout_s
        # Retries are ours (bounded total time, explained errors), not the SDK's.
        self.sdk = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout_s, max_retries=0)
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s)

    @classmethod
    def from_env(cls, **options: float) -> LabelStudioClient:
        """Connect with `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` from the environment."""
        url = os.environ.get("LABEL_STUDIO_URL", "").strip()
        api_key = os.environ.get("LABEL_STUDIO_API_KEY", "").strip()
        missing = [name for name, value in (("LABEL_STUDIO_URL", url), ("LABEL_STUDIO_API_KEY", api_key)) if not value]
        if missing:
            raise LabelStudioError(
                f"{' and '.join(missing)} not set. Export them (your Label Studio's address and the API token "
                'from Account & Settings), or for the local server run: eval "$(python -m pipeline serve --env)"'
            )
        return cls(url, api_key, **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one request with retries; `what` names it in the error message."""
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_delay(self.retry_total_s),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )
        started = time.monotonic()
        try:
            return retrying(function, *args, **kwargs)
        except (ApiError, httpx.HTTPError) as error:
            raise self._explain(what, error, time.monotonic() - started) from None

    def _explain(self, what: str, error: BaseException, elapsed_s: float) -> LabelStudioError:
        status = _status_of(error)
        if status in (401, 403):
            hint = (
                "check LABEL_STUDIO_API_KEY (Account & Settings > Access Token) and that this user may open the project"
            )
            return LabelStudioError(f"{what}: Label Studio at {self.url} answered HTTP {status}; {hint}", status)
        if status == 404:
            return LabelStudioError(
                f"{what}: Label Studio at {self.url} answered HTTP 404 (not found); check the id or path", status
            )
        if status is not None:
            return LabelStudioError(
                f"{what}: Label Studio at {self.url} answered HTTP {status}: {_detail_of(error)}", status
            )
        return LabelStudioError(
            # The time measured, not the retry budget: one attempt may itself last up to the request timeout.
            f"{what}: cannot reach Label Studio at {self.url} ({_detail_of(error)}) after retrying for "
            f"{elapsed_s:.1f} s; is the server running and LABEL_STUDIO_URL right?"
        )

    def _auth_headers(self) -> dict[str, str]:
        """The SDK's own headers: the right scheme for legacy tokens and personal access tokens.

        The SDK exchanges and refreshes the JWT of the latter. label-studio-sdk 2.1.2 has no public
        call for these headers nor for a request to an arbitrary path (task files), so its client
        wrapper it is; the SDK version is pinned and the download tests cover it.
        """
        return self.sdk._client_wrapper.get_headers()

    def request(self, method: str, path: str, headers_extra: dict | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**self._auth_headers(), **(headers_extra or {})}
        response = self._http.request(method, path, headers=headers, **kwargs)
        if response.status_code != 304:  # "not modified" answers a conditional download
            response.raise_for_status()
        return response

    # -- projects and tasks -----------------------------------------------------------------

    def find_project(self, ref: int | str) -> Project:
        """A project by numeric id, or by exact title (which must be unique)."""
        if isinstance(ref, int) or str(ref).isdigit():
            project = self.call(f"get project {ref}", self.sdk.projects.get, id=int(ref))
        else:
            matches = [
                p
                for p in self.call("list projects", lambda: list(self.sdk.projects.list(title=str(ref))))
                if p.title == ref
            ]
            if len(matches) != 1:
                found = (
                    "no project"
                    if not matches
                    else f"{len(matches)} projects ({', '.join(str(p.id) for p in matches)})"
                )
                raise LabelStudioError(f"{found} titled {ref!r} at {self.url}; set labelstudio.project to a project id")
            project = matches[0]
        return Project(project.id, project.title or "", project.label_config or "", project.model_version or None)

    def create_project(self, title: str, label_config: str) -> Project:
        """A new project (titles need at least 3 characters)."""
        project = self.call(
            f"create project {title!r}", self.sdk.projects.create, title=title, label_config=label_config
        )
        return Project(project.id, project.title or title, project.label_config or label_config, None)

    def add_local_storage(self, project_id: int, folder: str, title: str = "local files") -> int:
        """Attach a local-files folder (under the server's document root) so its files are served."""
        storage = self.call(
            f"add local storage {folder} to project {project_id}",
            self.sdk.import_storage.local.create,
            project=project_id,
            path=folder,
            title=title,
            use_blob_urls=True,
        )
        return storage.id

    def import_tasks(self, project_id: int, tasks: list[dict], batch_size: int = 500) -> list[int]:
        """Create tasks from data dicts ({"image": url, ...}); returns the new task ids in order."""
        task_ids: list[int] = []
        for start in range(0, len(tasks), batch_size):
            chunk = tasks[start : start + batch_size]
            answer = self.call(
                f"import {len(chunk)} tasks into project {project_id}",
                self.sdk.projects.import_tasks,
                id=project_id,
                request=chunk,
                return_task_ids=True,
            )
            task_ids.extend(answer.task_ids or [])
        return task_ids

    def ensure_user(self, email: str) -> int:
        """The id of the user with this e-mail, created (without a password) when missing."""
        for user in self.call("list users", lambda: list(self.sdk.users.list())):
            if user.email == email:
                return user.id
        username = email.split("@")[0]
        return self.call(f"create user {email}", self.sdk.users.create, email=email, username=username).id

    def create_annotation(
        self,
        task_id: int,
        result: list[dict],
        completed_by: int,
        *,
        was_cancelled: bool = False,
        lead_time: float | None = None,
        parent_prediction: int | None = None,
    ) -> int:
        """Submit one annotation on behalf of a user (started from `parent_prediction`, if given); returns its id."""
        extra = {} if lead_time is None else {"lead_time": lead_time}
        if parent_prediction is not None:
            extra["parent_prediction"] = parent_prediction
        annotation = self.call(
            f"create annotation on task {task_id}",
            self.sdk.annotations.create,
            id=task_id,
            result=result,
            completed_by=completed_by,
            was_cancelled=was_cancelled,
            **extra,
        )
        return annotation.id

    def iter_tasks(self, project_id: int, page_size: int = 100) -> Iterator[dict]:
        """Every task of a project, with all its annotations (cancelled ones included) and predictions."""
        page = 1
        while True:
            response = self.call(
                f"list tasks of project {project_id} (page {page})",
                self.request,
                "GET",
                "/api/tasks",
                params={"project": project_id, "page": page, "page_size": page_size, "fields": "all"},
            )
            body = response.json()
            yield from body["tasks"]
            # Asking past the last page answers 404, so stop on the announced total.
            if not body["tasks"] or page * page_size >= body["total"]:
                return
            page += 1

    def task_exists(self, task_id: int) -> bool:
        try:
            self.call(f"get task {task_id}", self.request, "GET", f"/api/tasks/{task_id}")
        except LabelStudioError as error:
            if error.status == 404:
                return False
            raise
        return True

    # -- exports ----------------------------------------------------------------------------

    def export_tasks(
        self, project_id: int, timeout_s: float = 600.0, task_filter_options: dict | None = None
    ) -> Iterator[bytes]:
        """The project's JSON export (predictions and annotators expanded), streamed in chunks.

        `task_filter_options` ({"view": id}) exports only the tasks a data-manager view selects.
        """
        exports = self.sdk.projects.exports
        created = self.call(
            f"create an export of project {project_id}",
            exports.create,
            id=project_id,
            title="pipeline snapshot",
            serialization_options=EXPORT_OPTIONS,
            # Label Studio builds the export inside this request: on a big project that takes minutes.
            request_options={"timeout": timeout_s},
            **({"task_filter_options": task_filter_options} if task_filter_options else {}),
        )
        deadline = time.monotonic() + timeout_s
        status = created.status
        while status not in ("completed", "failed"):
            if time.monotonic() > deadline:
                raise LabelStudioError(
                    f"export {created.id} of project {project_id} at {self.url} not ready after {timeout_s:.0f} s"
                )
            time.sleep(0.2)  # the server builds the export asynchronously; there is nothing to block on
            status = self.call(f"poll export {created.id}", exports.get, id=project_id, export_pk=created.id).status
        if status == "failed":
            raise LabelStudioError(
                f"Label Studio at {self.url} failed to build export {created.id} of project {project_id}; see its log"
            )
        try:
            yield from self.call(
                f"download export {created.id}",
                lambda: exports.download(id=project_id, export_pk=created.id, export_type="JSON"),
            )
        finally:
            self.call(f"delete export {created.id}", exports.delete, id=project_id, export_pk=created.id)

    # -- files ------------------------------------------------------------------------------

    def fetch_settings(self, allowed_origins: Iterable[str] = (), document_root: Path | None = None) -> FetchSettings:
        """How task images of this server are fetched: its token for its image routes only."""
        return FetchSettings(
            ls_url=self.url,
            ls_headers=self._auth_headers(),
            allowed_origins=tuple(allowed_origins),
            origin_headers=origin_headers_from_env(os.environ, self.url),
            document_root=document_root,
            timeout_s=self.timeout_s,
            retry_total_s=self.retry_total_s,
        )

    def download(self, reference: str, allowed_origins: Iterable[str] = ()) -> bytes:
        """The bytes of one task image (upload, local file, storage route or allowed origin)."""
        with ImageFetcher(self.fetch_settings(allowed_origins)) as fetcher:
            return fetcher.fetch(reference).content or b""

    # -- predictions ------------------------------------------------------------------------

    def import_predictions(self, project_id: int, predictions: Iterable[dict], batch_size: int = 500) -> int:
        """Send predictions ({task, result, score, model_version}) in batches; returns how many."""
        if batch_size < 1:
            raise LabelStudioError(f"batch_size must be at least 1, got {batch_size}")
        sent = 0
        batch: list[dict] = []
        for prediction in predictions:
            batch.append(prediction)
            if len(batch) == batch_size:
                sent += self._import_batch(project_id, batch)
                batch = []
        if batch:
            sent += self._import_batch(project_id, batch)
        return sent

    def _import_batch(self, project_id: int, batch: list[dict]) -> int:
        """Send one batch; a retry first asks which of them the server already holds and sends only the rest.

        A request whose answer was lost may have been committed: resending it blindly would
        duplicate every prediction in it. So no retry goes out before the server was asked.
        """
        pending, failed_before = list(batch), [False]

        def attempt() -> None:
            nonlocal pending
            if failed_before[0]:
                held = self._held_predictions(project_id, {p["task"] for p in pending})
                pending = [p for p in pending if _prediction_key(p) not in held]
            failed_before[0] = True
            if pending:
                self.sdk.projects.import_predictions(id=project_id, request=pending)

        self.call(f"import {len(batch)} predictions into project {project_id}", attempt)
        return len(batch)

    def _held_predictions(self, project_id: int, task_ids: set[int]) -> set[tuple]:
        """Keys (task, model_version, score, result) of the predictions the server holds on these tasks."""
        response = self.request("GET", "/api/predictions/", params={"project": project_id})
        body = response.json()
        items = body.get("results", []) if isinstance(body, dict) else body
        return {_prediction_key(p) for p in items if isinstance(p, dict) and p.get("task") in task_ids}

    def delete_task_predictions(self, project_id: int, task_ids: list[int], chunk: int = 1000) -> int:
        """Delete every prediction of these tasks in bulk (one request per `chunk` tasks); returns how many went."""
        deleted = 0
        for start in range(0, len(task_ids), chunk):
            selected = task_ids[start : start + chunk]
            response = self.call(
                f"delete the predictions of {len(selected)} tasks in project {project_id}",
                self.request,
                "POST",
                "/api/dm/actions",
                params={"id": "delete_tasks_predictions", "project": project_id},
                json={"selectedItems": {"all": False, "included": selected}},
            )
            deleted += int(response.json().get("processed_items", 0))
        return deleted

    def delete_model_version(self, project_id: int, model_version: str) -> int:
        """Delete every prediction of one model_version in a project; returns how many went."""
        response = self.call(
            f"delete predictions of model_version {model_version!r} in project {project_id}",
            self.request,
            "DELETE",
            f"/api/projects/{project_id}/model-versions/",
            json={"model_version": model_version},
        )
        return int(response.json().get("deleted_predictions", 0))

    def delete_prediction(self, prediction_id: int) -> None:
        self.call(f"delete prediction {prediction_id}", self.sdk.predictions.delete, id=prediction_id)

    def set_model_version(self, project_id: int, model_version: str) -> None:
        """Make the editor show this model_version's predictions."""
        self.call(
            f"set model_version of project {project_id}",
            self.sdk.projects.update,
            id=project_id,
            model_version=model_version,
        )


def _prediction_key(prediction: dict) -> tuple:
    """What makes two predictions the same push: task, version, score and regions."""
    score = prediction.get("score")
    return (
        prediction.get("task"),
        prediction.get("model_version"),
        None if score is None else round(float(score), 6),
        json.dumps(prediction.get("result"), sort_keys=True),
    )


def normalise_task(task: dict) -> dict:
    """A task with stable order and without fields that change on mere viewing."""
    clean = {key: value for key, value in task.items() if key not in VOLATILE_TASK_FIELDS}
    for key in ("annotations", "predictions"):
        items = task.get(key)
        if isinstance(items, list):  # anything else is left for validate to report
            clean[key] = sorted(items, key=_by_id)
    return clean


def _by_id(item: object) -> tuple[int, str]:
    """Sort key: records by numeric id; malformed items after them, in a stable textual order."""
    if isinstance(item, dict) and isinstance(item.get("id"), int):
        return item["id"], ""
    return 2**63, repr(item)
