"""Temporaries of a killed stage are removed by the next run; a refused write is one line naming the path."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from pipeline.core.atomic import remove_leftovers, remove_tree, replace_dir
from tests.stages.test_export_items import _annotation, _map

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_leftovers_of_a_dead_process_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "annotations"
    dead = tmp_path / f".annotations.{_dead_pid()}.k1l2.tmp"
    (dead / "7").mkdir(parents=True)
    (dead / "7" / "u1.png").write_bytes(b"x" * 1000)
    stray_file = tmp_path / f".annotations.{_dead_pid()}.zz.tmp"
    stray_file.write_bytes(b"half a report")
    live = tmp_path / f".annotations.{os.getppid()}.ab.tmp"
    live.mkdir()
    unrelated = tmp_path / ".other.123.tmp"
    unrelated.mkdir()
    with replace_dir(target) as staging:
        (staging / "done").write_text("1")
    assert not dead.exists() and not stray_file.exists()
    assert live.exists() and unrelated.exists() and (target / "done").exists()
    assert remove_leftovers(target) == 0


def _project(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "files"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), np.zeros((64, 64, 3), np.uint8))
    tasks = [
        {"id": i, "data": {"image": "/data/local-files/?d=a.png"}, "annotations": [_annotation(i, 1, _map(64, 64))]}
        for i in range(1, 4)
    ]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    params["base"]["classes"] = [{"name": "road", "color": [1, 2, 3]}, {"name": "car", "color": [4, 5, 6]}]
    params["labelstudio"]["control_tags"] = ["brush"]
    params["pull"].update(export_file=str(tmp_path / "export.json"), document_root=str(root), workers=1)
    params["validate"].update(unpainted=None, workers=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    base = [sys.executable, "-m", "pipeline"]
    return tmp_path, base


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))


def test_a_refused_write_is_one_line_naming_the_path(tmp_path: Path) -> None:
    folder, base = _project(tmp_path)
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    params = ["--params", str(folder / "params.yaml")]
    pulled = subprocess.run(
        [*base, "pull", "--out", "raw", "--images", "images", *params],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pulled.returncode == 0, pulled.stderr
    result = subprocess.run(
        [
            *base,
            "validate",
            "--raw",
            "raw",
            "--images",
            "images",
            "--out",
            "annotations",
            "--report",
            "reports/validation.json",
            *params,
        ],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "File too large" in lines[0] and ("annotations" in lines[0] or "validation.json" in lines[0])
    assert not list(folder.glob(".annotations.*.tmp")) and not (folder / "annotations").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through folder permissions")
def test_a_read_only_output_folder_is_one_line(tmp_path: Path) -> None:
    folder, base = _project(tmp_path)
    (folder / "locked").mkdir(mode=0o500)
    result = subprocess.run(
        [*base, "pull", "--out", "locked/raw", "--images", "locked/images", "--params", str(folder / "params.yaml")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr and "locked" in result.stderr


def test_remove_tree_deletes_nested_folders_and_leaves_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    tree = tmp_path / "tree"
    for task in range(50):
        (tree / str(task)).mkdir(parents=True)
        (tree / str(task) / "map.png").write_bytes(b"x")
    (tree / "index.jsonl").write_text("{}")
    (tree / "link").symlink_to(outside, target_is_directory=True)
    link = tmp_path / "link"
    link.symlink_to(outside, target_is_directory=True)
    remove_tree(link)  # a symlinked folder is not followed
    remove_tree(tree)
    remove_tree(tmp_path / "absent")
    assert not tree.exists() and link.is_symlink()
    assert (outside / "keep.txt").read_text() == "kept"
