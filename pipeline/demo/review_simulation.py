"""Simulated annotators working on pre-annotated tasks, so the demo can close the loop and measure it.

What is simulated: each annotator's own view of a scene (`crowd.simulate_annotator` on the
synthetic ground truth, with the annotator's profile), how a person corrects a prediction, and
the time it takes. What is real: the model's predictions as Label Studio stores them, the
annotations as Label Studio stores them (each correction records `parent_prediction`, as the
editor does when a person starts from a prediction), and every figure review-stats computes.

A correction starts from the prediction and replaces each connected region where the
prediction disagrees with the annotator's view by that view, if the region covers at least
`min_fix_share` of the image; smaller disagreements are left as predicted, as people leave
small boundary errors. From-scratch work is the annotator's view itself. Lead time is modelled
as 20 s plus 100 s times the share of pixels the annotator set by hand (1.0 from scratch), so
it is NOT evidence of time saved; the IoU and changed-pixel figures are.

Shapes: H, W = image height and width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.demo.crowd import simulate_annotator
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.export import drawing_results
from pipeline.labelstudio.reading import annotation_to_label_map
from pipeline.labelstudio.tasks import is_annotated


@dataclass(frozen=True)
class ReviewPlan:
    """Who works, how many pre-annotated tasks they correct (the rest they draw from scratch)."""

    profiles: tuple[str, ...]
    correct_share: float = 0.5
    min_fix_share: float = 0.001
    seed: int = 0


def correct_prediction(predicted: np.ndarray, own_view: np.ndarray, min_pixels: int) -> np.ndarray:
    """The prediction (H, W) with each connected disagreement of at least `min_pixels` set to `own_view`."""
    wrong = (predicted != own_view).astype(np.uint8)
    count, components, stats, _ = cv2.connectedComponentsWithStats(wrong, connectivity=8)
    large = np.flatnonzero(stats[1:count, cv2.CC_STAT_AREA] >= min_pixels) + 1
    fix = np.isin(components, large)
    corrected = predicted.copy()
    corrected[fix] = own_view[fix]
    return corrected


def image_name(task: dict, image_tag: str = "image") -> str | None:
    """The file name behind a task's `/data/local-files/?d=...` image reference."""
    reference = (task.get("data") or {}).get(image_tag)
    if not isinstance(reference, str):
        return None
    values = parse_qs(urlsplit(reference).query).get("d")
    return Path(unquote(values[0])).name if values else None


def _shown_prediction(task: dict, model_version: str | None) -> dict | None:
    shown = [p for p in task.get("predictions") or [] if p.get("model_version") == model_version and p.get("result")]
    return max(shown, key=lambda p: p["id"]) if shown else None


def simulate_review(
    client: LabelStudioClient,
    project_id: int,
    truths: Mapping[str, np.ndarray],
    classes: Sequence[str],
    plan: ReviewPlan,
    unpainted: int,
) -> dict:
    """Annotate every unannotated task holding a shown prediction; returns counts per kind of work.

    truths: image file name -> (H, W) ground truth label map of the synthetic scene.
    """
    version = client.find_project(project_id).model_version
    users = {profile: client.ensure_user(f"{profile}@crowd.local") for profile in plan.profiles}
    waiting = [
        (t, p)
        for t in client.iter_tasks(project_id)
        if not is_annotated(t) and (p := _shown_prediction(t, version)) and image_name(t) in truths
    ]
    rng = np.random.default_rng(plan.seed)
    order = rng.permutation(len(waiting))
    corrected_count = int(round(plan.correct_share * len(waiting)))
    counts = {"corrected": 0, "from_scratch": 0}
    for rank, index in enumerate(tqdm(order, desc="simulated review", unit="task")):
        task, prediction = waiting[index]
        truth = truths[image_name(task)]
        profile = plan.profiles[rank % len(plan.profiles)]
        own_view = simulate_annotator(truth, profile, rng, len(classes))
        if rank < corrected_count:
            predicted = annotation_to_label_map(
                prediction["result"], classes, height=truth.shape[0], width=truth.shape[1], unlabeled_value=unpainted
            ).label_map
            submitted = correct_prediction(predicted, own_view, max(1, int(plan.min_fix_share * truth.size)))
            drawn_share, parent, kind = float((submitted != predicted).mean()), prediction["id"], "corrected"
        else:
            submitted, drawn_share, parent, kind = own_view, 1.0, None, "from_scratch"
        result = drawing_results(submitted, classes, "brush", task["id"], unpainted=unpainted)
        client.create_annotation(
            task["id"], result, users[profile], lead_time=round(20.0 + 100.0 * drawn_share, 2), parent_prediction=parent
        )
        counts[kind] += 1
    return counts
