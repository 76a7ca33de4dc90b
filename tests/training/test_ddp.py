"""Two CPU processes on gloo through torchrun: training completes and only rank 0 writes."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.training.synthetic import base_params, tiny_params

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_gloo_only_rank0_writes(dataset, tmp_path):
    base = base_params()
    train = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_params(epochs=2, batch_size=2)).items()
    }
    params = {
        "base": {
            "seed": base.seed,
            "ignore_index": 255,
            "classes": [{"name": c.name, "color": list(c.color)} for c in base.classes],
        },
        "train": train,
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "tests/training/ddp_probe.py"),
        "--images",
        dataset.raw,
        "--annotations",
        dataset.annotations,
        "--labels",
        dataset.labels,
        "--splits",
        dataset.splits,
        "--models",
        tmp_path / "models",
        "--live",
        tmp_path / "live",
        "--params",
        tmp_path / "params.yaml",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROBE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(c) for c in command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train: epochs=2" in done.stderr
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["best.pt", "last.pt"]
    assert (tmp_path / "saves_rank0.txt").read_text().count("last.pt") == 2
    assert (tmp_path / "saves_rank1.txt").read_text() == ""
    assert (tmp_path / "live/metrics.json").is_file()
