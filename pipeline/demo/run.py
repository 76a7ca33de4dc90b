"""The one-command demo: a local Label Studio, a simulated crowd on synthetic scenes, `dvc repro`,
then the loop closed: simulated annotators work on the pre-annotated tasks (a share corrected
from the prediction, the rest from scratch), `review-stats` measures it, and the ML backend is
left running, connected to the project, for the live path.

Re-running reuses the running server, the seeded project and the backend, and `dvc repro`
then changes nothing that did not change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from pipeline.core.errors import LabelStudioError, PipelineError
from pipeline.core.params import load_section
from pipeline.dataset.masks import read_label_map
from pipeline.demo import seeding
from pipeline.demo.review_simulation import ReviewPlan, simulate_review
from pipeline.demo.synthetic import CLASSES, COLOURS
from pipeline.labelstudio import server
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.mlbackend.background import start_backend

DEMO_IMAGES = 150
CROWD = ("good", "sloppy", "misser")  # careful, sloppy boundaries, misses objects
UNLABELED_EVERY = 5  # a fifth of the images wait for pre-annotation
CORRECT_SHARE = 0.5  # of the pre-annotated tasks, corrected from the prediction; the rest from scratch


def ensure_project(
    client: LabelStudioClient, title: str, data_dir: Path, document_root: Path, seed: int, count: int = 150
) -> int:
    """The demo project's id, seeding it on first use."""
    try:
        return client.find_project(title).id
    except LabelStudioError as error:
        if "no project titled" not in str(error):
            raise
    base = load_section("base")
    if base.classes and base.names != list(CLASSES):
        raise PipelineError(
            f"the demo draws {list(CLASSES)}; base.classes in params.yaml are {base.names}; "
            "set base.classes to null (the project's label config) or to these"
        )
    images, masks = seeding.write_synthetic_images(data_dir / "demo-source", count, seed)
    # The project's label config carries the classes and colours; the pipeline reads them from there.
    classes = seeding.ClassList(CLASSES, tuple(base.palette) if base.classes else COLOURS, None)
    plan = seeding.plan_seed(
        title,
        images,
        masks,
        document_root,
        crowd=list(CROWD),
        unlabeled_every=UNLABELED_EVERY,
        seed=seed,
        unpainted=CLASSES.index("background"),
    )
    return seeding.seed(client, plan, classes)


def run_pipeline(environment: dict[str, str], *targets: str) -> None:
    """`dvc repro [targets]` with the project's own Python first on PATH and the server's credentials."""
    env = {**os.environ, **environment, "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not Path(".git").exists():
        raise PipelineError("run the demo from the root of a git clone of the project (dvc needs the repository)")
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", *targets], env=env)
    if done.returncode != 0:
        raise PipelineError(f"dvc repro failed (exit {done.returncode}); its output is above")


def close_the_loop(client: LabelStudioClient, project_id: int, data_dir: Path) -> dict:
    """Simulated annotators work on the pre-annotated tasks; returns how many of each kind."""
    base = load_section("base")
    masks = data_dir / "demo-source" / "masks"
    truths = {path.name: read_label_map(path) for path in sorted(masks.glob("*.png"))}
    plan = ReviewPlan(CROWD, correct_share=CORRECT_SHARE, seed=base.seed)
    # The demo's own classes: base.classes may be null (read from the label config), and seeding checked them.
    return simulate_review(client, project_id, truths, list(CLASSES), plan, unpainted=CLASSES.index("background"))


def main(port: int, data_dir: Path, console: Console, images: int = DEMO_IMAGES) -> None:
    console.rule("segpipe demo")
    console.print(f"Label Studio from {data_dir} on port {port} (first start: about 20 s of database setup)")
    running = server.start(data_dir=data_dir, port=port, local_ml_backends=True)
    title = str(load_section("labelstudio").project)
    with LabelStudioClient(running.url, running.credentials.token) as client:
        project_id = ensure_project(client, title, data_dir, running.document_root, load_section("base").seed, images)
    console.print(f"project {project_id} {title!r} is ready; running dvc repro (pull → preannotate)")
    run_pipeline(running.env())
    with LabelStudioClient(running.url, running.credentials.token) as client:
        counts = close_the_loop(client, project_id, data_dir)
    console.print(f"simulated review of pre-annotated tasks: {counts}; measuring it (dvc repro review_stats)")
    run_pipeline(running.env(), "review_stats")
    effect = Path("reports/preannotation_effect.md")
    if effect.exists():
        console.print(effect.read_text())
    backend = start_backend(Path(".segpipe/ml-backend"), running.env())
    console.rule("done")
    console.print(
        f"Label Studio  {running.url}/projects/{project_id}/data  (sort by 'Prediction score' ascending: least "
        "sure first)\n"
        f"login         {running.credentials.email} / {running.credentials.password}\n"
        f"dataset       data/labels, data/splits, data/reports/dataset.md, data/reports/agreement.json\n"
        f"model         models/best.pt (U-Net), models/fcn8s/best.pt (FCN-8s)\n"
        f"reports       reports/metrics.json, reports/comparison.md, reports/confusion.png, reports/overlays/,\n"
        f"              reports/train/unet/curves.png, reports/suspect_labels.csv, reports/uncertainty.csv\n"
        f"review        reports/preannotation_effect.md / .json (simulated annotators: see README)\n"
        f"live model    {backend['url']} (pid {backend['pid']}, log {backend['log']}): open a task without a "
        "prediction\n"
        'pipeline env  eval "$(.venv/bin/python -m pipeline serve --env)"   stop: .venv/bin/python -m pipeline '
        "serve --stop"
    )
