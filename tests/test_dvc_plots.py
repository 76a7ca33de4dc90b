"""`dvc plots show` on the plots dvc.yaml declares renders a page that needs no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from pipeline.quality.plots import write_png

ROOT = Path(__file__).resolve().parents[1]
PICTURES = (".png", ".jpg", ".jpeg", ".svg", ".gif")


def _declared_plots() -> list[str]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    paths = dvc["vars"][0]["paths"]
    names = [next(iter(p)) if isinstance(p, dict) else p for s in dvc["stages"].values() for p in s.get("plots", [])]
    return [re.sub(r"\$\{paths\.(\w+)\}", lambda m: paths[m.group(1)], name) for name in names]


def test_plots_page_loads_nothing_from_the_network(tmp_path):
    shutil.copy(ROOT / "dvc.yaml", tmp_path)
    shutil.copy(ROOT / "params.yaml", tmp_path)
    plots = _declared_plots()
    for name in plots:
        target = tmp_path / name
        if target.suffix.lower() in PICTURES:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_png(target, np.zeros((8, 8, 3), np.uint8))
        else:  # a data plot: give it a dvclive series so it renders
            (target / "train").mkdir(parents=True, exist_ok=True)
            (target / "train" / "loss.tsv").write_text("step\tloss\n0\t1.0\n1\t0.5\n")
    environment = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    bin_dir = Path(sys.executable).parent
    environment["PATH"] = f"{bin_dir}{os.pathsep}{environment['PATH']}"
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, env=environment, check=True, timeout=120)
    subprocess.run(
        ["dvc", "plots", "show", "--out", "page", "-q"], cwd=tmp_path, env=environment, check=True, timeout=300
    )
    page = (tmp_path / "page" / "index.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the plots page loads something from the network"
    assert page.count("<img") == len(plots)
