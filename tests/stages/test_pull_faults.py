"""The server stops in the middle of a pull: clear error, previous snapshot untouched, re-run identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import LabelStudioError
from pipeline.core.params import LabelStudioParams, PullParams
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull
from tests import lsproject

pytestmark = pytest.mark.labelstudio


def _files(*folders: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder.parent)): p.read_bytes()
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_server_stopped_mid_pull(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, port = tmp_path / "ls", server.free_port()
    running = server.start(data_dir=data_dir, port=port, document_root=data_dir / "files")
    try:
        folder = running.document_root / "mid_pull"
        folder.mkdir()
        with LabelStudioClient(running.url, running.credentials.token) as client:
            built = lsproject.create_project(client, folder, "mid pull", count=pull.BATCH + 10)
        raw, images = tmp_path / "raw", tmp_path / "images"
        monkeypatch.setattr(
            LabelStudioClient,
            "from_env",
            classmethod(lambda cls, **kw: cls(running.url, running.credentials.token, retry_total_s=2)),
        )
        params = (
            LabelStudioParams(project=built.id),
            PullParams(workers=1, incremental=False),
        )  # every task is fetched again
        pull.run(raw, images, *params)
        before = _files(raw, images)

        original, fetched = pull.fetch_image, []

        def stop_during_second_batch(*args, **kwargs):
            fetched.append(1)
            if len(fetched) == pull.BATCH + 1:
                server.stop(data_dir)
            return original(*args, **kwargs)

        monkeypatch.setattr(pull, "fetch_image", stop_during_second_batch)
        with pytest.raises(LabelStudioError, match=f"cannot reach Label Studio at {running.url}"):
            pull.run(raw, images, *params)
        assert _files(raw, images) == before
        assert not list(tmp_path.glob(".raw.*"))

        monkeypatch.setattr(pull, "fetch_image", original)
        running = server.start(data_dir=data_dir, port=port, document_root=data_dir / "files")
        pull.run(raw, images, *params)
        assert _files(raw, images) == before
    finally:
        server.stop(data_dir)
