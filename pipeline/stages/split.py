"""split: deterministic, class-stratified, group-aware train/val/test lists and a dataset card."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.artifacts.annotations import read_index
from pipeline.artifacts.labels import label_path
from pipeline.artifacts.reports import agreement_summary
from pipeline.artifacts.splits import write_splits
from pipeline.core.atomic import replace_dir, replace_file, write_json
from pipeline.core.errors import ImageError, PipelineError
from pipeline.core.images import read_rgb
from pipeline.core.params import BaseParams, SplitParams
from pipeline.dataset.masks import read_label_map
from pipeline.dataset.splitting import assign_groups, check_fractions, group_of, near_duplicates, perceptual_hash


def scan_tasks(
    tasks: list[dict], labels_dir: Path, images_dir: Path, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per task: class pixel counts (T, C), class presence (T, C) bool and image hashes (T,) uint64."""
    pixels = np.zeros((len(tasks), num_classes), np.int64)
    hashes = np.zeros(len(tasks), np.uint64)
    for row, task in enumerate(tqdm(tasks, desc="split", unit="task")):
        label_map = read_label_map(label_path(labels_dir, task["task_id"]))
        pixels[row] = np.bincount(label_map.ravel(), minlength=256)[:num_classes]
        try:
            image = cv2.cvtColor(read_rgb(images_dir / task["image"]), cv2.COLOR_RGB2GRAY)
        except ImageError:
            image = None  # validate read its header; an undecodable body only loses near-duplicate detection
        hashes[row] = perceptual_hash(image) if image is not None else np.uint64(row)
    return pixels, pixels > 0, hashes


def dataset_card(split_of, names, pixels, groups, duplicates, agreement, class_names) -> dict:
    """Counts, class pixel frequencies per split, agreement summary, annotators, near duplicates."""
    card = {"splits": {}, "near_duplicates": duplicates, "classes": class_names}
    for index, name in enumerate(names):
        chosen = split_of == index
        total = pixels[chosen].sum(0)
        card["splits"][name] = {
            "tasks": int(chosen.sum()),
            "groups": len({groups[i] for i in np.nonzero(chosen)[0]}),
            "class_pixel_fraction": {c: round(float(v), 5) for c, v in zip(class_names, total / max(total.sum(), 1))},
            "tasks_with_class": {c: int(v) for c, v in zip(class_names, (pixels[chosen] > 0).sum(0))},
        }
    card["agreement"] = agreement.get("summary", {})
    card["annotators"] = {
        key: {"email": info.get("email"), "tasks": info.get("tasks"), "iou_vs_consensus": info.get("iou_vs_consensus")}
        for key, info in agreement.get("annotators", {}).items()
    }
    return card


def card_markdown(card: dict) -> str:
    """The dataset card as a Markdown page for people."""
    names = list(card["splits"])
    lines = ["# Dataset card", "", "| split | tasks | groups |", "|---|---|---|"]
    lines += [f"| {n} | {card['splits'][n]['tasks']} | {card['splits'][n]['groups']} |" for n in names]
    lines += [
        "",
        "## Class pixel frequency",
        "",
        "| class | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for c in card["classes"]:
        lines.append(
            f"| {c} | " + " | ".join(f"{card['splits'][n]['class_pixel_fraction'][c]:.4f}" for n in names) + " |"
        )
    lines += ["", "## Agreement", ""] + [f"- {k}: {v}" for k, v in sorted(card["agreement"].items())]
    lines += ["", "## Annotators", "", "| annotator | e-mail | tasks | IoU vs consensus |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {v['email']} | {v['tasks']} | {v['iou_vs_consensus']} |"
        for k, v in sorted(card["annotators"].items())
    ]
    lines += ["", f"## Near duplicates across splits: {len(card['near_duplicates'])}", ""]
    lines += [
        f"- task {d['a']} ({d['split_a']}) ~ task {d['b']} ({d['split_b']}), {d['bits']} bits"
        for d in card["near_duplicates"][:50]
    ]
    return "\n".join(lines) + "\n"


def run(
    annotations_dir: Path,
    labels_dir: Path,
    images_dir: Path,
    agreement_path: Path,
    out_dir: Path,
    card_path: Path,
    base: BaseParams,
    params: SplitParams,
) -> dict:
    """Write `out_dir/{split}.txt` (task ids) and the dataset card (`card_path` .json and .md)."""
    names, fractions = check_fractions(params.fractions)
    tasks = [t for t in read_index(annotations_dir) if label_path(labels_dir, t["task_id"]).exists()]
    if not tasks:
        raise PipelineError(
            f"no labelled task in {labels_dir}; run validate and merge first (is the project annotated?)"
        )
    pixels, presence, hashes = scan_tasks(tasks, labels_dir, images_dir, len(base.names))
    groups = [group_of(t["image_name"], t.get("data") or {}, params.group_field, params.group_regex) for t in tasks]
    split_of = assign_groups(presence, groups, fractions, base.seed)
    ids = np.asarray([t["task_id"] for t in tasks])
    duplicates = [
        {"a": int(ids[i]), "b": int(ids[j]), "split_a": names[split_of[i]], "split_b": names[split_of[j]], "bits": bits}
        for i, j, bits in near_duplicates(hashes, split_of, params.near_duplicate_bits)
    ]
    agreement = agreement_summary(agreement_path)
    card = dataset_card(split_of, names, pixels, groups, duplicates, agreement, base.names)
    with replace_dir(out_dir) as staging:
        write_splits(staging, {name: [int(i) for i in ids[split_of == index]] for index, name in enumerate(names)})
    write_json(card_path.with_suffix(".json"), card)
    with replace_file(card_path.with_suffix(".md")) as handle:
        handle.write(card_markdown(card))
    return {name: card["splits"][name]["tasks"] for name in names}
