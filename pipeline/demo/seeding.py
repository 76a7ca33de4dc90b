"""Seed a Label Studio project from a folder of images, with existing masks and/or a simulated crowd.

Legacy masks can go in as annotations (by a dedicated `import@...` user) or as predictions
(to be corrected); a simulated crowd (pipeline.demo.crowd profiles) derived from the masks gives
several annotators per image, alternating brush and polygon tools.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.core.constants import IGNORE_INDEX
from pipeline.core.errors import PipelineError
from pipeline.demo.crowd import PROFILES, simulate_annotator
from pipeline.labelstudio.client import LabelStudioClient
from pipeline.labelstudio.export import TOOLS, drawing_results, label_config
from pipeline.labelstudio.tasks import local_file_reference

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_COLOURS = [
    (0, 0, 0),
    (128, 64, 128),
    (0, 0, 192),
    (220, 20, 60),
    (107, 142, 35),
    (70, 70, 70),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (70, 130, 180),
    (119, 11, 32),
    (0, 60, 100),
]


@dataclass(frozen=True)
class ClassList:
    """Class names in id order, their RGB colours, and the id that means 'void' in mask files."""

    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    void_id: int | None


@dataclass(frozen=True)
class SeedPlan:
    """What to create: the project title, where its images live, what goes in per image."""

    title: str
    folder: Path
    images: tuple[Path, ...]
    masks: dict[str, Path]
    masks_as: str = "annotations"
    crowd: tuple[str, ...] = ()
    unlabeled_every: int = 0
    seed: int = 0
    unpainted: int | None = None  # a class (e.g. background) people leave unpainted


def read_classes(path: Path) -> ClassList:
    """Classes from JSON: a list of names, or {"classes": [{"id", "name", "color"?}], "ignore_index"?}."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise PipelineError(f"cannot read classes from {path}: {error}") from None
    entries = data.get("classes") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise PipelineError(f"{path}: expected a list of class names or {{'classes': [...]}}")
    void = data.get("ignore_index") if isinstance(data, dict) else None
    kept = [e for i, e in enumerate(entries) if (e.get("id", i) if isinstance(e, dict) else i) != void]
    names = tuple(e["name"] if isinstance(e, dict) else str(e) for e in kept)
    colours = tuple(
        tuple(e.get("color", DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)]))
        if isinstance(e, dict)
        else DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)]
        for i, e in enumerate(kept)
    )
    return ClassList(names, colours, void)


def load_mask(path: Path, classes: ClassList) -> np.ndarray:
    """(H, W) uint8 class ids with the file's void id turned into 255."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise PipelineError(f"{path} is not a single-channel label map PNG")
    mask = mask.astype(np.uint8)
    if classes.void_id is not None:
        mask[mask == classes.void_id] = IGNORE_INDEX
    bad = np.setdiff1d(np.unique(mask), [*range(len(classes.names)), IGNORE_INDEX])
    if bad.size:
        raise PipelineError(f"{path} holds values {bad.tolist()} that are not class ids 0..{len(classes.names) - 1}")
    return mask


def plan_seed(title: str, images_dir: Path, masks_dir: Path | None, document_root: Path, **options) -> SeedPlan:
    """Find the images (and masks by file stem); the project folder sits under the server's document root."""
    images = tuple(sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not images:
        raise PipelineError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {images_dir}")
    masks = {}
    if masks_dir is not None:
        masks = {p.stem: p for p in Path(masks_dir).iterdir() if p.suffix.lower() == ".png"}
    crowd = tuple(options.pop("crowd", ()) or ())
    unknown = [p for p in crowd if p not in PROFILES]
    if unknown:
        raise PipelineError(f"unknown crowd profile(s) {unknown}; valid: {', '.join(PROFILES)}")
    slug = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-") or "project"
    return SeedPlan(title, Path(document_root) / slug, images, masks, crowd=crowd, **options)


def seed(client: LabelStudioClient, plan: SeedPlan, classes: ClassList) -> int:
    """Create the project described by `plan`; returns its id."""
    plan.folder.mkdir(parents=True, exist_ok=True)
    for image in plan.images:
        if not (plan.folder / image.name).exists():
            shutil.copy2(image, plan.folder / image.name)
    project = client.create_project(plan.title, label_config(classes.names, classes.colours))
    client.add_local_storage(project.id, str(plan.folder.resolve()))
    references = [{"image": local_file_reference(f"{plan.folder.name}/{image.name}")} for image in plan.images]
    task_ids = client.import_tasks(project.id, references)
    users = {profile: client.ensure_user(f"{profile}@crowd.local") for profile in plan.crowd}
    importer = (
        client.ensure_user("import@crowd.local")
        if plan.masks and plan.masks_as == "annotations" and not plan.crowd
        else None
    )
    predictions = []
    rng = np.random.default_rng(plan.seed)
    for index, (task_id, image) in enumerate(tqdm(list(zip(task_ids, plan.images)), desc="seed", unit="task")):
        if image.stem not in plan.masks or (
            plan.unlabeled_every and index % plan.unlabeled_every == plan.unlabeled_every - 1
        ):
            continue
        truth = load_mask(plan.masks[image.stem], classes)
        if plan.crowd:
            for turn, profile in enumerate(plan.crowd):
                drawn = simulate_annotator(truth, profile, rng, len(classes.names))
                tool = TOOLS[(index + turn) % len(TOOLS)]
                result = drawing_results(drawn, classes.names, tool, task_id, unpainted=plan.unpainted)
                client.create_annotation(task_id, result, users[profile], lead_time=float(rng.uniform(20, 120)))
        elif importer is not None:
            client.create_annotation(
                task_id, drawing_results(truth, classes.names, "brush", task_id, unpainted=plan.unpainted), importer
            )
        else:
            predictions.append(
                {
                    "task": task_id,
                    "model_version": "legacy-masks",
                    "score": 1.0,
                    "result": drawing_results(truth, classes.names, "brush", task_id, unpainted=plan.unpainted),
                }
            )
    if predictions:
        client.import_predictions(project.id, predictions)
        client.set_model_version(project.id, "legacy-masks")
    return project.id


def write_synthetic_images(folder: Path, count: int, seed: int, size: Sequence[int] = (360, 480)) -> tuple[Path, Path]:
    """Write `count` synthetic scenes as images/ and masks/ under `folder` (kept if already there)."""
    from pipeline.demo.synthetic import scene

    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name = f"street{index // 10:02d}_{index:04d}.png"  # ten frames per "sequence": the split groups
        if (images / name).exists() and (masks / name).exists():
            continue
        image, labels = scene(seed + index, *size)
        cv2.imwrite(str(images / name), image)
        cv2.imwrite(str(masks / name), labels)
    return images, masks
