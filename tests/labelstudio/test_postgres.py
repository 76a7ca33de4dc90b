"""Label Studio on a real PostgreSQL (a throwaway cluster on 127.0.0.1): serve, seed, pull, validate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.core.params import BaseParams, ClassInfo, LabelStudioParams, PullParams, ValidateParams
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.stages import pull, validate
from tests import lsproject, pgcluster

pytestmark = [
    pytest.mark.labelstudio,
    pytest.mark.skipif(pgcluster.missing_reason() is not None, reason=str(pgcluster.missing_reason())),
]

BASE = BaseParams(seed=0, ignore_index=255, classes=tuple(ClassInfo(n, (0, 0, 0)) for n in lsproject.CLASSES))


def _psql(database: str, query: str) -> str:
    parts = urlsplit(database)
    command = [
        str(pgcluster.binaries() / "psql"),
        "-h",
        parts.hostname,
        "-p",
        str(parts.port),
        "-U",
        parts.username,
        "-d",
        parts.path.lstrip("/"),
        "-tAc",
        query,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_database_urls_are_checked_and_passwords_never_recorded():
    env = server.database_environment("postgresql://ls:s3cret@db.internal:6543/labels")
    assert (env["DJANGO_DB"], env["POSTGRE_HOST"], env["POSTGRE_PORT"], env["POSTGRE_NAME"]) == (
        "postgresql",
        "db.internal",
        "6543",
        "labels",
    )
    assert env["POSTGRE_PASSWORD"] == "s3cret"
    assert "s3cret" not in server.redact("postgresql://ls:s3cret@db.internal:6543/labels")
    assert server.database_environment(None) == {"DJANGO_DB": "sqlite"}
    for bad in (
        "mysql://a@b/c",
        "postgresql://db.internal/labels",
        "postgresql://u@h:99999/x",
        "postgresql://u@h:5432/",
    ):
        with pytest.raises(server.ServerError, match="postgresql://USER@HOST:PORT/NAME"):
            server.database_environment(bad)


def test_label_studio_on_postgresql_serves_pull_and_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data_dir = tmp_path / "ls"
    with pgcluster.cluster() as database:
        running = server.start(
            data_dir=data_dir, port=server.free_port(), document_root=data_dir / "files", database=database
        )
        try:
            folder = running.document_root / "pg"
            folder.mkdir()
            with LabelStudioClient(running.url, running.credentials.token) as client:
                built = lsproject.create_project(client, folder, "on postgres", count=3)
                for index in range(3):
                    for user in ("ann1", "ann2"):
                        truth = lsproject.scene(index)[1]
                        lsproject.annotate(
                            client, built, index, user, lsproject.brush_annotation(built.task_ids[index], truth)
                        )
            # Label Studio keeps its tables in PostgreSQL, not in a SQLite file of its data folder.
            assert _psql(database, f"select count(*) from task where project_id = {built.id}") == "3"
            assert _psql(database, "select count(*) from task_completion") == "6"
            assert not list(data_dir.rglob("*.sqlite3"))
            monkeypatch.setenv("LABEL_STUDIO_URL", running.url)
            monkeypatch.setenv("LABEL_STUDIO_API_KEY", running.credentials.token)
            out = tmp_path / "out"
            assert (
                pull.run(out / "raw", out / "images", LabelStudioParams(project=built.id), PullParams(workers=2)) == 3
            )
            counts = validate.run(
                out / "raw",
                out / "images",
                out / "annotations",
                out / "validation.json",
                BASE,
                LabelStudioParams(project=built.id, control_tags=("brush",)),
                ValidateParams(unpainted=None, workers=1),
            )
            assert counts["tasks_ok"] == 3 and counts["annotations_ok"] == 6
            assert (
                "database" in (data_dir / "server.pid").read_text()
                and "segpipe@127.0.0.1" in (data_dir / "server.pid").read_text()
            )
        finally:
            server.stop(data_dir)
