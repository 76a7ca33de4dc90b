"""promote: a model a person chose becomes what annotators see.

Experiments (`dvc exp run`) and `preannotate.push: false` send nothing to Label Studio. This
command is the one way a model version reaches the project on purpose: it pushes the
checkpoint's predictions for the tasks `preannotate.tasks` selects in the pulled snapshot,
sets the project's model_version to it, and copies the checkpoint to the live path, which an
ML backend started with `--model <live path>` then serves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.core.atomic import replace_file
from pipeline.core.errors import TrainingError
from pipeline.core.params import BaseParams, LabelStudioParams, PreannotateParams
from pipeline.review.publish import preannotate


def copy_checkpoint(source: Path, target: Path) -> None:
    """Copy whole or not at all (the backend watching `target` never sees half a file)."""
    if not source.exists():
        raise TrainingError(f"checkpoint {source} not found; pick one with --model (dvc exp apply brings it back)")
    if source.resolve() == target.resolve():
        return
    with open(source, "rb") as reader, replace_file(target, "wb") as writer:
        shutil.copyfileobj(reader, writer)


def run(
    checkpoint: Path,
    live: Path,
    raw_dir: Path,
    images_dir: Path,
    agreement: Path | None,
    report: Path,
    uncertainty: Path,
    base: BaseParams,
    ls: LabelStudioParams,
    params: PreannotateParams,
) -> dict:
    """Push and activate `checkpoint`'s version; returns the preannotate summary plus the live path."""
    summary = preannotate(
        raw_dir, images_dir, checkpoint, agreement, report, uncertainty, base, ls, params, promote=True
    )
    copy_checkpoint(checkpoint, live)
    return {**summary, "live_checkpoint": str(live)}
