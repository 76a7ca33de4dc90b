"""preannotate: the best model's masks go back into Label Studio as predictions to correct.

The work is `pipeline.review.publish.preannotate`, shared with `promote`; see it for what is
chosen, sent and written.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.params import BaseParams, LabelStudioParams, PreannotateParams
from pipeline.review.publish import preannotate


def run(
    raw_dir: Path,
    images_dir: Path,
    checkpoint: Path,
    agreement_path: Path | None,
    report_path: Path,
    uncertainty_path: Path,
    base: BaseParams,
    ls: LabelStudioParams,
    params: PreannotateParams,
) -> dict:
    """Pre-annotate the chosen tasks of the snapshot, pushing unless blocked; returns the report summary."""
    return preannotate(raw_dir, images_dir, checkpoint, agreement_path, report_path, uncertainty_path, base, ls, params)
