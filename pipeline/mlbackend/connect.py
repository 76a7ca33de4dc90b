"""Register the backend with a Label Studio project, as the project's "Model" settings tab would.

`POST /api/ml/` makes Label Studio call the backend's /health and /setup at once, so the
backend must already be serving. Connecting twice to the same URL updates the existing entry
instead of adding a second one.

The editor shows only predictions whose model_version equals the project's model_version, and
Label Studio accepts as the project's model_version only the title of a connected backend or a
version that already has predictions. So the backend entry is titled with the version it serves
(name + checkpoint hash, the same string its predictions carry) and the project is pointed at it;
when a new checkpoint is loaded, `rename` retitles the entry and Label Studio moves a project
that showed the old title to the new one itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.errors import LabelStudioError
from pipeline.labelstudio.client import LabelStudioClient


@dataclass(frozen=True)
class Connection:
    """A backend entry of a project: its id in Label Studio and the model version it announced."""

    backend_id: int
    project_id: int
    url: str
    model_version: str | None
    auth: dict = field(default_factory=dict, repr=False)  # sent again on every update (Label Studio re-checks)


def connect(
    client: LabelStudioClient, project_id: int, url: str, version: str, basic_auth: tuple[str, str] | None = None
) -> Connection:
    """Add (or update) the ML backend at `url`, titled `version`, and make it the project's shown version."""
    title = version
    auth = _auth_fields(basic_auth)
    existing = [
        b
        for b in client.call(f"list ML backends of project {project_id}", client.sdk.ml.list, project=project_id)
        if (b.url or "").rstrip("/") == url.rstrip("/")
    ]
    what = f"connect the ML backend {url} to project {project_id}"
    try:
        if existing:
            backend = client.call(
                what,
                client.sdk.ml.update,
                id=existing[0].id,
                url=url,
                title=title,
                project=project_id,
                is_interactive=False,
                auto_update=True,
                **auth,
            )
        else:
            backend = client.call(
                what,
                client.sdk.ml.create,
                url=url,
                project=project_id,
                title=title,
                is_interactive=False,
                auto_update=True,
                **auth,
            )
    except LabelStudioError as error:
        if error.status == 403:
            raise LabelStudioError(
                f"{error}. Label Studio refuses ML backends on private addresses unless started with "
                "ML_BLOCK_LOCAL_IP=false SSRF_PROTECTION_ENABLED=false (python -m pipeline serve "
                "--local-ml-backends does it)",
                403,
            ) from None
        raise
    client.set_model_version(project_id, title)
    return Connection(backend.id, project_id, url, backend.model_version or None, auth)


def rename(client: LabelStudioClient, connection: Connection, version: str) -> None:
    """Retitle the backend entry with a new version (Label Studio re-checks /health and /setup)."""
    client.call(
        f"rename the ML backend {connection.backend_id} to {version}",
        client.sdk.ml.update,
        id=connection.backend_id,
        url=connection.url,
        project=connection.project_id,
        title=version,
        **connection.auth,
    )


def _auth_fields(basic_auth: tuple[str, str] | None) -> dict:
    if basic_auth is None:
        return {"auth_method": "NONE"}
    return {"auth_method": "BASIC_AUTH", "basic_auth_user": basic_auth[0], "basic_auth_pass": basic_auth[1]}
