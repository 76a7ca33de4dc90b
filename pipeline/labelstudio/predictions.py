"""Predictions in Label Studio: the record of one, and replacing a model version's on a project.

A push sends nothing when the server already holds exactly these predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.results import label_map_to_brush_results


def prediction_record(
    task_id: int,
    label_map: np.ndarray,
    confidence: np.ndarray,
    classes: Sequence[str],
    version: str,
    from_name: str,
    to_name: str,
) -> dict:
    """One Label Studio prediction: a brush region per class present and the task's mean confidence.

    label_map: (H, W) uint8; confidence: (H, W) float max softmax. Sorting the data manager by
    prediction score ascending puts the least certain tasks first.
    """
    return {
        "task": task_id,
        "model_version": version,
        "score": round(float(confidence.mean()), 6),
        "result": label_map_to_brush_results(label_map, classes, task_id=task_id, from_name=from_name, to_name=to_name),
    }


def _regions(result: list[dict]) -> list[tuple]:
    return [(region.get("id"), region.get("value")) for region in result or []]


def _delete_stale(
    client: LabelStudioClient, project_id: int, version: str, stale: dict[int, list[dict]], live: dict
) -> None:
    """Delete the stale predictions: in bulk for tasks holding nothing else, one by one only where others must stay."""
    only_this_version = sorted(
        task
        for task, found in stale.items()
        if found and all(p.get("model_version") == version for p in live[task].get("predictions") or [])
    )
    client.delete_task_predictions(project_id, only_this_version)
    bulk = set(only_this_version)
    mixed = [p for task, found in stale.items() if task not in bulk for p in found]
    for prediction in tqdm(mixed, desc="preannotate: replace", unit="prediction", disable=not mixed):
        client.delete_prediction(prediction["id"])


def push_predictions(
    client: LabelStudioClient, project_id: int, version: str, records: list[dict], batch_size: int
) -> list[int]:
    """Make `records` the only `version` predictions of their tasks; returns tasks deleted meanwhile.

    Predictions of this version on other tasks (say, tasks annotated since) are kept: they
    are what review-stats compares the annotations with. When the server already holds
    exactly these predictions, nothing is sent, so the project and the next pull stay as they are.
    """
    live = {task["id"]: task for task in client.iter_tasks(project_id)}
    gone = sorted(r["task"] for r in records if r["task"] not in live)
    if gone:
        tqdm.write(f"warning: tasks {gone} were deleted in Label Studio since the pull; skipped")
    records = [r for r in records if r["task"] in live]
    stale = {
        r["task"]: [p for p in live[r["task"]].get("predictions") or [] if p.get("model_version") == version]
        for r in records
    }
    same = all(
        len(stale[r["task"]]) == 1
        and _regions(stale[r["task"]][0].get("result")) == _regions(r["result"])
        and abs((stale[r["task"]][0].get("score") or 0) - r["score"]) < 1e-6
        for r in records
    )
    if not same:
        _delete_stale(client, project_id, version, stale, live)
        for start in tqdm(range(0, len(records), batch_size), desc="preannotate: push", unit="batch"):
            client.import_predictions(project_id, records[start : start + batch_size], batch_size=batch_size)
    client.set_model_version(project_id, version)
    return gone
