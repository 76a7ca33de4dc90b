"""Shared fixtures: one real local Label Studio server for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[server.RunningServer]:
    """A real Label Studio on 127.0.0.1 with SQLite, started by the same code as `pipeline serve`.

    It may call ML backends on 127.0.0.1, so the live-model tests can connect theirs.
    """
    data_dir = tmp_path_factory.mktemp("labelstudio")
    running = server.start(
        data_dir=data_dir, port=server.free_port(), document_root=data_dir / "files", local_ml_backends=True
    )
    yield running
    server.stop(data_dir)


@pytest.fixture
def ls_client(label_studio: server.RunningServer) -> Iterator[LabelStudioClient]:
    """A client of the session's server, connected the way the stages connect (URL + token)."""
    with LabelStudioClient(label_studio.url, label_studio.credentials.token, retry_total_s=5) as client:
        yield client


@pytest.fixture
def project_files(label_studio: server.RunningServer, request: pytest.FixtureRequest) -> Path:
    """A fresh folder under the server's document root for one test's images."""
    folder = label_studio.document_root / request.node.name.replace("[", "_").replace("]", "_")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
