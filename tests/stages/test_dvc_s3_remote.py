"""A DVC remote on S3 (moto's server on 127.0.0.1): repro, push, a fresh clone, pull, byte-identical data."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.demo.synthetic import CLASSES
from tests import s3server
from tests.exports import write_export

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "datasets"


def _missing() -> str | None:
    try:
        import dvc_s3  # noqa: F401
    except ImportError:
        return "dvc-s3 not installed; pip install -e '.[s3]'"
    return s3server.missing_reason()


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def _run(command: list[str], cwd: Path, environment: dict) -> str:
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _repository(root: Path, export: Path, document_root: Path) -> None:
    for name in ("pipeline", ".dvc", "dvc.yaml", ".dvcignore", ".gitignore"):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "cache", "tmp"))
        else:
            shutil.copy2(source, root / name)
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["base"]["classes"] = [{"name": name, "color": [40 * i, 80, 160]} for i, name in enumerate(CLASSES)]
    params["pull"].update(export_file=str(export), document_root=str(document_root))
    params["validate"].update(workers=1)
    params["merge"].update(workers=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_datasets_round_trip_through_an_s3_remote(tmp_path: Path):
    export, document_root = write_export(tmp_path / "source", 12)
    with s3server.running(tmp_path) as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        environment = {key: value for key, value in os.environ.items() if not key.startswith(("LABEL_STUDIO_", "AWS_"))}
        environment.update(
            s3.env(),
            DVC_NO_ANALYTICS="1",
            GIT_AUTHOR_NAME="t",
            GIT_AUTHOR_EMAIL="t@localhost",
            GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@localhost",
        )
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
        root = tmp_path / "repository"
        root.mkdir()
        _repository(root, export, document_root)
        _run(["git", "init", "-q"], root, environment)
        _run(["dvc", "remote", "add", "-d", "-f", "s3", f"s3://{BUCKET}/segpipe"], root, environment)
        # The endpoint is deployment, not a secret; the keys stay in the environment (AWS_*), never in the config.
        _run(["dvc", "remote", "modify", "s3", "endpointurl", s3.endpoint], root, environment)
        _run(["dvc", "repro", "merge"], root, environment)
        _run(["git", "add", "-A"], root, environment)
        _run(["git", "commit", "-qm", "dataset"], root, environment)
        _run(["dvc", "push"], root, environment)
        assert s3server.ACCESS_KEY not in (root / ".dvc" / "config").read_text()
        stored = s3.client().list_objects_v2(Bucket=BUCKET, Prefix="segpipe/")
        assert stored["KeyCount"] > 0

        clone = tmp_path / "clone"
        _run(["git", "clone", "-q", str(root), str(clone)], tmp_path, environment)
        assert not (clone / "data" / "labels").exists() and not (clone / "data" / "raw").exists()  # only in the remote
        _run(["dvc", "pull", "--with-deps", "merge"], clone, environment)
        original, restored = _tree(root / "data"), _tree(clone / "data")
        assert any(name.startswith("labels/") for name in original) and any(
            name.startswith("annotations/") for name in original
        )
        assert restored == original
        status = _run(["dvc", "status", "validate", "merge"], clone, environment)
        assert "up to date" in status and "changed" not in status
