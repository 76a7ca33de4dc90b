"""Task images in S3 (moto's server on 127.0.0.1) attached to Label Studio as import storage; pull fetches them.

Label Studio resolves each s3:// reference itself: with `presign` it redirects to a presigned URL on
the S3 endpoint (which pull fetches only if that origin is allowed), without it it proxies the
bytes under its own origin.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from pipeline.core.params import LabelStudioParams, PullParams
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull
from tests import lsproject, s3server

pytestmark = [
    pytest.mark.labelstudio,
    pytest.mark.skipif(s3server.missing_reason() is not None, reason=str(s3server.missing_reason())),
]
BUCKET = "scenes"


@pytest.fixture(scope="module")
def s3_label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """moto's S3 server with three PNGs, and a Label Studio that may reach it on loopback."""
    folder = tmp_path_factory.mktemp("s3")
    with s3server.running(folder) as s3, pytest.MonkeyPatch.context() as patch:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        uploaded = {}
        for index in range(3):
            _, encoded = cv2.imencode(".png", lsproject.scene(index)[0])
            key = f"frames/f{index}.png"
            client.put_object(Bucket=BUCKET, Key=key, Body=encoded.tobytes())
            uploaded[f"s3://{BUCKET}/{key}"] = hashlib.sha256(encoded.tobytes()).hexdigest()
        # Label Studio refuses storage endpoints on private addresses unless told otherwise.
        patch.setenv("SSRF_PROTECTION_ENABLED", "false")
        data_dir = folder / "ls"
        running = server.start(data_dir=data_dir, port=server.free_port(), document_root=data_dir / "files")
        try:
            yield {"s3": s3, "ls": running, "uploaded": uploaded}
        finally:
            server.stop(data_dir)


def _project_on_s3(setup: dict, presign: bool) -> int:
    running, s3 = setup["ls"], setup["s3"]
    with LabelStudioClient(running.url, running.credentials.token) as client:
        project = client.create_project(f"s3 presign={presign}", lsproject.CONFIG)
        storage = client.call(
            "add S3 storage",
            client.sdk.import_storage.s3.create,
            project=project.id,
            bucket=BUCKET,
            prefix="frames/",
            regex_filter=r".*\.png",
            use_blob_urls=True,
            presign=presign,
            s3endpoint=s3.endpoint,
            region_name=s3server.REGION,
            aws_access_key_id=s3server.ACCESS_KEY,
            aws_secret_access_key=s3server.SECRET_KEY,
        )
        client.call("sync S3 storage", client.sdk.import_storage.s3.sync, id=storage.id)
    return project.id


def _pull(
    setup: dict, project_id: int, out: Path, monkeypatch: pytest.MonkeyPatch, allowed: tuple[str, ...]
) -> list[dict]:
    monkeypatch.setenv("LABEL_STUDIO_URL", setup["ls"].url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", setup["ls"].credentials.token)
    pull.run(
        out / "raw",
        out / "images",
        LabelStudioParams(project=project_id),
        PullParams(allowed_origins=allowed, workers=2),
    )
    return [json.loads(line)["image"] for line in (out / "raw" / "tasks.jsonl").read_text().splitlines()]


def _check_fetched(records: list[dict], setup: dict, images: Path) -> None:
    assert sorted(r["ref"] for r in records) == sorted(setup["uploaded"])
    for record in records:
        assert "error" not in record, record
        assert record["sha256"] == setup["uploaded"][record["ref"]]
        assert hashlib.sha256((images / record["file"]).read_bytes()).hexdigest() == record["sha256"]


def test_presigned_s3_images_are_fetched_from_an_allowed_origin(s3_label_studio, tmp_path, monkeypatch):
    project_id = _project_on_s3(s3_label_studio, presign=True)
    records = _pull(s3_label_studio, project_id, tmp_path, monkeypatch, (s3_label_studio["s3"].endpoint,))
    _check_fetched(records, s3_label_studio, tmp_path / "images")
    # a re-pull asks S3 with the previous ETag and writes the same snapshot
    before = (tmp_path / "raw" / "tasks.jsonl").read_bytes()
    _pull(s3_label_studio, project_id, tmp_path, monkeypatch, (s3_label_studio["s3"].endpoint,))
    assert (tmp_path / "raw" / "tasks.jsonl").read_bytes() == before


def test_presigned_urls_to_another_origin_are_refused_without_leaking_them(s3_label_studio, tmp_path, monkeypatch):
    project_id = _project_on_s3(s3_label_studio, presign=True)
    records = _pull(s3_label_studio, project_id, tmp_path, monkeypatch, ())
    assert len(records) == 3
    for record in records:
        assert "pull.allowed_origins" in record["error"] and s3_label_studio["s3"].endpoint in record["error"]
    snapshot = (tmp_path / "raw" / "tasks.jsonl").read_text()
    # the presigned URL's signature and credential never reach the snapshot (query values are masked)
    assert re.search(r"Signature=[^*&\"]", snapshot) is None and s3server.ACCESS_KEY not in snapshot
    assert not list((tmp_path / "images").rglob("*.png"))


def test_proxied_s3_images_come_through_label_studio_itself(s3_label_studio, tmp_path, monkeypatch):
    project_id = _project_on_s3(s3_label_studio, presign=False)
    records = _pull(s3_label_studio, project_id, tmp_path, monkeypatch, ())  # no other origin needed
    _check_fetched(records, s3_label_studio, tmp_path / "images")
