"""The backend's parts without a server: reloading checkpoints, the training run, simulated corrections."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.demo.review_simulation import correct_prediction, image_name
from pipeline.mlbackend.model import ServedModel
from pipeline.mlbackend.serve import basic_auth_from_env
from pipeline.mlbackend.training import TrainingJob
from tests import lsproject
from tests.mlbackend.helpers import write_checkpoint


def test_a_replaced_checkpoint_is_loaded_once_and_announced(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "best.pt", seed=0)
    served = ServedModel(path, lsproject.CLASSES, None, "cpu", 1)
    heard: list[str] = []
    served.listeners.append(heard.append)
    first = served.announce()
    assert served.current().version == first and served.loads == 1 and heard == []
    write_checkpoint(tmp_path / "new.pt", seed=1).replace(path)  # an atomic rename, as training writes it
    assert served.current().version != first and served.loads == 2
    second = served.announce()
    assert heard == [second] and second != first
    path.write_bytes(b"not a checkpoint")
    assert served.current().version == second  # a broken file keeps the last good model in service
    assert "not a readable checkpoint" in served.describe()["error"] and served.loads == 2


def test_wrong_classes_are_refused_at_the_first_load(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "best.pt")
    with pytest.raises(PipelineError, match="base.classes"):
        ServedModel(path, ["a", "b", "c"], None, "cpu", 1).current()


def test_one_training_run_at_a_time_with_state_and_log(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    release = tmp_path / "release"  # the run lasts until the test has asked twice
    script.write_text(
        "import pathlib, time\nprint(\"Running stage 'train':\")\nprint('epoch 1/1', flush=True)\n"
        f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.01)\n"
    )
    job = TrainingJob(f"{sys.executable} {script}", tmp_path / "logs/train.log", tmp_path)
    started, status = job.start()
    again, second = job.start()
    assert started and status["state"] == "running" and not again and second["runs"] == 1
    release.touch()
    done = job.wait(60)
    assert done["state"] == "succeeded" and done["returncode"] == 0 and done["stage"] == "train"
    assert done["last_log_line"] == "epoch 1/1"
    failing = TrainingJob(f'{sys.executable} -c "raise SystemExit(3)"', tmp_path / "fail.log", tmp_path)
    failing.start()
    assert failing.wait(60)["state"] == "failed" and failing.status()["returncode"] == 3


def test_empty_training_command_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="train-command"):
        TrainingJob("  ", tmp_path / "log", tmp_path)


def test_basic_auth_needs_both_variables(monkeypatch) -> None:
    monkeypatch.delenv("ML_BACKEND_USER", raising=False)
    monkeypatch.delenv("ML_BACKEND_PASSWORD", raising=False)
    assert basic_auth_from_env() is None
    monkeypatch.setenv("ML_BACKEND_USER", "ls")
    with pytest.raises(PipelineError, match="ML_BACKEND_PASSWORD"):
        basic_auth_from_env()
    monkeypatch.setenv("ML_BACKEND_PASSWORD", "pw")
    assert basic_auth_from_env() == ("ls", "pw")


def test_a_correction_fixes_large_disagreements_only() -> None:
    predicted = np.zeros((10, 10), np.uint8)
    own_view = predicted.copy()
    own_view[0:3, 0:3] = 1  # 9 pixels the model missed: fixed
    own_view[8, 8] = 2  # 1 pixel off: left as predicted
    corrected = correct_prediction(predicted, own_view, min_pixels=4)
    expected = predicted.copy()
    expected[0:3, 0:3] = 1
    np.testing.assert_array_equal(corrected, expected)


def test_image_name_of_a_local_files_reference() -> None:
    assert (
        image_name({"data": {"image": "/data/local-files/?d=street-scenes/street00_0001.png"}}) == "street00_0001.png"
    )
    assert image_name({"data": {"image": 7}}) is None and image_name({"data": {}}) is None
